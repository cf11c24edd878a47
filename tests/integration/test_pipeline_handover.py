"""Two workers in one group on a rule pack of its own (threshold, absence, inactivity, sequence,
composite over event names the simulator never sends): one is SIGTERMed mid-stream and the other takes
its partitions over. Together they emit exactly the backtest's alert ids (duplicates of an id are
allowed: at-least-once)."""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import (
    alert_ids,
    append_heartbeats,
    backtest_alert_ids,
    count_lines,
    publish_lines,
    scrape,
    wait_for_metric,
)

RULES = """\
rules:
  - {id: build-failures, kind: threshold, title: t, severity: high, priority: 2,
     match: {event: Build Failed}, measure: count, window: 1h, min: 3, cooldown: 2h}
  - {id: invoice-unpaid, kind: absence, title: t, severity: medium, priority: 3,
     start: {event: Invoice Issued}, expect: {event: Invoice Settled}, within: 6h}
  - {id: deploys-stopped, kind: inactivity, title: t, severity: medium, priority: 4,
     match: {event: Deploy Finished}, after: 8h}
  - {id: fail-then-rollback, kind: sequence, title: t, severity: high, priority: 1,
     steps: [{event: Build Failed}, {event: Rollback Requested}], within: 2h}
  - {id: failing-and-unpaid, kind: composite, title: t, severity: critical, priority: 1,
     all_of: [build-failures, invoice-unpaid], within: 1d}
"""
NAMES = ["Build Failed", "Build Failed", "Deploy Finished", "Invoice Issued", "Invoice Settled", "Rollback Requested"]
START = 1_790_812_800.0  # 2026-10-01T00:00:00Z


def _history(out: Path, accounts: int = 40, days: float = 2.0) -> Path:
    """Two days of CI-tool events over ``accounts`` accounts, in time order, with a heartbeat per partition."""
    rng = random.Random(1)
    events = []
    for a in range(accounts):
        t = START + rng.uniform(0, 7200)
        while t < START + days * 86400:
            event = {"event_id": f"{a}-{len(events)}", "event": rng.choice(NAMES), "account_id": f"org-{a:03d}"}
            events.append(event | {"timestamp": format_ts(t)})
            t += rng.expovariate(1 / (1500 if a % 3 else 12000))
    events.sort(key=lambda e: e["timestamp"])
    path = out / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_a_worker_stopped_mid_stream_hands_its_partitions_over_without_losing_or_re_iding_alerts(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Worker 1 runs, worker 2 joins, worker 1 gets SIGTERM while events still arrive; the alert ids
    equal ``preempt backtest --partitions 4``'s."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "pack.yaml").write_text(RULES)
    settings = settings_factory(
        event_time_only=True, worker_web_port=free_port(), store="rocksdb://", rules_path=tmp_path / "rules"
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    events = _history(tmp_path)
    append_heartbeats(events, settings.topic_partitions)
    expected = backtest_alert_ids(
        events, None, tmp_path / "backtest.jsonl", rules=tmp_path / "rules", partitions=settings.topic_partitions
    )
    assert len(expected) > 50, "the history must alert for the comparison to mean anything"

    total = count_lines(events)
    third = total // 3
    publish_lines(producer, names.events, events, stop=third)
    first = process_factory(["preempt", "worker"], settings, name="worker-1")
    wait_for_metric(settings.worker_web_port, "preempt_events_total", third * 0.5, timeout_s=120)
    second_settings = settings.model_copy(update={"worker_web_port": free_port()})
    second = process_factory(["preempt", "worker"], second_settings, name="worker-2")
    second.wait_for_log("rules worker ready", timeout_s=90)
    stopped = False
    for start in range(third, 2 * third, 100):
        publish_lines(producer, names.events, events, start=start, stop=min(start + 100, 2 * third))
        if not stopped and start >= third + third // 2:
            first.kill(signal.SIGTERM)
            stopped = True
        time.sleep(0.1)
    publish_lines(producer, names.events, events, start=2 * third)

    records = consume_records(kafka_bootstrap, names.alerts, len(expected), timeout_s=180, idle_s=5.0)
    got = alert_ids(records)
    duplicates = sum(n - 1 for n in Counter(got).values())
    took = scrape(second_settings.worker_web_port).get('preempt_events_total{outcome="accepted"}', 0.0)
    sys.stderr.write(f"\n[handover] {len(got)} alert records, {duplicates} duplicates\n")
    assert set(got) == expected
    assert took > 0, "the joining worker must have been given partitions to process"
