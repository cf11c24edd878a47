"""One test per faust-streaming/mode assumption in ``streams.runtime.faust_compat``: each fails when an
upgrade changes the private behaviour a workaround relies on."""

from __future__ import annotations

import asyncio
import inspect
from importlib import metadata
from pathlib import Path
from typing import Any

import faust
import faust.streams
import mode.utils.queues
import pytest
from faust.assignor import partition_assignor
from faust.tables import recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.runtime import faust_compat
from streams.runtime.faust_compat import (
    ExistingTopicGlobalTable,
    UntestedFaustError,
    committed_offsets,
    current_event_scope,
    keep_queue_across_flow_resume,
    placeholder_event,
    require_tested_versions,
)


def _app(name: str) -> faust.App:
    return faust.App(name, broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)


def test_installed_versions_are_the_tested_ones() -> None:
    """The installed faust-streaming and mode are on the tested list (the start-up check passes)."""
    assert faust_compat.untested_versions() == []
    require_tested_versions()


def test_an_untested_version_is_refused_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """An untested faust-streaming version raises one line naming it, the tested one and the way out."""
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda d: "9.9.9" if d == "faust-streaming" else real(d))
    with pytest.raises(UntestedFaustError) as info:
        require_tested_versions()
    message = str(info.value)
    assert "\n" not in message
    assert "faust-streaming 9.9.9 (tested: 0.15.3)" in message
    assert "PREEMPT_ALLOW_UNTESTED_FAUST=true" in message
    require_tested_versions(allow_untested=True)  # the explicit override starts anyway


def test_current_event_scope_sets_what_faust_reads_as_the_current_event() -> None:
    """Inside the scope ``faust.streams.current_event()`` is the placeholder; outside it is unset again."""
    app = _app("compat-current-event")
    event = placeholder_event(app, "events", 3)
    assert faust.streams.current_event() is None
    with current_event_scope(event):
        assert faust.streams.current_event() is event
    assert faust.streams.current_event() is None


def test_table_writes_take_their_partition_from_the_current_event() -> None:
    """``Table.partition_for_key`` (the changelog partition of a write) is the current event's partition."""
    app = _app("compat-table-partition")
    table = app.Table("state", key_type=bytes, value_type=bytes, partitions=8)
    with current_event_scope(placeholder_event(app, "events", 5)):
        assert table.partition_for_key(b"any-account") == 5
    with pytest.raises(TypeError):  # outside stream iteration Faust refuses: the reason for the scope
        table.partition_for_key(b"any-account")


def test_rocksdb_store_reads_the_current_event_for_its_partition_database() -> None:
    """RocksDB's ``_set`` picks the local partition database from ``current_event()``."""
    from faust.stores import rocksdb

    assert "current_event()" in inspect.getsource(rocksdb.Store._set)


def test_flow_resume_clears_registered_queues_and_discarding_one_keeps_it() -> None:
    """mode's ``FlowControlEvent.resume`` clears the queues in ``_queues``; a discarded queue keeps its items."""

    async def scenario() -> tuple[int, int, bool]:
        app = _app("compat-flow")
        kept_queue = app.topic("events").clone(is_iterator=True).queue
        other_queue = app.topic("other").clone(is_iterator=True).queue
        assert isinstance(app.flow_control, mode.utils.queues.FlowControlEvent)
        assert kept_queue in app.flow_control._queues  # registered by clear_on_resume=True
        for q in (kept_queue, other_queue):
            q.put_nowait("record")
        done = keep_queue_across_flow_resume(app, kept_queue)
        app.flow_control.resume()
        return kept_queue.qsize(), other_queue.qsize(), done

    kept, cleared, done = asyncio.run(scenario())
    assert (kept, cleared, done) == (1, 0, True)


def test_recovery_resumes_flow_after_awaiting_the_seek() -> None:
    """faust's ``on_recovery_completed`` still awaits the seek before ``flow_control.resume()`` (the race)."""
    source = inspect.getsource(recovery.Recovery.on_recovery_completed)
    assert source.index("perform_seek") < source.index("flow_control.resume()")


