"""Events without ``user_id`` reaching a ``group_by: user`` rule, through a LIVE rules worker: counted, not silent.

A per-user rule ignores an event that names no user. It did so without a trace, so a rule whose product
sends the user elsewhere (``properties.userId``) never fired and nothing said why. The worker now counts
them per rule in ``preempt_user_events_without_user_total`` (and logs them, throttled), its account-level
rules still evaluate the same events, and the backtest's alerts are the worker's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import backtest_alert_ids, wait_for_metric

T0 = 1_793_750_400.0  # 2026-11-02T00:00:00Z
RULES = """
rules:
  - id: detractor-user
    kind: any
    title: "NPS {{ evidence.properties.score }} from {{ user.id }}"
    severity: medium
    priority: 1
    group_by: user
    match: {event: "NPS ✓ submitted", where: {properties.score: {lte: 6}}}
  - id: detractor-account
    kind: any
    title: "NPS {{ evidence.properties.score }} at {{ account.name }}"
    severity: low
    priority: 2
    match: {event: "NPS ✓ submitted", where: {properties.score: {lte: 6}}}
"""


def test_events_without_a_user_are_counted_by_the_per_user_rule_and_alerted_by_the_account_rule(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    port = free_port()
    settings = settings_factory(event_time_only=True, rules_path=rules, worker_web_port=port)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    # three detractors without a user (one a promoter, not matching), one with a user, then a later event
    # on every account so each partition's event-time clock passes them
    rows = [
        ("a-1", "NPS ✓ submitted", 0, 3, None),
        ("a-1", "NPS ✓ submitted", 1, 9, None),
        ("a-2", "NPS ✓ submitted", 2, 5, None),
        ("a-3", "NPS ✓ submitted", 3, 6, None),
        ("a-3", "NPS ✓ submitted", 4, 2, "u-7"),
    ]
    lines = []
    for i, (account, name, offset, score, user) in enumerate(rows):
        body = {"event_id": f"n{i}", "event": name, "account_id": account, "timestamp": format_ts(T0 + offset)}
        lines.append(body | {"properties": {"score": score}} | ({"user_id": user} if user else {}))
    for j, account in enumerate(("a-1", "a-2", "a-3")):
        lines.append({"event_id": f"tick{j}", "event": "Tick", "account_id": account, "timestamp": format_ts(T0 + 60)})
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    for line in lines:
        producer.send(names.events, key=line["account_id"].encode(), value=json.dumps(line).encode())
    producer.flush()

    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    metrics = wait_for_metric(port, 'preempt_user_events_without_user_total{rule="detractor-user"}', 3, timeout_s=60)
    records = consume_records(kafka_bootstrap, names.alerts, 4, timeout_s=30, idle_s=2.0)

    alerts = sorted((a["rule_id"], a["account_id"], a["user_id"]) for a in (json.loads(r.value) for r in records))
    assert {json.loads(r.value)["alert_id"] for r in records} == backtest_alert_ids(
        events, None, tmp_path / "backtest.jsonl", rules=rules, partitions=settings.topic_partitions
    )
    assert alerts == [
        ("detractor-account", "a-1", None),
        ("detractor-account", "a-2", None),
        ("detractor-account", "a-3", None),
        ("detractor-account", "a-3", None),
        ("detractor-user", "a-3", "u-7"),
    ]
    assert metrics['preempt_user_events_without_user_total{rule="detractor-user"}'] == 3
    assert 'preempt_user_events_without_user_total{rule="detractor-account"}' not in metrics
    assert "an event without user_id is not evaluated by a per-user rule" in worker.log_text()
