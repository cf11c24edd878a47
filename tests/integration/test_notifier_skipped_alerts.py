"""An alert record Faust acknowledges without handing it to the notifier's agent is still delivered, once.

faust-streaming 0.15 was seen to skip a record soon after an assignment and commit past it: the rules
worker re-reads such records (gap repair), the notifier did not, so the CSM was never told and nothing
said so. ``tests/integration/skipping_notifier.py`` runs the real notifier with that skip made to happen
on one record; the notifier must see the offset jump, read the record again and deliver its alert.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.producer.future import RecordMetadata

from alerts.app import app_id
from schemas.alert import Alert
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import (
    CONSOLE_PER_ALERT_ROUTES,
    account_per_partition,
    log_records,
    make_alert,
    metric_value,
    notifier_settings,
    start_notifier,
    wait_for_records,
    write_routes,
)


def _committed(bootstrap: list[str], group: str, tp: TopicPartition) -> int | None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        meta = admin.list_group_offsets({group: [tp]}).get(group, {}).get(tp)
        return None if meta is None else meta.offset
    finally:
        admin.close()


def _wait_committed(settings: Settings, tp: TopicPartition, offset: int, notifier: ManagedProcess) -> None:
    """Wait (bounded) until the notifiers' group committed ``offset`` on ``tp``."""
    deadline = time.monotonic() + 60
    while (committed := _committed(settings.bootstrap_servers, app_id(settings), tp)) != offset:
        if time.monotonic() > deadline:
            pytest.fail(
                f"the group's offset of {tp} stayed at {committed}, not {offset}:\n{notifier.log_text()[-3000:]}"
            )
        time.sleep(0.5)


def _start_skipping(
    process_factory: Callable[..., ManagedProcess], settings: Settings, tp: TopicPartition, offset: int
) -> ManagedProcess:
    """Start the real notifier with Faust's skip of ``offset`` of ``tp`` made to happen; wait until it happened."""
    notifier = process_factory(
        [sys.executable, "-m", "tests.integration.skipping_notifier"],
        settings,
        name="skipping-notifier",
        SKIP_ALERT_RECORD=f"{tp.topic}:{tp.partition}:{offset}",
    )
    notifier.wait_for_log("notifier ready", timeout_s=90)
    dropped = wait_for_records(notifier, "test: record dropped before the agent", 1, timeout_s=60)
    assert [(r["partition"], r["offset"]) for r in dropped] == [(tp.partition, offset)]
    return notifier


def test_an_alert_faust_skipped_is_reread_and_delivered_once(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """Four alerts of one account; Faust skips the third (offset 2) and marks it done. The notifier reads it
    again, delivers every alert exactly once (the skipped one too), counts the repair, logs it once, and the
    group's offset is committed past the four."""
    settings = notifier_settings(
        settings_factory, write_routes(tmp_path, CONSOLE_PER_ALERT_ROUTES), notifier_commit_interval_seconds=0.5
    )
    ensure_topics(settings)
    alerts = [make_alert("acme", title=f"Acme: signal {i}") for i in range(4)]
    sent = [
        producer.send(topics.alerts, key=a.account_id.encode(), value=a.model_dump_json().encode()).get(timeout=30)
        for a in alerts
    ]
    partition = sent[0].partition
    assert [m.offset for m in sent] == [0, 1, 2, 3]  # a fresh topic: the skipped alert is at offset 2
    notifier = _start_skipping(process_factory, settings, TopicPartition(topics.alerts, partition), 2)
    delivered = wait_for_records(notifier, "alert delivered", 4, timeout_s=60)
    ids = [r["alert_id"] for r in delivered]
    assert sorted(ids) == sorted(a.alert_id for a in alerts)
    repaired = log_records(notifier, "records skipped before reaching the notifier; re-read them from Kafka")
    assert [(r["partition"], r["first_missing"], r["next_seen"], r["recovered"]) for r in repaired] == [
        (partition, 2, 3, 1)
    ]
    assert metric_value(settings, "preempt_notifier_skipped_alerts_total", outcome="repaired") == 1
    assert metric_value(settings, "preempt_notifier_skipped_alerts_total", outcome="lost") == 0
    _wait_committed(settings, TopicPartition(topics.alerts, partition), 4, notifier)
    notifier.stop()
    # Nothing more was delivered while it ran on: each alert once.
    assert sorted(r["alert_id"] for r in log_records(notifier, "alert delivered")) == sorted(ids)


def test_an_alert_faust_skipped_first_after_an_assignment_is_reread_and_delivered(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """A notifier committed the partition to offset 2 and stopped; the next one is assigned it and Faust skips
    its very first record (offset 2): the first alert it is given (offset 3) is checked against the committed
    offset, and the skipped one read again and delivered."""
    settings = notifier_settings(
        settings_factory, write_routes(tmp_path, CONSOLE_PER_ALERT_ROUTES), notifier_commit_interval_seconds=0.5
    )
    ensure_topics(settings)
    alerts = [make_alert("acme", title=f"Acme: signal {i}") for i in range(4)]

    def send(alert: Alert) -> RecordMetadata:
        value = alert.model_dump_json().encode()
        return producer.send(topics.alerts, key=alert.account_id.encode(), value=value).get(timeout=30)

    first = [send(a) for a in alerts[:2]]
    tp = TopicPartition(topics.alerts, first[0].partition)
    before = start_notifier(process_factory, settings, name="first-notifier")
    wait_for_records(before, "alert delivered", 2, timeout_s=60)
    _wait_committed(settings, tp, 2, before)
    before.stop()
    assert [send(a).offset for a in alerts[2:]] == [2, 3]
    notifier = _start_skipping(process_factory, settings, tp, 2)
    delivered = wait_for_records(notifier, "alert delivered", 2, timeout_s=60)
    assert sorted(r["alert_id"] for r in delivered) == sorted(a.alert_id for a in alerts[2:])
    repaired = log_records(notifier, "records skipped before reaching the notifier; re-read them from Kafka")
    assert [(r["first_missing"], r["next_seen"], r["recovered"]) for r in repaired] == [(2, 3, 1)]
    _wait_committed(settings, tp, 4, notifier)


def test_the_first_alerts_of_many_partitions_ask_the_coordinator_once(
    settings_factory: Callable[..., Settings],
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """A notifier assigned twelve partitions of preempt.alerts, an alert on each: the skip check of each
    partition's first alert needs the group's committed offset, asked of the coordinator in one OffsetFetch for
    all twelve, not one per partition in turn (before: twelve requests of one partition each, each a round trip
    before that partition's first alert). Every alert is delivered once."""
    settings = notifier_settings(
        settings_factory, write_routes(tmp_path, CONSOLE_PER_ALERT_ROUTES), topic_partitions=12, log_level="DEBUG"
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    accounts = account_per_partition(12)
    notifier = start_notifier(process_factory, settings)
    alerts = [make_alert(account) for account in accounts.values()]
    for alert in alerts:
        producer.send(names.alerts, key=alert.account_id.encode(), value=alert.model_dump_json().encode())
    producer.flush()
    delivered = wait_for_records(notifier, "alert delivered", 12, timeout_s=60)
    assert sorted(r["alert_id"] for r in delivered) == sorted(a.alert_id for a in alerts)
    asked = log_records(notifier, "committed offsets asked of the group coordinator")
    # One request for the whole assignment, answered by the real coordinator (before: one per partition).
    assert [(r["partitions"], r["answered"]) for r in asked] == [(list(range(12)), True)]