def test_assignor_finds_a_global_tables_changelog_by_changelog_topic_name() -> None:
    """The assignor asks ``table._changelog_topic_name()``; the override returns the real topic."""
    source = inspect.getsource(partition_assignor.PartitionAssignor._global_table_standby_assignments)
    assert "table._changelog_topic_name()" in source
    app = _app("compat-global")
    topic = app.topic("preempt.accounts", partitions=4)
    table = ExistingTopicGlobalTable(
        app, name="accounts", changelog_topic=topic, partitions=4, key_type=bytes, value_type=bytes
    )
    assert faust.GlobalTable(app, name="plain")._changelog_topic_name() == "compat-global-plain-changelog"
    assert table._changelog_topic_name() == "preempt.accounts"


def test_consumer_keeps_committed_offsets_in_committed_offset() -> None:
    """Faust's consumer records each commit (next offset to read) in ``_committed_offset`` by TP."""

    async def scenario() -> Any:
        app = faust.App("compat-committed", broker="kafka://127.0.0.1:1", web_enabled=False)
        consumer = app.consumer
        tp = TP("events", 2)
        assert committed_offsets(consumer).get(tp) is None

        async def commit(offsets: Any) -> bool:
            return True

        async def flush() -> None:
            return None

        consumer.assignment = lambda: {tp}  # type: ignore[method-assign]
        consumer._commit = commit  # type: ignore[method-assign]
        app.producer.flush = flush  # type: ignore[method-assign]
        await consumer._commit_offsets({tp: 42})
        return committed_offsets(consumer).get(tp)

    assert asyncio.run(scenario()) == 42
    assert "_committed_offset" in inspect.getsource(faust_consumer.Consumer.perform_seek)
    assert "_committed_offset" in inspect.getsource(faust_consumer.Consumer.on_partitions_revoked)


@pytest.mark.parametrize("command", ["worker", "notifier"])
def test_worker_and_notifier_refuse_an_untested_version_with_one_line(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``preempt worker``/``notifier`` on an untested faust exit 1 with one ``Error:`` line, no traceback."""
    from click.testing import CliRunner

    from streams.cli.main import main

    monkeypatch.setattr(faust_compat, "untested_versions", lambda: ["faust-streaming 0.16.0 (tested: 0.15.3)"])
    result = CliRunner().invoke(main, [command])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: untested faust-streaming 0.16.0 (tested: 0.15.3): install the versions")
    assert "Traceback" not in result.output
    # docs/pipeline.md shows this very line
    assert lines[0] in (Path(__file__).resolve().parents[4] / "docs" / "pipeline.md").read_text()


def test_an_unacked_hole_stops_commits_until_marked_done() -> None:
    """Faust commits nothing past a never-acked offset; ``mark_offsets_done`` lets it commit past it."""
    from streams.runtime.faust_compat import mark_offsets_done

    async def scenario() -> tuple[int | None, int | None]:
        app = faust.App("compat-gap", broker="kafka://127.0.0.1:1", web_enabled=False)
        consumer = app.consumer
        tp = TP("events", 0)
        consumer._committed_offset[tp] = 3
        consumer._acked[tp].extend([5, 6, 7])  # 3 and 4 were never acked
        consumer._acked_index[tp].update([5, 6, 7])
        stuck = consumer._new_offset(tp)
        await mark_offsets_done(app, tp, 3, 5)
        return stuck, consumer._new_offset(tp)

    assert asyncio.run(scenario()) == (None, 8)


def test_the_drain_loop_reads_records_through_the_consumers_getmany() -> None:
    """Faust's fetch loop takes ``self.getmany`` once and iterates it: an instance override is used."""
    source = inspect.getsource(faust_consumer.Consumer._drain_messages)
    assert "getmany = self.getmany" in source
    assert "getmany(timeout=1.0)" in source
    original = inspect.getsource(faust_consumer.Consumer.getmany)
    for name in ("self._wait_next_records(timeout)", "self.scheduler.iterate(records)", "self._to_message"):
        assert name in original


def test_set_fetch_max_wait_reaches_the_fetcher_of_the_consumer_faust_creates() -> None:
    """Faust hard-codes a 1.5 s fetch wait; ``set_fetch_max_wait`` changes what its aiokafka fetcher gets."""
    from streams.runtime.faust_compat import set_fetch_max_wait

    assert "fetch_max_wait_ms=1500" in inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer)

    async def scenario() -> tuple[int, int]:
        app = faust.App("compat-fetch-wait", broker="kafka://127.0.0.1:1", web_enabled=False)
        set_fetch_max_wait(app, 0.1)
        thread: Any = app.consumer._thread
        client = thread._create_worker_consumer(app.transport)
        # aiokafka hands the consumer's ``_fetch_max_wait_ms`` to the Fetcher it builds in start().
        start = inspect.getsource(type(client).start)
        assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in start
        return client._fetch_max_wait_ms, thread._create_worker_consumer(app.transport)._fetch_max_wait_ms

    assert asyncio.run(scenario()) == (100, 100)


