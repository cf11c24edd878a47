"""Poison for a LIVE rules worker: each class is dead-lettered or quarantined with its reason, the worker
stays up, and every good record after it is processed with its alert (issue 10, failure policy).

One worker process serves every poison class of the first phase (to keep the test fast); the
second phase restarts it over a changelog holding an unreadable state.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from schemas.event import format_ts
from streams.runtime.dead_letters import DETAIL, REASON, SOURCE_TOPIC, TRUNCATED
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from streams.worker.processor import partition_for_key
from tests.integration.conftest import ManagedProcess
from tests.integration.pipeline_support import scrape, wait_for_metric

RULES = """
rules:
  - id: ping
    kind: any
    title: "Ping from {{ account.name }}"
    severity: low
    priority: 5
    match: {event: Ping}
  - id: big-spend
    kind: threshold
    title: "{{ account.name }} spent a lot"
    severity: high
    priority: 1
    match: {event: Purchase}
    window: 1h
    measure: sum:properties.amount
    min: 100
"""
PARTITIONS = 4
LATENESS = 10.0
MAX_STATE_BYTES = 8192
GIANT_BYTES = 1_040_000  # under the producer's and the broker's default limit of 1 MiB, with key and headers


def _event(account: str, name: str, ts: float, **fields: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "event": name, "account_id": account, "timestamp": format_ts(ts)} | fields


def _send(producer: KafkaProducer, topic: str, account: str, value: dict[str, Any] | bytes) -> None:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    producer.send(topic, key=account.encode(), value=raw, headers=[("content-type", b"application/json")])


def _accounts_on(partition: int, prefix: str, n: int) -> list[str]:
    """``n`` account ids that Kafka's default partitioner puts on ``partition``."""
    found: list[str] = []
    i = 0
    while len(found) < n:
        name = f"{prefix}-{i}"
        if partition_for_key(name.encode(), PARTITIONS) == partition:
            found.append(name)
        i += 1
    return found


class Outputs:
    """Reads the alerts and events DLQ topics as they grow (one consumer each, bounded waits)."""

    def __init__(self, bootstrap: str, names: TopicNames) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self._consumer = KafkaConsumer(
            bootstrap_servers=[bootstrap], auto_offset_reset="earliest", enable_auto_commit=False
        )
        tps = [TopicPartition(t, p) for t in (names.alerts, names.events_dlq) for p in range(PARTITIONS)]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)
        self._names = names
        self.alerts: list[dict[str, Any]] = []
        self.dead_letters: list[Any] = []

    def poll_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in self._consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.topic == self._names.alerts:
                        self.alerts.append(json.loads(record.value))
                    else:
                        self.dead_letters.append(record)
            if done():
                return
        raise AssertionError(f"{what} not seen within {timeout_s}s; alerts={self.alert_keys()} dlq={self.reasons()}")

    def alert_keys(self) -> set[tuple[str, str]]:
        return {(a["rule_id"], a["account_id"]) for a in self.alerts}

    def reasons(self) -> list[str]:
        return [dict(r.headers)[REASON].decode() for r in self.dead_letters]

    def letters(self, reason: str) -> list[Any]:
        return [r for r in self.dead_letters if dict(r.headers)[REASON].decode() == reason]

    def close(self) -> None:
        self._consumer.close()


