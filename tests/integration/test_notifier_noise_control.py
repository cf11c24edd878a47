"""Noise control end to end: silences suppress, inhibition suppresses, quiet hours defer."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafka import KafkaProducer

from alerts.testing.slack_server import FakeSlack, slack_server  # noqa: F401
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


def _routes(quiet_end: datetime) -> str:
    # Quiet hours from an hour ago until ``quiet_end`` in UTC: quiet now for accounts in UTC, not for
    # accounts twelve hours ahead (the test alerts' default timezone is Etc/GMT-12).
    start = (quiet_end - timedelta(hours=1)).strftime("%H:%M:%S")
    end = quiet_end.strftime("%H:%M:%S")
    return f"""
receivers:
  - name: csm
    slack_configs:
      - channel: C-CSM
route:
  receiver: csm
  group_by: [account_id]
  group_wait: 1s
inhibit_rules:
  - name: critical-mutes-the-rest
    source_matchers: ['severity="critical"']
    target_matchers: ['severity!="critical"']
    equal: [account_id]
silences:
  - account_id: hushed
    ends_at: "2099-01-01T00:00:00Z"
    reason: data migration this week
quiet_hours:
  start: "{start}"
  end: "{end}"
  timezone: UTC
"""


def test_silences_inhibition_and_quiet_hours(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A silenced account's alert and an inhibited alert are never sent, an alert in its owner's quiet
    hours is held back until they end, and an ordinary alert goes out at once."""
    quiet_end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)  # room for a slow notifier start
    routes = write_routes(tmp_path, _routes(quiet_end))
    settings = notifier_settings(settings_factory, routes, slack_api_url=slack_server.api_url)
    notifier = start_notifier(process_factory, settings)

    source = make_alert("initech", severity="critical", priority=1, title="Initech: payments failing")
    target = make_alert("initech", title="Initech: errors spiking")
    hushed = make_alert("hushed", title="Hushed: errors spiking")
    night = make_alert("nightowl", title="Nightowl: errors spiking", account={"name": "Nightowl", "timezone": "UTC"})
    control = make_alert("control", title="Control: errors spiking")
    produce_alerts(producer, topics.alerts, source, target, hushed, night, control)

    delivered = wait_for_records(notifier, "alert delivered", 2)
    suppressed = wait_for_records(notifier, "alert suppressed", 2)
    deferred = wait_for_records(notifier, "alert deferred by quiet hours", 1)

    assert {r["alert_id"] for r in delivered} == {source.alert_id, control.alert_id}
    assert {(r["alert_id"], r["reason"]) for r in suppressed} == {
        (hushed.alert_id, "silenced"),
        (target.alert_id, "inhibited"),
    }
    assert [r["alert_id"] for r in deferred] == [night.alert_id]
    assert deferred[0]["until"] == quiet_end.isoformat().replace("+00:00", "Z")  # RFC 3339 in its zone, not epoch
    texts = [str(r.body) for r in slack_server.wait_for(2, target="C-CSM")]
    assert len(texts) == 2
    assert not any("Nightowl" in t or "Hushed" in t or "Initech: errors spiking" in t for t in texts)
    for reason in ("silenced", "inhibited", "quiet_hours"):
        assert metric_value(settings, "preempt_alerts_suppressed_total", reason=reason) == 1
    # The deferred alert is held from its partition's commit, and says so (it is in the lag).
    assert metric_value(settings, "preempt_notifier_alerts_held") >= 1

    # At the end of the quiet hours the held alert goes out (the "next digest").
    after = wait_for_records(notifier, "alert delivered", 3, timeout_s=40)
    (late,) = [r for r in after if r["alert_id"] == night.alert_id]
    assert datetime.fromisoformat(late["timestamp"].replace("Z", "+00:00")) >= quiet_end
    deadline = time.monotonic() + 10
    while metric_value(settings, "preempt_notifier_alerts_held") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric_value(settings, "preempt_notifier_alerts_held") == 0
