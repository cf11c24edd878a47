"""`preempt alerts dead-letters` reads the notifier's dead letters back from the real topic and replays them
(the PreemptNotificationsFailing runbook: read the record for the detail, fix, replay)."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import CliRunner
from kafka import KafkaProducer

from alerts.app import ensure_notifier_topics
from alerts.testing.factories import build_alert
from schemas.alert import Alert
from streams.cli.main import main
from streams.runtime.dead_letters import alert_dead_letter_headers
from streams.runtime.settings import Settings
from streams.runtime.testing import settings_env
from streams.runtime.topics import TopicNames
from tests.integration.conftest import consume_records


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
    assert f"replayed 1 alert(s) to {names.alerts} (1 skipped: not a whole alert)" in replayed.stderr
    records = consume_records(kafka_bootstrap, names.alerts, expected=1, idle_s=2.0)
    assert [(r.key, Alert.model_validate_json(r.value)) for r in records] == [(b"acme", alert)]
