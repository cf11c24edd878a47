"""Events published in Kafka transactions: the commit markers take offsets no consumer is given.

Before, each marker between two records was reported as skipped records (ERROR, gap metric, a
side read that held the batch for 10 s), the marker after a partition's last record kept its
lag at 1 for good (the watchdog reported it stalled: ``/readyz`` 503, a critical alert), and the
partition never read as caught up, so live deadlines and the alerts waiting for the wall clock
never came.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition

from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import metric_sum, scrape

RULES = """
rules:
  - id: ping
    kind: any
    title: "Ping from {{ account.name }}"
    severity: low
    priority: 5
    match: {event: Ping}
  - id: quiet
    kind: inactivity
    title: "{{ account.name }} went quiet"
    severity: medium
    priority: 3
    match: {event: Ping}
    after: 5s
"""
STALL_S = 8.0  # the watchdog samples every 2 s


async def _publish_in_transactions(bootstrap: str, topic: str, accounts: list[list[str]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        for group in accounts:
            async with producer.transaction():
                for account in group:
                    body = {"event_id": uuid.uuid4().hex, "event": "Ping", "account_id": account}
                    value = json.dumps(body | {"timestamp": format_ts(time.time())}).encode()
                    await producer.send(topic, key=account.encode(), value=value)
    finally:
        await producer.stop()


def test_events_published_in_transactions_alert_and_leave_no_false_gap_or_stall(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """Two transactions of three events: every event alerts, every inactivity deadline fires from the
    wall clock, the group commits to the end of each partition, and no gap or stall is reported."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    settings = settings_factory(
        topic_partitions=2,
        rules_path=rules,
        worker_web_port=free_port(),
        event_time_only=False,
        allowed_lateness_seconds=1.0,
        partition_stall_seconds=STALL_S,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=180)

    accounts = [[f"tx{t}-{i}" for i in range(3)] for t in range(2)]
    asyncio.run(_publish_in_transactions(kafka_bootstrap, names.events, accounts))
    alerts = consume_records(kafka_bootstrap, names.alerts, expected=12, timeout_s=120)
    got = sorted((json.loads(a.value)["rule_id"], json.loads(a.value)["account_id"]) for a in alerts)
    assert got == sorted((rule, a) for rule in ("ping", "quiet") for group in accounts for a in group)

    consumer = KafkaConsumer(bootstrap_servers=[kafka_bootstrap], group_id=f"{settings.topic_prefix}-rules")
    try:
        tps = [TopicPartition(names.events, p) for p in range(2)]
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(consumer.committed(tp) != ends[tp] for tp in tps):
            time.sleep(1)
        assert {tp.partition: consumer.committed(tp) for tp in tps} == {tp.partition: ends[tp] for tp in tps}
    finally:
        consumer.close()
    time.sleep(STALL_S + 4)  # longer than the stall time, with nothing to read
    samples = scrape(settings.worker_web_port)
    assert metric_sum(samples, "preempt_partition_stalls_total") == 0
    assert metric_sum(samples, "preempt_event_offset_gaps_total") == 0
    assert "records skipped" not in worker.log_text()
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker_web_port}/readyz", timeout=5) as resp:
        assert resp.status == 200
    assert worker.proc.poll() is None