def test_a_diverted_poll_goes_to_the_handler_and_other_topics_keep_faust_path() -> None:
    """The events topic's records of a poll reach the handler as one batch; other topics are yielded."""
    from aiokafka.structs import ConsumerRecord

    from streams.runtime.faust_compat import divert_topic_polls

    def record(topic: str, partition: int, offset: int) -> Any:
        return ConsumerRecord(topic, partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])

    async def scenario() -> tuple[list[Any], list[tuple[Any, int]]]:
        app = faust.App("compat-divert", broker="kafka://127.0.0.1:1", web_enabled=False)
        consumer: Any = app.consumer
        events0, events1, other = TP("events", 0), TP("events", 1), TP("changelog", 0)
        polled = {
            events0: [record("events", 0, 5), record("events", 0, 6)],
            events1: [record("events", 1, 9)],
            other: [record("changelog", 0, 3)],
        }

        async def wait_next_records(timeout: float) -> Any:  # noqa: ASYNC109 - Faust's signature
            return polled, {events0, events1, other}

        consumer._wait_next_records = wait_next_records
        consumer.highwater = lambda tp: 10
        handed: list[Any] = []

        async def handler(batch: dict[Any, list[Any]], generation: int) -> None:
            handed.append((batch, generation))

        divert_topic_polls(app, "events", handler)
        yielded = [(tp, message.offset) async for tp, message in consumer.getmany(timeout=1.0)]
        return handed, yielded

    handed, yielded = asyncio.run(scenario())
    [(batch, generation)] = handed
    assert {tp: [r.offset for r in rs] for tp, rs in batch.items()} == {TP("events", 0): [5, 6], TP("events", 1): [9]}
    assert generation == 0
    assert yielded == [(TP("changelog", 0), 3)]


def test_ack_offsets_lets_faust_commit_like_acked_messages() -> None:
    """Offsets acked through ``ack_offsets`` are committed by Faust's ``_new_offset`` like delivered ones."""
    from streams.runtime.faust_compat import ack_offsets

    app = faust.App("compat-ack", broker="kafka://127.0.0.1:1", web_enabled=False)
    consumer: Any = app.consumer
    tp = TP("events", 0)
    consumer._committed_offset[tp] = 10
    assert ack_offsets(app, tp, [8, 9, 10, 11, 12]) == 3  # below the commit: nothing to do
    assert ack_offsets(app, tp, [12]) == 0  # already acked
    assert consumer._n_acked == 3
    assert tp in set(consumer._filter_tps_with_pending_acks())
    assert consumer._new_offset(tp) == 13


def test_count_received_feeds_fausts_prometheus_message_counters() -> None:
    """A batch counted with ``count_received`` moves Faust's received-message counters by its size."""
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from prometheus_client import CollectorRegistry

    from streams.runtime.faust_compat import count_received

    registry = CollectorRegistry()
    app = faust.App("compat-count", broker="kafka://127.0.0.1:1", web_enabled=False)
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, "compat"))
    tp = TP("events", 1)
    count_received(app, tp, 3, 41)
    count_received(app, tp, 2, 43)
    assert registry.get_sample_value("compat_messages_received_total") == 5
    assert registry.get_sample_value("compat_messages_received_per_topic_total", {"topic": "events"}) == 5
    assert app.monitor.messages_received_by_topic["events"] == 5
    assert tp in app.monitor.stream_inbound_time  # Faust's livelock detector sees the stream active
    assert "monitor.stream_inbound_time.get(tp)" in inspect.getsource(
        faust_aiokafka.AIOKafkaConsumerThread.verify_event_path
    )