def test_every_poison_class_is_contained_and_the_good_records_after_it_alert(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Deep nesting, huge integers, control characters, a record at Kafka's size limit, an over-limit
    state, an overflowing sum, a future-stamped event and unreadable state in the changelog: the live
    worker stays up, each is dead-lettered or quarantined with its reason, and every good record after
    it alerts."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "poison.yaml").write_text(RULES, encoding="utf-8")
    settings = settings_factory(
        rules_path=rules,
        worker_web_port=free_port(),
        allowed_lateness_seconds=LATENESS,
        max_state_bytes=MAX_STATE_BYTES,
        event_time_only=False,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = process_factory(["preempt", "worker"], settings, name="worker-1")
    worker.wait_for_log("rules worker ready", timeout_s=120)
    out = Outputs(kafka_bootstrap, names)
    try:
        _first_phase(settings, names, worker, producer, out)
        _second_phase(settings, names, worker, producer, out, process_factory)
    finally:
        out.close()


def _first_phase(
    settings: Settings, names: TopicNames, worker: ManagedProcess, producer: KafkaProducer, out: Outputs
) -> None:
    now = time.time()
    fast_partition = partition_for_key(b"fast-clock", PARTITIONS)
    on_time = _accounts_on(fast_partition, "on-time", 3)
    poison = {
        "too_deep": _event("deep", "Ping", now, properties={"x": json.loads("[" * 300 + "]" * 300)}),
        "number_out_of_range": _event("huge", "Ping", now, properties={"n": 2**63}),
        "control_character": _event("ctl\x00acct", "Ping", now),
    }
    expected: set[tuple[str, str]] = set()
    for i, (reason, event) in enumerate(poison.items()):
        _send(producer, names.events, event["account_id"], event)
        good = f"after-{reason}-{i}"
        _send(producer, names.events, good, _event(good, "Ping", now))
        expected.add(("ping", good))
    # A record as large as Kafka's default limit allows: sent whole with the verdict headers, its
    # dead letter would be refused by the worker's producer, and the worker would stop on it.
    _send(producer, names.events, "giant", b"x" * GIANT_BYTES)
    _send(producer, names.events, "after-giant", _event("after-giant", "Ping", now))
    expected.add(("ping", "after-giant"))
    # An overflowing custom sum: values whose sum is infinite are skipped; the finite ones still fire.
    for amount in (1.7e308, 1.7e308, 60, 50):
        _send(producer, names.events, "spender", _event("spender", "Purchase", now, properties={"amount": amount}))
    expected.add(("big-spend", "spender"))
    # An account whose state grows past PREEMPT_MAX_STATE_BYTES (8 KiB): 64-character ids fill the dedup set.
    for i in range(200):
        bulk = _event("bulky", "Bulk", now) | {"event_id": f"{i:064d}"}
        _send(producer, names.events, "bulky", bulk)
    _send(producer, names.events, "after-bulky", _event("after-bulky", "Ping", now))
    expected.add(("ping", "after-bulky"))
    _send(producer, names.events, "corrupt-me", _event("corrupt-me", "Ping", now))
    expected.add(("ping", "corrupt-me"))
    producer.flush()
    # A client clock 4 minutes fast (inside the 5-minute skew): on-time events of other accounts on
    # its partition must not become late.
    _send(producer, names.events, "fast-clock", _event("fast-clock", "Ping", now + 240))
    producer.flush()
    # The on-time events must come in a later batch than the future-stamped one.
    wait_for_metric(settings.worker_web_port, "preempt_future_events_total", 1, timeout_s=60)
    later = time.time()
    for account in on_time:
        _send(producer, names.events, account, _event(account, "Ping", later - 0.5))
        expected.add(("ping", account))
    producer.flush()

    out.poll_until(lambda: expected <= out.alert_keys(), 120, "every good record's alert")
    out.poll_until(
        lambda: (
            {"too_deep", "number_out_of_range", "control_character", "state_too_large", "too_large"}
            <= set(out.reasons())
        ),
        60,
        "the dead letters",
    )
    assert worker.proc.poll() is None, "the worker stopped"
    assert [a["evidence"]["value"] for a in out.alerts if a["rule_id"] == "big-spend"] == [110.0]
    too_large = out.letters("state_too_large")
    assert {r.key for r in too_large} == {b"bulky"}
    assert all(dict(r.headers)[SOURCE_TOPIC] == b"account-state" for r in too_large)
    assert all(r.value is None or len(r.value) <= MAX_STATE_BYTES for r in too_large)
    (giant,) = out.letters("too_large")
    assert giant.key == b"giant"
    assert giant.value is not None
    assert 0 < len(giant.value) < GIANT_BYTES
    assert giant.value == b"x" * len(giant.value)  # the record's first bytes
    assert dict(giant.headers)[TRUNCATED].startswith(f"value cut from {GIANT_BYTES} to ".encode())
    samples = scrape(settings.worker_web_port)
    assert samples['preempt_accounts_quarantined_total{reason="state_too_large"}'] >= 1
    assert samples['preempt_events_dead_lettered_total{reason="too_large"}'] == 1
    assert samples['preempt_measure_values_skipped_total{reason="out_of_range"}'] == 2
    assert samples["preempt_future_events_total"] >= 1
    assert samples.get(f'preempt_late_events_total{{partition="{fast_partition}"}}', 0.0) == 0.0
    assert samples["preempt_account_state_bytes_count"] > 0
    for reason in ("too_deep", "number_out_of_range", "control_character"):
        assert samples[f'preempt_events_dead_lettered_total{{reason="{reason}"}}'] == 1


def _second_phase(
    settings: Settings,
    names: TopicNames,
    worker: ManagedProcess,
    producer: KafkaProducer,
    out: Outputs,
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """Unreadable bytes in the state changelog: the restarted worker quarantines the account, not itself."""
    worker.stop()
    changelog = f"{settings.topic_prefix}-rules-account-state-changelog"
    garbage = b"\x00\x01 this is not an account state"
    partition = partition_for_key(b"corrupt-me", PARTITIONS)
    producer.send(changelog, key=b"corrupt-me", value=garbage, partition=partition)
    producer.flush()
    restarted = process_factory(
        ["preempt", "worker"], settings, name="worker-2", PREEMPT_WORKER_WEB_PORT=str(free_port())
    )
    restarted.wait_for_log("rules worker ready", timeout_s=120)
    now = time.time()
    before = len([a for a in out.alerts if a["account_id"] == "corrupt-me"])
    for account in ("corrupt-me", "after-corrupt"):
        _send(producer, names.events, account, _event(account, "Ping", now))
    producer.flush()
    out.poll_until(
        lambda: (
            len([a for a in out.alerts if a["account_id"] == "corrupt-me"]) > before
            and ("ping", "after-corrupt") in out.alert_keys()
        ),
        120,
        "alerts after the unreadable state",
    )
    [letter] = out.letters("state_unreadable")
    assert (letter.key, letter.value) == (b"corrupt-me", garbage)
    assert b"StateDecodeError" in dict(letter.headers)[DETAIL]
    assert restarted.proc.poll() is None, "the restarted worker stopped"
    assert "account state quarantined" in restarted.log_text()
