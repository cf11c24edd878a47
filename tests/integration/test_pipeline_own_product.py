"""Parity for a product that is not the simulator's: the stream's alerts are the backtest's, whole (title,
playbook, account context, window, evidence), through a SIGKILL and a restart (tests/integration/own_product.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.own_product import SKEWED, write_files
from tests.integration.pipeline_support import (
    append_heartbeats,
    backtest_alert_ids,
    count_lines,
    metric_sum,
    publish_lines,
    wait_for_metric,
)


def _by_id(lines: list[bytes]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        alert = json.loads(line)
        alert.pop("emitted_at")  # the wall clock in the stream, fired_at in the backtest
        found.setdefault(alert["alert_id"], []).append(alert)
    return found


def test_an_own_product_pack_gives_the_backtests_alerts_whole_through_a_sigkill(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Every kind but risk, with duplicates, late, out-of-order, skewed and unknown-account events and
    deadlines on DST nights: the alerts on the topic equal the backtest's field for field, a re-sent id
    carries the same alert, and the late, duplicate, skipped and dead-lettered events are counted."""
    rules, accounts, events = write_files(tmp_path)
    settings = settings_factory(event_time_only=True, worker_web_port=free_port(), rules_path=rules)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    append_heartbeats(events, settings.topic_partitions)
    backtest_alert_ids(events, accounts, tmp_path / "backtest.jsonl", rules=rules, partitions=settings.topic_partitions)
    expected = _by_id((tmp_path / "backtest.jsonl").read_bytes().splitlines())
    assert {a[0]["rule_id"] for a in expected.values()} >= {
        "at-risk-collab",
        "declined-then-downgrade",
        "weekly-editors-drop",
    }

    publish_lines(producer, names.accounts, accounts)
    total = count_lines(events)
    half = total // 2
    publish_lines(producer, names.events, events, stop=half)
    first = process_factory(["preempt", "worker"], settings, name="worker-1")
    wait_for_metric(settings.worker_web_port, "preempt_events_total", half, timeout_s=120)
    first.kill()

    publish_lines(producer, names.events, events, start=half)
    producer.send(names.events, key=b"acme-design", value=json.dumps(SKEWED).encode())
    producer.flush()
    port = free_port()
    second = process_factory(
        ["preempt", "worker"], settings.model_copy(update={"worker_web_port": port}), name="worker-2"
    )
    second.wait_for_log("rules worker ready", timeout_s=90)
    expected_records = sum(len(v) for v in expected.values())
    records = consume_records(kafka_bootstrap, names.alerts, expected_records, timeout_s=120, idle_s=3.0)
    got = _by_id([r.value for r in records])

    assert set(got) == set(expected)
    for alert_id, copies in got.items():
        assert all(copy == expected[alert_id][0] for copy in copies), (copies[0], expected[alert_id][0])

    # the second half held the late event, the two copies, the string size and the 2099 event
    metrics = wait_for_metric(port, "preempt_events_dead_lettered_total", 1, timeout_s=30)
    assert metric_sum(metrics, "preempt_late_events_total") == 1
    assert metric_sum(metrics, "preempt_duplicate_events_total") >= 2
    assert metric_sum(metrics, "preempt_measure_values_skipped_total") == 1
    assert metrics['preempt_events_dead_lettered_total{reason="future_timestamp"}'] == 1
