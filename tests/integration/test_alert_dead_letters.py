"""`preempt alerts dead-letters` reads the notifier's dead letters back from the real topic and replays them
(the PreemptNotificationsFailing runbook: read the record for the detail, fix, replay)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from kafka import KafkaProducer

from alerts.app import ensure_notifier_topics
from alerts.replay import replay_targets
from alerts.testing.factories import build_alert
from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from alerts.testing.smtp_server import FakeSMTP, smtp_server  # noqa: F401
from schemas.alert import Alert
from streams.cli.main import main
from streams.runtime.dead_letters import alert_dead_letter_headers
from streams.runtime.settings import Settings
from streams.runtime.testing import settings_env
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.notifier_harness import (
    log_records,
    make_alert,
    metric_value,
    notifier_settings,
    produce_alerts,
    start_notifier,
    wait_for_records,
    write_routes,
)


def test_alert_dead_letters_are_listed_filtered_and_replayed(
    settings_factory: Callable[..., Settings], producer: KafkaProducer, kafka_bootstrap: str
) -> None:
    """A Slack target dead-lettered 'permanent' and a record that was not an alert are listed with target,
    reason and error; --reason filters; --replay puts the whole alert back on preempt.alerts, once, and
    skips what is not an alert."""
    settings = settings_factory()
    ensure_notifier_topics(settings)
    names = TopicNames.from_settings(settings)
    alert = build_alert(account_id="acme")
    refused = alert_dead_letter_headers(
        "permanent", "slack chat.postMessage: HTTP 200 channel_not_found", target="csm/slack", receiver_type="slack"
    )
    producer.send(names.alerts_dlq, key=b"acme", value=alert.model_dump_json().encode(), headers=refused)
    not_an_alert = alert_dead_letter_headers("invalid_alert", "EOF")
    producer.send(names.alerts_dlq, key=b"acme", value=b'{"alert_id": "x"', headers=not_an_alert)
    producer.flush()

    env = settings_env(settings)
    runner = CliRunner()
    listed = runner.invoke(main, ["alerts", "dead-letters", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["reason"], r.get("target")) for r in rows] == [("permanent", "csm/slack"), ("invalid_alert", None)]

    text = runner.invoke(main, ["alerts", "dead-letters", "--reason", "permanent"], env=env)
    assert text.exit_code == 0, text.output
    assert f"alert_id={alert.alert_id} target=csm/slack (slack): permanent: slack chat.postMessage" in text.stdout
    assert "invalid_alert" not in text.stdout

    replayed = runner.invoke(main, ["alerts", "dead-letters", "--replay"], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed 1 alert to {names.alerts} (1 skipped: not a whole alert)" in replayed.stderr
    records = consume_records(kafka_bootstrap, names.alerts, expected=1, idle_s=2.0)
    assert [(r.key, Alert.model_validate_json(r.value)) for r in records] == [(b"acme", alert)]
    assert replay_targets(records[0].headers) == ("csm/slack",)  # the notifier sends it there only


ROUTES = """
receivers:
  - name: csm
    slack_configs: [{channel: C-CSM}]
    email_configs: [{to: "{{ account.owner.email }}"}]
route:
  receiver: csm
  group_wait: 0s
"""


def test_a_replayed_alert_goes_only_to_the_target_that_had_failed_and_never_twice(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Slack answers channel_not_found while the email goes out: the Slack target is dead-lettered. Once
    Slack is fixed, --replay delivers the alert to Slack only (the owner gets no second email), observes
    no latency for it; a second --replay is refused by the delivery log (no second Slack message)."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
    )
    slack_server.script("C-CSM", Reply.slack_error("channel_not_found"))
    notifier = start_notifier(process_factory, settings)
    alert = make_alert("replayco")
    produce_alerts(producer, topics.alerts, alert)
    (emailed,) = wait_for_records(notifier, "alert delivered", 1)
    assert emailed["target"] == "csm/email"
    (dead,) = wait_for_records(notifier, "alert dead-lettered", 1)
    assert (dead["target"], dead["reason"]) == ("csm/slack", "permanent")
    assert len(smtp_server.wait_for(1)) == 1
    latency_before = metric_value(settings, "preempt_notification_latency_seconds_count", receiver_type="slack")

    env = settings_env(settings)
    runner = CliRunner()
    replayed = runner.invoke(main, ["alerts", "dead-letters", "--account", "replayco", "--replay"], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed 1 alert to {topics.alerts}" in replayed.stderr
    delivered = wait_for_records(notifier, "alert delivered", 2)
    assert [(r["target"], r["replay"]) for r in delivered] == [("csm/email", False), ("csm/slack", True)]
    assert [r.target for r in slack_server.wait_for(1, "C-CSM")] == ["C-CSM"]
    assert metric_value(settings, "preempt_notification_latency_seconds_count", receiver_type="slack") == (
        latency_before
    )

    again = runner.invoke(main, ["alerts", "dead-letters", "--account", "replayco", "--replay"], env=env)
    assert again.exit_code == 0, again.output
    (duplicate,) = wait_for_records(notifier, "alert already delivered", 1)
    assert duplicate["target"] == "csm/slack"
    time.sleep(1.0)  # a second message would have been sent by now (group_wait 0s)
    assert len(slack_server.delivered("C-CSM")) == 1
    assert len(smtp_server.messages) == 1
    assert len(log_records(notifier, "alert delivered")) == 2


SHARED_ROUTES = """
receivers:
  - name: csm
    email_configs:
      - to: ["{{ account.owner.email }}", "ops@example.com"]
route:
  receiver: csm
  group_by: [rule_id]
  group_wait: 2s
"""


def test_replaying_an_email_given_up_for_some_recipients_reaches_only_those_that_never_got_it(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two accounts' alerts in one group, each to its owner and to ops@: the first owner's email goes out, the
    relay refuses the rest (451) until the give-up window: both alerts are dead-lettered ``gave_up``, the first
    saying one recipient has it. Once the relay is fixed, --replay sends each only to the recipients that never
    got it: the first owner gets no second email."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, SHARED_ROUTES),
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        delivery_give_up_seconds=3.0,
    )
    smtp_server.script_data("250 Message accepted", times=1)
    smtp_server.script_data("451 4.3.0 try again later", times=None)
    notifier = start_notifier(process_factory, settings)
    first = make_alert("umbrella", account={"name": "Umbrella", "owner": {"email": "aiko@example.com"}})
    second = make_alert("tyrell", account={"name": "Tyrell", "owner": {"email": "boris@example.com"}})
    produce_alerts(producer, topics.alerts, first, second)
    dead = wait_for_records(notifier, "alert dead-lettered", 2, timeout_s=60)
    assert {(d["alert_id"], d["reason"]) for d in dead} == {(first.alert_id, "gave_up"), (second.alert_id, "gave_up")}
    by_id = {d["alert_id"]: d["detail"] for d in dead}
    assert by_id[first.alert_id].startswith("already received by 1 recipient, a replay skips them;")
    assert not by_id[second.alert_id].startswith("already received")
    assert [m.rcpt_tos for m in smtp_server.messages] == [("aiko@example.com",)]

    smtp_server.script_data("250 Message accepted", times=None)
    replayed = CliRunner().invoke(main, ["alerts", "dead-letters", "--replay"], env=settings_env(settings))
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed 2 alerts to {topics.alerts}" in replayed.stderr
    wait_for_records(notifier, "alert delivered", 2)
    time.sleep(1.0)  # a second email to the first owner would be out by now
    received = sorted(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert received == ["aiko@example.com", "boris@example.com", "ops@example.com", "ops@example.com"]
