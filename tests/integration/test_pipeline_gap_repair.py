"""Gap repair: the records of a skipped offset range are re-read from the real broker."""

from __future__ import annotations

from collections.abc import Callable

from kafka import KafkaProducer
from structlog.testing import capture_logs

from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames, ensure_topics
from streams.worker.gap_repair import GapRepair


async def _ten_records_the_first_five_deleted(
    settings: Settings, producer: KafkaProducer, topic: str, partition: int
) -> None:
    """Offsets 0-9 on ``partition`` of ``topic``, then 0-4 deleted as retention would (log start offset 5)."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    for i in range(10):
        producer.send(topic, key=b"acme", value=f"v{i}".encode(), partition=partition)
    producer.flush()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(before_offset=5)})
    finally:
        await admin.close()


async def test_fetch_returns_exactly_the_missing_offsets(
    settings_factory: Callable[..., Settings], producer: KafkaProducer
) -> None:
    """Asking for offsets 3–5 of a partition returns those three records with key, value and headers."""
    settings = settings_factory()
    ensure_topics(settings)
    topic = TopicNames.from_settings(settings).events
    for i in range(10):
        producer.send(topic, key=b"acme", value=f"v{i}".encode(), partition=1, headers=[("h", b"x")])
    producer.flush()
    repair = GapRepair(settings, topic)
    try:
        got = await repair.fetch(1, 3, 6)
    finally:
        await repair.close()
    assert [(r.offset, r.value, list(r.headers)) for r in got] == [
        (n, f"v{n}".encode(), [("h", b"x")]) for n in (3, 4, 5)
    ]
    assert all(r.partition == 1 and r.key == b"acme" and r.topic == topic for r in got)


async def test_first_only_stops_at_the_first_record_of_the_range(
    settings_factory: Callable[..., Settings], producer: KafkaProducer
) -> None:
    """``first_only`` answers whether a range holds a record with just its first one, complete."""
    settings = settings_factory()
    ensure_topics(settings)
    topic = TopicNames.from_settings(settings).events
    for i in range(10):
        producer.send(topic, key=b"acme", value=f"v{i}".encode(), partition=1)
    producer.flush()
    repair = GapRepair(settings, topic)
    try:
        got, complete = await repair.read_range(1, 2, 10, first_only=True)
        empty, empty_complete = await repair.read_range(1, 10, 10, first_only=True)
    finally:
        await repair.close()
    assert ([(r.offset, r.value) for r in got], complete) == ([(2, b"v2")], True)
    assert (empty, empty_complete) == ([], True)


async def test_a_range_retention_deleted_is_reported_incomplete_not_read_as_empty(
    settings_factory: Callable[..., Settings], producer: KafkaProducer
) -> None:
    """Offsets below the log start offset (deleted by retention) make the read incomplete with an
    ERROR, and the records of the range still in Kafka are read; a ``first_only`` probe of such a
    range is incomplete too (it read as complete and empty: lost records passed for markers)."""
    settings = settings_factory()
    ensure_topics(settings)
    topic = TopicNames.from_settings(settings).events
    await _ten_records_the_first_five_deleted(settings, producer, topic, 1)
    repair = GapRepair(settings, topic)
    try:
        with capture_logs() as logs:
            got, complete = await repair.read_range(1, 2, 8)
            probe, probe_complete = await repair.read_range(1, 2, 8, first_only=True)
            after, after_complete = await repair.read_range(1, 6, 8, first_only=True)  # the consumer still works
    finally:
        await repair.close()
    assert ([r.offset for r in got], complete) == ([5, 6, 7], False)
    assert (probe, probe_complete) == ([], False)
    assert ([r.offset for r in after], after_complete) == ([6], True)
    lost = [e for e in logs if e["event"].startswith("records deleted from Kafka (retention)")]
    assert [(e["log_level"], e["first_missing"], e["next_seen"]) for e in lost] == [("error", 2, 8)] * 2


async def test_the_side_consumer_reads_with_the_isolation_level_it_is_given(
    settings_factory: Callable[..., Settings],
) -> None:
    """Read committed (Faust's consumer under exactly-once), an aborted transaction's records are
    not in the range (they read as markers only); read uncommitted (at-least-once) they are."""
    from aiokafka import AIOKafkaProducer

    settings = settings_factory()
    ensure_topics(settings)
    topic = TopicNames.from_settings(settings).events
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, transactional_id=f"{topic}-tx")
    await producer.start()
    try:
        await producer.begin_transaction()
        for i in range(3):
            await producer.send_and_wait(topic, key=b"acme", value=f"v{i}".encode(), partition=2)
        await producer.abort_transaction()
    finally:
        await producer.stop()
    committed = GapRepair(settings, topic, isolation_level=lambda: "read_committed")
    uncommitted = GapRepair(settings, topic, isolation_level=lambda: "read_uncommitted")
    try:
        seen_committed, complete_committed = await committed.read_range(2, 0, 4)
        seen_uncommitted, _ = await uncommitted.read_range(2, 0, 4)
    finally:
        await committed.close()
        await uncommitted.close()
    assert (seen_committed, complete_committed) == ([], True)
    assert [r.value for r in seen_uncommitted] == [b"v0", b"v1", b"v2"]


async def test_the_notifiers_reader_leaves_a_range_retention_deleted_to_its_caller_to_log(
    settings_factory: Callable[..., Settings], producer: KafkaProducer
) -> None:
    """The side reader as the notifier builds it (``report_deleted=False``) re-reads a range retention cut:
    the records still there, incomplete, and no log line of its own nor of the re-read — the notifier logs
    the loss once, counted (before: the reader's, the re-read's and the notifier's, three ERRORs for one loss)."""
    from streams.runtime.range_reader import RangeReader
    from streams.runtime.skipped_records import reread_skipped

    settings = settings_factory()
    ensure_topics(settings)
    topic = TopicNames.from_settings(settings).alerts
    await _ten_records_the_first_five_deleted(settings, producer, topic, 2)
    reader = RangeReader(settings, topic, timeout_s=5.0, reader="the notifier", report_deleted=False)
    try:
        with capture_logs() as logs:
            skipped = await reread_skipped(reader, 2, 2, 8, "the notifier")
    finally:
        await reader.close()
    assert ([r.offset for r in skipped.records], skipped.complete, skipped.lost) == ([5, 6, 7], False, 3)
    assert [e for e in logs if e["log_level"] != "debug"] == []
