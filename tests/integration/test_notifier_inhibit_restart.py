"""inhibit_rules across a restart: a source received before it still mutes its targets after it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from alerts.app import app_id
from alerts.testing.slack_server import FakeSlack, slack_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
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
from tests.integration.restart_stress import committed_and_ends

ROUTES = """
receivers:
  - name: csm
    slack_configs:
      - channel: C-CSM
route:
  receiver: csm
  group_by: [account_id]
  group_wait: 0s
inhibit_rules:
  - name: critical-mutes-the-rest
    source_matchers: ['severity="critical"']
    target_matchers: ['severity!="critical"']
    equal: [account_id]
"""


def test_a_source_received_before_a_restart_still_inhibits_after_it(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A critical alert is delivered and committed; the notifier stops and a new one starts (a deploy). The
    account's next non-critical alert, minutes inside the inhibit horizon, is inhibited: the new notifier
    read the source back from preempt.alerts. Before, it had forgotten it and sent the alert."""
    settings = notifier_settings(settings_factory, write_routes(tmp_path, ROUTES), slack_api_url=slack_server.api_url)
    first = start_notifier(process_factory, settings, name="notifier-1")
    source = make_alert("initech", severity="critical", priority=1, title="Initech: payments failing")
    produce_alerts(producer, topics.alerts, source)
    wait_for_records(first, "alert delivered", 1)
    first.stop()  # graceful: the source's offset is committed, so the new notifier does not consume it again
    offsets = committed_and_ends(
        settings.bootstrap_servers[0], app_id(settings), topics.alerts, settings.topic_partitions
    )
    assert all(committed == end for committed, end in offsets.values()), offsets

    second = start_notifier(process_factory, settings, name="notifier-2")
    (recalled,) = wait_for_records(second, "inhibit_rules sources recalled", 1)
    assert recalled["sources"] == 1
    target = make_alert("initech", title="Initech: errors spiking")
    control = make_alert("globex", title="Globex: errors spiking")
    produce_alerts(producer, topics.alerts, target, control)
    delivered = wait_for_records(second, "alert delivered", 1)
    suppressed = wait_for_records(second, "alert suppressed", 1)

    assert [r["alert_id"] for r in delivered] == [control.alert_id]
    assert [(r["alert_id"], r["reason"]) for r in suppressed] == [(target.alert_id, "inhibited")]
    assert metric_value(settings, "preempt_notifier_inhibit_recalls_total", outcome="complete") == float(
        settings.topic_partitions
    )
    assert metric_value(settings, "preempt_notifier_inhibit_recalls_total", outcome="incomplete") == 0
    texts = [str(r.body) for r in slack_server.wait_for(2, target="C-CSM")]
    assert not any("Initech: errors spiking" in t for t in texts)
    assert not log_records(second, "alert delivered")[1:]
