"""Events that reach the wrong partition (no key, another key, another partitioner) are forwarded to
their account's partition, so an account's rules see all its events whichever worker reads them.

DESIGN.md section 2: every topic is keyed by ``account_id`` so that one account's events, state and
alerts live on one partition. A client that sends without a key (or with librdkafka's default
partitioner) puts them elsewhere; before, the worker that read such an event evaluated it against
an empty state of its own, and the account's rules never saw the two events together.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from streams.worker.emit import FORWARDED_FROM
from streams.worker.processor import partition_for_key
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import metric_sum, scrape

RULES = """
rules:
  - id: two-purchases
    kind: threshold
    title: "{{ account.name }} bought twice"
    severity: medium
    priority: 2
    match: {event: Purchase}
    window: 1h
    measure: count
    min: 2
"""
PARTITIONS = 2


def _rebuilt_partitions(proc: ManagedProcess) -> list[int] | None:
    """The partitions of the worker's last ``worker state rebuilt`` line (None before the first)."""
    last = None
    for line in proc.log_text().splitlines():
        if '"worker state rebuilt"' in line:
            last = json.loads(line)["partitions"]
    return last


def _wait_for_split(workers: list[ManagedProcess], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = [_rebuilt_partitions(w) for w in workers]
        if all(h is not None and len(h) == 1 for h in held) and sorted(h[0] for h in held if h) == [0, 1]:
            return
        time.sleep(0.5)
    raise AssertionError(f"the two workers did not split the partitions within {timeout_s}s: {held}")


def _purchase(account: str) -> bytes:
    body = {"event_id": uuid.uuid4().hex, "event": "Purchase", "account_id": account}
    return json.dumps(body | {"timestamp": format_ts(time.time())}).encode()


def _records_on(bootstrap: str, topic: str, partition: int) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        return list(consumer)
    finally:
        consumer.close()


def test_an_event_without_a_key_on_another_workers_partition_still_counts_for_its_account(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Two workers, one partition each: an account's first purchase is keyed, its second has no key and
    lands on the other worker's partition; it is forwarded (header says from where, counted once) and
    the account's "bought twice" rule fires exactly once."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    settings = settings_factory(
        topic_partitions=PARTITIONS,
        rules_path=rules,
        worker_web_port=free_port(),
        event_time_only=False,
        allowed_lateness_seconds=1.0,
        worker_session_timeout_seconds=10.0,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    first = process_factory(["preempt", "worker"], settings, name="worker-1")
    first.wait_for_log("rules worker ready", timeout_s=180)
    second_settings = settings.model_copy(update={"worker_web_port": free_port()})
    second = process_factory(["preempt", "worker"], second_settings, name="worker-2")
    _wait_for_split([first, second], timeout_s=180)

    account = f"acct-{uuid.uuid4().hex[:8]}"
    home = partition_for_key(account.encode(), PARTITIONS)
    stray = 1 - home
    producer.send(names.events, key=account.encode(), value=_purchase(account)).get(timeout=30)
    keyless = producer.send(names.events, key=None, value=_purchase(account), partition=stray).get(timeout=30)

    alerts = consume_records(kafka_bootstrap, names.alerts, expected=1, timeout_s=90, idle_s=5.0)
    assert [(json.loads(a.value)["rule_id"], json.loads(a.value)["account_id"]) for a in alerts] == [
        ("two-purchases", account)
    ]
    forwarded = [r for r in _records_on(kafka_bootstrap, names.events, home) if dict(r.headers).get(FORWARDED_FROM)]
    assert len(forwarded) == 1
    assert forwarded[0].key == account.encode()
    assert dict(forwarded[0].headers)[FORWARDED_FROM] == f"{stray}/{keyless.offset}".encode()
    samples = [scrape(settings.worker_web_port), scrape(second_settings.worker_web_port)]
    assert sum(metric_sum(s, 'preempt_events_total{outcome="forwarded"}') for s in samples) == 1
    assert sum(metric_sum(s, 'preempt_events_total{outcome="accepted"}') for s in samples) == 2
