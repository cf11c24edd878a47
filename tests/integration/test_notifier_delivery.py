"""The notifier end to end: alerts on the topic reach Slack and email, routed and grouped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from alerts.testing.slack_server import FakeSlack, slack_server  # noqa: F401
from alerts.testing.smtp_server import FakeSMTP, smtp_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import (
    make_alert,
    metric_value,
    notifier_settings,
    produce_alerts,
    start_notifier,
    wait_for_records,
    write_routes,
)

ROUTES = """
receivers:
  - name: csm
    slack_configs:
      - channel: C-CSM
    email_configs:
      - to: "{{ account.owner.email }}"
  - name: escalation
    slack_configs:
      - channel: C-ESC
route:
  receiver: csm
  group_by: [account_id]
  group_wait: 1s
  group_interval: 2s
  routes:
    - name: critical
      matchers: ['severity="critical"']
      receiver: escalation
"""


def test_alerts_reach_slack_and_email_routed_and_grouped(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Five alerts of one account become one Slack message and one email to its owner; a critical
    alert of another account goes to the escalation channel only."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
    )
    notifier = start_notifier(process_factory, settings)

    acme = [make_alert("acme", title=f"Acme: signal {i}") for i in range(5)]
    critical = make_alert("globex", severity="critical", priority=1, title="Globex: payments failing")
    produce_alerts(producer, topics.alerts, *acme, critical)

    # 5 acme alerts x (slack + email) + the critical one on Slack.
    wait_for_records(notifier, "alert delivered", 11)
    csm = slack_server.wait_for(1, target="C-CSM")
    esc = slack_server.wait_for(1, target="C-ESC")
    mails = smtp_server.wait_for(1)

    assert len(csm) == 1
    text = str(csm[0].body)
    # One digest for the account: named once (its header), each line the title without the repeated name.
    assert all(f"signal {i}" in text for i in range(5))
    assert "Acme" in text
    assert "Globex" not in text
    assert len(esc) == 1
    assert "Globex: payments failing" in str(esc[0].body)
    assert len(mails) == 1
    assert mails[0].rcpt_tos == ("csm-acme@example.com",)
    message = mails[0].message
    assert "acme" in message["Subject"].lower()
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert metric_value(settings, "preempt_alerts_suppressed_total", reason="grouped") == 4
    assert metric_value(settings, "preempt_notifications_total", receiver_type="slack", outcome="sent") == 2
    # Every consumed alert is settled (11 deliveries logged), and Slack saw exactly these two messages.
    assert len(slack_server.delivered()) == 2


OWNER_ROUTES = """
receivers:
  - name: owners
    slack_configs:
      - channel: "{{ account.owner.slack }}"
    email_configs:
      - to: "{{ account.owner.email }}"
route:
  receiver: owners
  group_by: [rule_id]
  group_wait: 2s
"""


def test_a_group_spanning_owners_dms_each_owner_their_own_alerts(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Grouped by rule, three accounts of two owners: each owner's Slack DM and email hold exactly their
    own accounts' alerts; a third owner without a Slack id is dead-lettered for Slack alone."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, OWNER_ROUTES),
        slack_api_url=slack_server.api_url,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
    )
    notifier = start_notifier(process_factory, settings)

    def owned(account_id: str, slack: str | None, email: str) -> object:
        owner = {"name": email.split("@")[0].title(), "email": email, **({"slack": slack} if slack else {})}
        return make_alert(
            account_id,
            title=f"{account_id.title()}: API errors are spiking",
            account={"name": account_id.title(), "owner": owner},
        )

    umbrella = owned("umbrella", "U0AIKO001", "aiko@example.com")
    tyrell = owned("tyrell", "U0BORIS01", "boris@example.com")
    wayne = owned("wayne", "U0AIKO001", "aiko@example.com")
    nobody = owned("stark", None, "chen@example.com")
    produce_alerts(producer, topics.alerts, umbrella, tyrell, wayne, nobody)

    wait_for_records(notifier, "alert delivered", 3 + 4)  # 3 on Slack (2 messages) + 4 by email
    wait_for_records(notifier, "alert dead-lettered", 1)
    aiko = slack_server.wait_for(1, target="U0AIKO001")
    boris = slack_server.wait_for(1, target="U0BORIS01")
    assert len(aiko) == 1
    assert len(boris) == 1
    aiko_text, boris_text = str(aiko[0].body), str(boris[0].body)
    assert ["Umbrella" in aiko_text, "Wayne" in aiko_text, "Tyrell" in aiko_text, "Stark" in aiko_text] == [
        True,
        True,
        False,
        False,
    ]
    assert ["Tyrell" in boris_text, "Umbrella" in boris_text, "Wayne" in boris_text] == [True, False, False]
    assert len(slack_server.delivered()) == 2
    mails = {m.rcpt_tos: m for m in smtp_server.wait_for(3)}
    assert set(mails) == {("aiko@example.com",), ("boris@example.com",), ("chen@example.com",)}
    assert "Tyrell" not in str(mails[("aiko@example.com",)].message)
    (dead,) = wait_for_records(notifier, "alert dead-lettered", 1)
    assert dead["alert_id"] == nobody.alert_id
    assert metric_value(settings, "preempt_notifications_total", receiver_type="slack", outcome="sent") == 2
