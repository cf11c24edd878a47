"""Two rules workers with RocksDB stores (each its own data folder, as on two hosts) hand partitions back and
forth with events in between: a worker given back a partition it held before has that partition's local
store from then, older than the changelog. Its state must be the changelog's, not the old local one.

Faust keeps the changelog offset a partition's store has applied in the store itself (``__faust\0offset__``)
and recovery reads the changelog on from there, so the old store is brought up to date rather than
discarded (a full re-read would cost the whole changelog at every handover). The worker writes no
tombstones, so compaction cannot hide a change from that catch-up. This test guards that behaviour."""

from __future__ import annotations

import json
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
from tests.integration.topology_support import wait_committed

RULES = """\
rules:
  - {id: pings, kind: threshold, title: t, severity: high, priority: 2,
     match: {event: Ping}, measure: count, window: 1h, min: 3, cooldown: 2h}
"""
ACCOUNTS = [f"acct-{i:02d}" for i in range(24)]


def _ping_all(producer: KafkaProducer, topic: str, phase: int) -> None:
    now = time.time()
    for account in ACCOUNTS:
        body = {"event_id": f"{account}-{phase}", "event": "Ping", "account_id": account, "timestamp": format_ts(now)}
        producer.send(topic, key=account.encode(), value=json.dumps(body).encode())
    producer.flush()


def _store_offsets(worker: ManagedProcess) -> dict[int, int]:
    """The account-state changelog offset each partition's recovery started from (Faust's INFO table, one row
    a partition in the record's ``table``; -1: no local store), from the worker's first recovery."""
    for line in worker.log_text().splitlines():
        if "Reading Starts At - Active" in line:
            rows = json.loads(line)["table"]
            return {
                row["partition"]: row["offset"]
                for row in rows
                if str(row["topic"]).endswith("-account-state-changelog")
            }
    raise AssertionError(f"no recovery table in the log:\n{worker.log_text()[-3000:]}")


def test_a_worker_given_back_a_partition_evaluates_on_the_changelogs_state_not_its_old_local_store(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """A alone (1 ping per account), B joins (2nd ping), B stops (3rd ping, on A: every account fires once),
    B back (4th ping, its partitions recovered over its stale local store): each account alerted exactly
    once (the cooldown holds). A store older than the changelog would count 3 again on B and fire again."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "pack.yaml").write_text(RULES)
    a_settings = settings_factory(
        worker_web_port=free_port(), store="rocksdb://", rules_path=tmp_path / "rules", data_dir=tmp_path / "a"
    )
    b_settings = a_settings.model_copy(update={"worker_web_port": free_port(), "data_dir": tmp_path / "b"})
    ensure_topics(a_settings)
    names = TopicNames.from_settings(a_settings)
    group = f"{a_settings.topic_prefix}-rules"

    a = process_factory(["preempt", "worker"], a_settings, name="worker-a")
    a.wait_for_log("rules worker ready", timeout_s=90)
    _ping_all(producer, names.events, 1)
    wait_committed(kafka_bootstrap, group, names.events, len(ACCOUNTS), timeout_s=120)

    b = process_factory(["preempt", "worker"], b_settings, name="worker-b1")
    b.wait_for_log("rules worker ready", timeout_s=90)
    time.sleep(3)
    _ping_all(producer, names.events, 2)
    wait_committed(kafka_bootstrap, group, names.events, 2 * len(ACCOUNTS), timeout_s=120)
    time.sleep(3)
    b.stop()

    time.sleep(5)
    _ping_all(producer, names.events, 3)
    wait_committed(kafka_bootstrap, group, names.events, 3 * len(ACCOUNTS), timeout_s=120)
    time.sleep(3)

    b2 = process_factory(["preempt", "worker"], b_settings, name="worker-b2")
    b2.wait_for_log("rules worker ready", timeout_s=90)
    time.sleep(3)
    _ping_all(producer, names.events, 4)
    wait_committed(kafka_bootstrap, group, names.events, 4 * len(ACCOUNTS), timeout_s=120)

    records = consume_records(kafka_bootstrap, names.alerts, 2 * len(ACCOUNTS), timeout_s=30, idle_s=8.0)
    per_account = Counter(json.loads(r.value)["account_id"] for r in records)
    # The scenario happened: the first B started with no store, the second one from its old local store.
    assert set(_store_offsets(b).values()) == {-1}
    assert any(offset >= 0 for offset in _store_offsets(b2).values()), _store_offsets(b2)
    assert per_account == dict.fromkeys(ACCOUNTS, 1), per_account
