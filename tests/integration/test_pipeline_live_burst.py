"""A LIVE rules worker under a burst it cannot keep up with: events that wait in Kafka while a long
batch holds the worker are evaluated when read, never dropped as late (issue 5: nothing lost)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import metric_sum, scrape

RULES = """
rules:
  - id: came-back
    kind: threshold
    title: "{{ account.name }} came back"
    severity: low
    priority: 1
    match: {event: Login}
    window: 1h
    min: 2
"""
ACCOUNTS = 15000


def test_a_burst_over_many_accounts_is_evaluated_not_dropped_as_late(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Two logins of each of 15,000 accounts, sent as fast as possible to a live worker with a 1 s
    lateness and a small state cache (slow batches): every account alerts once and no event is
    late (the clock followed the wall clock to now after each batch, though the batch had held
    the worker while the next records waited unread: thousands were dropped as late)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    port = free_port()
    settings = settings_factory(
        event_time_only=False,
        rules_path=rules,
        allowed_lateness_seconds=1.0,
        worker_web_port=port,
        worker_state_cache_accounts=500,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=120)

    for _ in range(2):
        for i in range(ACCOUNTS):
            account = f"burst-{i}"
            body = {
                "event_id": uuid.uuid4().hex,
                "event": "Login",
                "account_id": account,
                "timestamp": format_ts(time.time()),
            }
            producer.send(names.events, key=account.encode(), value=json.dumps(body).encode())
        producer.flush()

    records = consume_records(kafka_bootstrap, names.alerts, ACCOUNTS, timeout_s=180, idle_s=3.0)
    alerted = Counter(json.loads(r.value)["account_id"] for r in records)
    metrics = scrape(port)
    late = metric_sum(metrics, "preempt_late_events_total")
    assert (len(alerted), late) == (ACCOUNTS, 0)
    assert metrics.get('preempt_events_total{outcome="accepted"}') == 2 * ACCOUNTS
    assert worker.proc.poll() is None
