"""A notifier every delivery of which fails is not ready: ``/readyz`` 503 ``deliveries failing: <target>``.

Before, a Slack answering 500 to everything or an SMTP relay refusing every message left ``/readyz`` at
200: the notifier read, retried and dead-lettered on, doing none of its job, and nothing said so but
the retry and dead-letter counters."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer
from pydantic import SecretStr

from alerts.app import app_id
from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from alerts.testing.smtp_server import FakeSMTP, smtp_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import (
    OUTAGE_LINE,
    log_records,
    make_alert,
    metric_value,
    notifier_settings,
    produce_alerts,
    start_notifier,
    wait_for_records,
    wait_readyz,
    write_routes,
)

ROUTES = """
receivers:
  - {name: renewals, slack_configs: [{channel: C-RENEWALS}]}
  - {name: renewals-mail, email_configs: [{to: "{{ account.owner.email }}"}]}
  - {name: expansion, slack_configs: [{channel: C-EXPANSION}]}
route:
  receiver: expansion
  group_wait: 0s
  routes:
    - {matchers: ['account_id=~"northwind-.*"'], receiver: renewals}
    - {matchers: ['account_id=~"contoso-.*"'], receiver: renewals-mail}
"""
FAILING_S = 3.0
FAILING_LINE = "deliveries failing: every attempt to a target failed; not ready until one succeeds"


def test_a_target_whose_every_delivery_fails_makes_readyz_503_until_one_succeeds(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Slack answering 500 to one channel and the SMTP relay refusing every message: after the failing
    window both targets are named on /readyz (503), with an ERROR line each and the gauge; a healthy
    channel meanwhile delivers; once Slack answers again the retry delivers and only email is left; once the
    relay takes mail, /readyz is 200 again."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        delivery_failing_seconds=FAILING_S,
    )
    slack_server.always("C-RENEWALS", Reply.server_error(500))
    smtp_server.script_data("554 5.7.1 relay access denied", times=None)
    notifier = start_notifier(process_factory, settings)
    wait_readyz(settings, lambda s, b: s == 200)

    # One Slack alert retried for ever (500), email alerts refused one by one (554, dead-lettered).
    produce_alerts(producer, topics.alerts, make_alert("northwind-7", rule_id="renewal-at-risk"))
    for n in range(4):
        produce_alerts(producer, topics.alerts, make_alert(f"contoso-{n}", rule_id="champion-left"))
        time.sleep(1.0)
    produce_alerts(producer, topics.alerts, make_alert("fabrikam-2", rule_id="seat-drop"))
    slack_server.wait_for(1, target="C-EXPANSION")  # a healthy channel is not held back

    body = wait_readyz(settings, lambda s, b: s == 503 and "renewals-mail/email" in b.get("reason", ""))
    body = wait_readyz(settings, lambda s, b: s == 503 and "renewals/slack" in b.get("reason", ""))
    reason = body["reason"]
    assert "deliveries failing: renewals-mail/email:" in reason
    assert "SMTP 554" in reason
    assert "deliveries failing: renewals/slack:" in reason
    assert "HTTP 500" in reason
    assert "expansion" not in reason
    errors = wait_for_records(notifier, FAILING_LINE, 2)
    assert {e["target"] for e in errors} == {"renewals/slack", "renewals-mail/email"}
    assert metric_value(settings, "preempt_notifier_targets_failing", receiver_type="slack") == 1
    assert metric_value(settings, "preempt_ready", app=app_id(settings)) == 0

    slack_server.always("C-RENEWALS", Reply.ok())
    slack_server.wait_for(1, target="C-RENEWALS")
    body = wait_readyz(settings, lambda s, b: s == 503 and "renewals/slack" not in b.get("reason", ""))
    assert "renewals-mail/email" in body["reason"]
    assert metric_value(settings, "preempt_notifier_targets_failing", receiver_type="slack") == 0

    smtp_server.script_data("250 Message accepted", times=None)
    produce_alerts(producer, topics.alerts, make_alert("contoso-9", rule_id="champion-left"))
    smtp_server.wait_for(1)
    wait_readyz(settings, lambda s, b: s == 200)
    assert [r["target"] for r in wait_for_records(notifier, "deliveries succeeding again", 2)] == [
        "renewals/slack",
        "renewals-mail/email",
    ]


def test_a_wrong_smtp_password_holds_the_alerts_until_it_works_again(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The relay answers AUTH with 535 (its password was rotated): no alert is dead-lettered; each is retried,
    one ERROR names the server, that authentication failed and what to fix, /readyz says deliveries failing;
    once the relay takes the password again, every alert is delivered exactly once and /readyz is 200."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_username="preempt",
        smtp_password="old-password",
        smtp_allow_plaintext_auth=True,
        delivery_failing_seconds=FAILING_S,
    )
    smtp_server.password = "rotated-password"
    notifier = start_notifier(process_factory, settings)
    alerts = [make_alert(f"contoso-{n}", rule_id="champion-left") for n in range(3)]
    produce_alerts(producer, topics.alerts, *alerts)

    body = wait_readyz(settings, lambda s, b: s == 503 and "renewals-mail/email" in b.get("reason", ""))
    assert "SMTP 535" in body["reason"]
    [error] = wait_for_records(notifier, OUTAGE_LINE, 1)
    assert error["destination"] == f"SMTP server {smtp_server.host}:{smtp_server.port}"
    assert "authentication failed" in error["fix"]
    assert "PREEMPT_SMTP_PASSWORD" in error["fix"]
    time.sleep(2.0)  # more failed attempts of all three alerts: still one ERROR, nothing dead-lettered
    assert len(wait_for_records(notifier, OUTAGE_LINE, 1)) == 1
    assert len(wait_for_records(notifier, "delivery retry scheduled", 6)) >= 6
    assert metric_value(settings, "preempt_notifications_total", receiver_type="email", outcome="dead_lettered") == 0
    assert smtp_server.messages == []
    assert "old-password" not in notifier.log_text()

    smtp_server.password = "old-password"  # the relay is put right
    mails = smtp_server.wait_for(3)
    wait_readyz(settings, lambda s, b: s == 200)
    wait_for_records(notifier, "delivery destination takes messages again", 1)
    time.sleep(1.0)
    assert sorted(m.rcpt_tos for m in smtp_server.messages) == sorted(
        (f"csm-contoso-{n}@example.com",) for n in range(3)
    )
    assert len(mails) == 3
    assert metric_value(settings, "preempt_notifications_total", receiver_type="email", outcome="dead_lettered") == 0


def test_alerts_held_by_a_wrong_smtp_password_go_out_after_a_restart_with_the_right_one(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The notifier's password is the wrong one (the relay's was rotated): the alerts wait, retried, none
    dead-lettered. The operator sets the new password and restarts: the restarted notifier re-reads them
    (their offsets were never committed) and delivers each once."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_username="preempt",
        smtp_password="old-password",
        smtp_allow_plaintext_auth=True,
        notifier_session_timeout_seconds=6,
    )
    smtp_server.password = "rotated-password"
    first = start_notifier(process_factory, settings, name="notifier-1")
    produce_alerts(producer, topics.alerts, *[make_alert(f"contoso-{n}", rule_id="champion-left") for n in range(2)])
    wait_for_records(first, OUTAGE_LINE, 1)
    wait_for_records(first, "delivery retry scheduled", 4)
    first.stop()
    assert log_records(first, "alert dead-lettered") == []
    assert smtp_server.messages == []

    fixed = settings.model_copy(update={"smtp_password": SecretStr("rotated-password")})
    second = start_notifier(process_factory, fixed, name="notifier-2")
    mails = smtp_server.wait_for(2, timeout_s=60)
    wait_for_records(second, "alert delivered", 2)
    time.sleep(1.0)
    assert sorted(m.rcpt_tos for m in mails) == [("csm-contoso-0@example.com",), ("csm-contoso-1@example.com",)]
    assert len(smtp_server.messages) == 2
