"""One test per faust-streaming/mode assumption in ``streams.runtime.faust_compat``: each fails when an
upgrade changes the private behaviour a workaround relies on."""

from __future__ import annotations

import ast
import asyncio
import inspect
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import aiokafka
import faust
import faust.streams
import mode.utils.queues
import pytest
from faust.assignor import partition_assignor
from faust.tables import recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from streams.runtime import faust_compat
from streams.runtime.faust_compat import (
    AppWithBeforeStop,
    ExistingTopicGlobalTable,
    UntestedFaustError,
    committed_offsets,
    current_event_scope,
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


def test_flow_resume_clears_registered_queues_unless_resume_flow_without_clearing() -> None:
    """mode's ``FlowControlEvent.resume`` clears the queues in ``_queues``; after
    ``resume_flow_without_clearing`` it only resumes, and ``clear()`` (revocation's) still clears."""
    from streams.runtime.faust_compat import resume_flow_without_clearing

    async def scenario() -> tuple[int, int, bool, int]:
        plain, patched = _app("compat-flow-plain"), _app("compat-flow")
        queues = [app.topic("events").clone(is_iterator=True).queue for app in (plain, patched)]
        assert isinstance(patched.flow_control, mode.utils.queues.FlowControlEvent)
        assert all(q in app.flow_control._queues for q, app in zip(queues, (plain, patched), strict=True))
        for q in queues:
            q.put_nowait("record")
        resume_flow_without_clearing(patched)
        for app in (plain, patched):
            app.flow_control.suspend()
            app.flow_control.resume()
        kept = queues[1].qsize()
        patched.flow_control.clear()
        return queues[0].qsize(), kept, patched.flow_control.is_active(), queues[1].qsize()

    assert asyncio.run(scenario()) == (0, 1, True, 0)
    resume = inspect.getsource(mode.utils.queues.FlowControlEvent.resume)
    assert "self._suspend.clear()" in resume
    assert "self._resume.set()" in resume
    # Revocation empties the agents' queues itself: records left there would be skipped and acked.
    assert "self.flow_control.clear" in inspect.getsource(faust.App._on_partitions_revoked)


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


def test_a_global_tables_changelog_records_reach_on_record_before_they_are_applied() -> None:
    """Faust still applies changelog records through ``apply_changelog_batch(batch)`` (events with a ``message``);
    the override hands each message to ``on_record`` and still applies the batch."""
    assert list(inspect.signature(faust.GlobalTable.apply_changelog_batch).parameters) == ["self", "batch"]
    app = _app("compat-on-record")
    topic = app.topic("preempt.accounts", partitions=1)
    table = ExistingTopicGlobalTable(
        app, name="accounts", changelog_topic=topic, partitions=1, key_type=bytes, value_type=bytes
    )
    seen: list[object] = []
    applied: list[list[object]] = []
    table.on_record = seen.append
    events = [SimpleNamespace(message=f"m{i}") for i in range(3)]
    with patch.object(faust.GlobalTable, "apply_changelog_batch", lambda self, batch: applied.append(list(batch))):
        table.apply_changelog_batch(iter(events))
    assert seen == ["m0", "m1", "m2"]
    assert applied == [events]


def test_before_stop_runs_before_faust_stops_the_consumer_and_the_tables() -> None:
    """Faust's ``App.on_stop`` still stops the consumer and the tables (``_stop_consumer``) before its
    ``on_before_shutdown`` signal; ``AppWithBeforeStop`` awaits ``before_stop`` ahead of both."""
    source = inspect.getsource(faust.App.on_stop)
    assert source.index("_stop_consumer()") < source.index("on_before_shutdown.send()")
    order: list[str] = []

    async def scenario() -> None:
        app = AppWithBeforeStop("compat-before-stop", broker="kafka://127.0.0.1:1", web_enabled=False)

        async def before_stop() -> None:
            order.append("before_stop")

        async def stop_consumer() -> None:
            order.append("stop consumer and tables")

        async def before_shutdown(sender: Any, **kwargs: Any) -> None:
            order.append("on_before_shutdown")

        app.before_stop = before_stop
        app._stop_consumer = stop_consumer  # type: ignore[method-assign]
        app.on_before_shutdown.connect(before_shutdown)
        await app.on_stop()

    asyncio.run(scenario())
    assert order == ["before_stop", "stop consumer and tables", "on_before_shutdown"]


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


def test_group_committed_offsets_ask_the_group_coordinator_in_the_consumers_thread_bounded() -> None:
    """aiokafka's ``AIOKafkaConsumer.committed`` asks ``_coordinator.fetch_committed_offsets``, which retries a
    retriable error forever; Faust runs its aiokafka consumer's calls through ``call_thread``.
    ``group_committed_offsets`` asks the coordinator so (a negative offset or none: nothing committed), and
    answers None when it does not answer in time, fails, or there is no aiokafka consumer yet."""
    from types import SimpleNamespace

    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.errors import GroupAuthorizationFailedError
    from aiokafka.structs import OffsetAndMetadata, TopicPartition

    from streams.runtime.faust_compat import group_committed_offsets

    assert "await self._coordinator.fetch_committed_offsets([partition])" in inspect.getsource(
        aiokafka.AIOKafkaConsumer.committed
    )
    assert "while True:" in inspect.getsource(GroupCoordinator.fetch_committed_offsets)
    assert "self.call_thread(self._ensure_consumer().seek_to_committed)" in inspect.getsource(
        faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed
    )

    class Coordinator:
        def __init__(self, behaviour: str = "answer") -> None:
            self.behaviour = behaviour

        async def fetch_committed_offsets(self, partitions: Any) -> dict[Any, Any]:
            assert {(tp.topic, tp.partition) for tp in partitions} <= {("t", 0), ("t", 1), ("t", 2)}
            if self.behaviour == "hang":
                await asyncio.sleep(3600)
            if self.behaviour == "fail":
                raise GroupAuthorizationFailedError()
            nothing = OffsetAndMetadata(-1, "")
            return {TopicPartition("t", 0): OffsetAndMetadata(42, ""), TopicPartition("t", 1): nothing}

    async def scenario() -> list[Any]:
        app = faust.App("compat-group-committed", broker="kafka://127.0.0.1:1", web_enabled=False)
        thread: Any = app.consumer._thread
        in_thread: list[Any] = []

        async def call_thread(fun: Any, *args: Any, **kwargs: Any) -> Any:
            in_thread.append(fun)
            return await fun(*args, **kwargs)

        thread.call_thread = call_thread
        tps = [TP("t", 0), TP("t", 1), TP("t", 2)]
        answers = [await group_committed_offsets(app, tps, 1.0)]  # no aiokafka consumer yet
        for behaviour in ("answer", "hang", "fail"):
            thread._consumer = SimpleNamespace(_coordinator=Coordinator(behaviour))
            answers.append(await group_committed_offsets(app, tps, 0.05))
        return [*answers, len(in_thread)]

    assert asyncio.run(scenario()) == [None, {TP("t", 0): 42, TP("t", 1): None, TP("t", 2): None}, None, None, 3]


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


def test_fausts_commit_passes_a_waiting_offset_when_later_ones_are_acked() -> None:
    """The hazard ``alerts/acks.py`` guards against (faust-streaming 0.15 ``Consumer._new_offset``):
    with 5 committed and 6, 7 acked Faust commits 8, and with nothing committed and 1-9 acked it
    commits 10 -- past offsets 5 and 0."""

    async def new_offset(committed: int | None, acked: list[int]) -> int | None:
        app = faust.App("acks-hazard", broker="kafka://127.0.0.1:1", web_enabled=False)
        consumer: Any = app.consumer
        tp = TP("alerts", 0)
        consumer._committed_offset[tp] = committed
        consumer._acked[tp] = list(acked)
        consumer._acked_index[tp] = set(acked)
        result: int | None = consumer._new_offset(tp)
        return result

    assert asyncio.run(new_offset(5, [6, 7])) == 8
    assert asyncio.run(new_offset(None, list(range(1, 10)))) == 10


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


def test_highwater_time_is_when_aiokafkas_fetcher_stamped_the_highwater() -> None:
    """aiokafka stamps a partition's highwater with the wall-clock time of the fetch response (read by
    ``last_poll_timestamp``); Faust keeps its aiokafka consumer in ``_consumer``; ``highwater_time``
    reads the stamp in seconds (None before any fetch or once the partition is not assigned)."""
    from aiokafka.consumer import fetcher

    from streams.runtime.faust_compat import highwater_time

    source = inspect.getsource(fetcher.Fetcher._proc_fetch_request)
    assert "tp_state.highwater = highwater" in source
    assert "tp_state.timestamp = now_ms" in source
    assert "now_ms = int(1000 * time.time())" in source
    assert "return assignment.state_value(partition).timestamp" in inspect.getsource(
        aiokafka.AIOKafkaConsumer.last_poll_timestamp
    )
    assert "self._consumer = self._create_consumer(" in inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread)

    class Client:
        def last_poll_timestamp(self, tp: Any) -> int | None:
            assert tp.partition != 9, "Partition is not assigned"
            return {0: 1_790_000_000_250}.get(tp.partition)

    app = faust.App("compat-highwater-time", broker="kafka://127.0.0.1:1", web_enabled=False)
    thread: Any = app.consumer._thread
    assert highwater_time(app, TP("t", 0)) is None  # no aiokafka consumer yet
    thread._consumer = Client()
    assert [highwater_time(app, TP("t", p)) for p in (0, 1, 9)] == [1_790_000_000.25, None, None]


def test_a_failed_request_of_the_worker_consumer_is_remembered_with_its_time() -> None:
    """aiokafka's fetcher sends through ``AIOKafkaConsumer._client.send`` (looked up on each call) and
    logs and retries a ``KafkaError``; ``watch_unanswered_requests`` wraps that ``send`` of the consumer
    Faust creates, so ``last_unanswered_request`` says when a request last failed (a node that is not
    ready: no broker answered)."""
    from aiokafka.consumer import fetcher
    from aiokafka.errors import NodeNotReadyError

    from streams.runtime.faust_compat import last_unanswered_request, watch_unanswered_requests

    assert "response = await self._client.send(node_id, request)" in inspect.getsource(
        fetcher.Fetcher._proc_fetch_request
    )
    assert "except Errors.KafkaError as err:" in inspect.getsource(fetcher.Fetcher._proc_fetch_request)

    async def scenario() -> tuple[float | None, float | None]:
        app = faust.App("compat-unanswered", broker="kafka://127.0.0.1:1", web_enabled=False)
        watch_unanswered_requests(app)
        thread: Any = app.consumer._thread
        client = thread._create_worker_consumer(app.transport)
        before = last_unanswered_request(app)
        with pytest.raises(NodeNotReadyError):
            await client._client.send(12345, object())  # no such node: not ready, nothing sent
        return before, last_unanswered_request(app)

    started = time.time()
    before, failed = asyncio.run(scenario())
    assert before is None
    assert failed is not None
    assert started <= failed <= time.time()


@pytest.mark.parametrize(
    ("guarantee", "level"), [("at_least_once", "read_uncommitted"), ("exactly_once", "read_committed")]
)
def test_consumer_isolation_level_is_the_one_fausts_driver_gives_its_worker_consumer(
    guarantee: str, level: str
) -> None:
    """``consumer_isolation_level`` names the isolation level of the consumer Faust's aiokafka driver
    creates for a running worker, for each processing guarantee."""
    from streams.runtime.faust_compat import consumer_isolation_level

    async def scenario() -> tuple[str, str]:
        app = faust.App(f"compat-isolation-{guarantee}", broker="kafka://127.0.0.1:1", processing_guarantee=guarantee)
        app.in_worker = True  # as faust.Worker sets it before the consumer is created
        thread: Any = app.consumer._thread
        client = thread._create_worker_consumer(app.transport)
        return consumer_isolation_level(app), client._isolation_level

    assert asyncio.run(scenario()) == (level, level)


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


@pytest.mark.parametrize("keep_poll", [False, True])
def test_a_partition_paused_while_its_poll_is_handed_over_loses_the_rest_unless_paused_by_pause_fetching(
    keep_poll: bool,
) -> None:
    """Faust's ``pause_partitions`` in the middle of a poll drops the paused partition's records not handed over
    yet (aiokafka's position is past them); ``pause_fetching`` hands the poll over in full, and other partitions
    are unaffected either way. When upstream changes, the first case fails: look again at pause_fetching."""
    from aiokafka.structs import ConsumerRecord

    from streams.runtime.faust_compat import pause_fetching, resume_fetching

    def record(partition: int, offset: int) -> Any:
        return ConsumerRecord("alerts", partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])

    alerts0, alerts1 = TP("alerts", 0), TP("alerts", 1)

    async def scenario() -> tuple[list[tuple[Any, int]], Any]:
        app = faust.App(f"compat-pause-{keep_poll}", broker="kafka://127.0.0.1:1", web_enabled=False)
        consumer: Any = app.consumer
        consumer._active_partitions = {alerts0, alerts1}
        polled = {alerts0: [record(0, 5), record(0, 6), record(0, 7)], alerts1: [record(1, 3)]}

        async def wait_next_records(timeout: float) -> Any:  # noqa: ASYNC109 - Faust's signature
            return polled, consumer._get_active_partitions()  # as Faust's: the live set, not a copy

        consumer._wait_next_records = wait_next_records
        consumer.highwater = lambda tp: 10
        yielded: list[tuple[Any, int]] = []
        async for tp, message in consumer.getmany(timeout=1.0):
            yielded.append((tp, message.offset))
            if (tp, message.offset) == (alerts0, 5):
                if keep_poll:
                    pause_fetching(app, [alerts0])
                else:
                    consumer.pause_partitions([alerts0])
        active_after = set(consumer._get_active_partitions())
        if keep_poll:
            resume_fetching(app, [alerts0])
            assert set(consumer._get_active_partitions()) == {alerts0, alerts1}
            assert alerts0 not in consumer._buffered_partitions
        return yielded, active_after

    # the poll's active set is the consumer's live one, which pausing changes under the loop
    assert "active_partitions = self._get_active_partitions()" in inspect.getsource(
        faust_consumer.Consumer._wait_next_records
    )
    yielded, active_after = asyncio.run(scenario())
    assert active_after == {alerts1}  # paused: not fetched any more
    if keep_poll:
        assert sorted(yielded) == [(alerts0, 5), (alerts0, 6), (alerts0, 7), (alerts1, 3)]
    else:
        assert sorted(yielded) == [(alerts0, 5), (alerts1, 3)]  # 6 and 7 dropped without a trace


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


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    committed=st.one_of(st.none(), st.integers(0, 30)),
    already=st.lists(st.integers(0, 40), max_size=10),
    start=st.integers(0, 40),
    batch=st.one_of(
        st.integers(0, 12).map(lambda n: list(range(n))),  # contiguous runs (the fast path)
        st.lists(st.integers(-3, 12), max_size=12),  # anything else
    ),
)
def test_ack_offsets_in_bulk_is_the_same_as_one_by_one(
    committed: int | None, already: list[int], start: int, batch: list[int]
) -> None:
    """``ack_offsets`` leaves Faust's ack bookkeeping exactly as acking each offset in turn would."""
    from streams.runtime.faust_compat import ack_offsets

    offsets = [start + o for o in batch]
    app = faust.App("compat-ack-bulk", broker="kafka://127.0.0.1:1", web_enabled=False)
    consumer: Any = app.consumer
    tp = TP("events", 0)
    consumer._committed_offset[tp] = committed
    for offset in already:
        consumer._acked_index[tp].add(offset)
        consumer._acked[tp].append(offset)
    expected_acked = list(consumer._acked[tp])
    expected_index = set(consumer._acked_index[tp])
    for offset in offsets:
        if (committed is None or offset >= committed) and offset not in expected_index:
            expected_index.add(offset)
            expected_acked.append(offset)
    n = ack_offsets(app, tp, offsets)
    assert consumer._acked[tp] == expected_acked
    assert faust_compat.acked_offsets(app, tp) == expected_acked  # the reader reads the same list
    assert consumer._acked_index[tp] == expected_index
    assert n == consumer._n_acked == len(expected_acked) - len(already)


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


def test_prometheus_monitor_keeps_its_metrics_in_metrics() -> None:
    """``PrometheusMonitor`` exports the ``FaustMetrics`` it holds in ``_metrics``; other monitors hold none."""
    from faust.sensors.monitor import Monitor
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from prometheus_client import CollectorRegistry

    from streams.runtime.faust_compat import prometheus_metrics

    metrics = FaustMetrics.create(CollectorRegistry(), "compat")
    assert prometheus_metrics(PrometheusMonitor(metrics=metrics)) is metrics
    assert prometheus_metrics(Monitor()) is None
    for hook in (PrometheusMonitor.on_message_in, PrometheusMonitor.on_table_get):
        assert "self._metrics." in inspect.getsource(hook)


def test_stream_label_is_the_label_prometheus_monitor_counts_events_under() -> None:
    """``stream_label`` is the label Faust's ``on_stream_event_in`` puts on ``total_events_per_stream``."""
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from prometheus_client import CollectorRegistry

    from streams.runtime.faust_compat import stream_label

    registry = CollectorRegistry()
    monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, "compat"))
    owner = type("Task", (), {})()  # Faust keys its per-task counts by the stream's task (weakly)
    stream: Any = type("FakeStream", (), {"shortlabel": "Stream: Topic: preempt.alerts", "task_owner": owner})()
    label = stream_label(monitor, stream)
    assert label == "topic_preempt.alerts"
    monitor.on_stream_event_in(TP("preempt.alerts", 0), 1, stream, None)  # type: ignore[arg-type]
    sample = {"stream": f"stream.{label}.events"}
    assert registry.get_sample_value("compat_total_events_per_stream_total", sample) == 1


def test_aggregating_sensor_overrides_public_hooks_only_and_shadows_nothing() -> None:
    """The sensor subclass overrides only ``SensorInterfaceT`` hooks; its own names are new to its base."""
    import textwrap

    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from faust.types.sensors import SensorInterfaceT
    from prometheus_client import CollectorRegistry

    from streams.runtime.faust_sensor import AggregatingPrometheusMonitor

    hooks = {name for name in vars(SensorInterfaceT) if name.startswith("on_")}
    defined = {  # the methods written in the subclass (mode's metaclass adds ``logger`` and the like)
        name for name, value in vars(AggregatingPrometheusMonitor).items() if inspect.isfunction(value)
    } - {"__init__"}
    overridden = {name for name in defined if hasattr(PrometheusMonitor, name)}
    assert overridden <= hooks, overridden - hooks
    base = PrometheusMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "compat"))
    init = ast.parse(textwrap.dedent(inspect.getsource(AggregatingPrometheusMonitor.__init__)))
    assigned = {
        target.attr
        for node in ast.walk(init)
        if isinstance(node, ast.AnnAssign | ast.Assign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
    }
    assert assigned, "the sensor keeps its own counters"
    assert [name for name in assigned | (defined - overridden) if hasattr(base, name)] == []


def test_leader_topic_name_is_the_topic_the_leader_assignor_declares() -> None:
    """``leader_topic_name`` is the name of the topic Faust's leader assignor declares when it starts
    (``<app id>-__assignor-__leader``), and None when the app turned the leader topic off."""
    from faust.assignor.leader_assignor import LeaderAssignor

    from streams.runtime.faust_compat import leader_topic_name

    app = _app("compat-leader")
    assert leader_topic_name(app) == "compat-leader-__assignor-__leader"
    assert app._leader_assignor._leader_topic.get_topic_name() == leader_topic_name(app)  # type: ignore[attr-defined]
    assert "self._leader_topic" in inspect.getsource(LeaderAssignor._enable_leader_topic)
    assert "maybe_declare" in inspect.getsource(LeaderAssignor._enable_leader_topic)
    off = faust.App("compat-no-leader", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False,
                    topic_disable_leader=True)  # fmt: skip
    assert leader_topic_name(off) is None


def test_a_faust_web_connection_that_sends_no_whole_request_is_closed_after_the_bound() -> None:
    """Faust's web server (the worker's and the notifier's ports) kept a connection that sent nothing, or
    only part of a request's headers, for aiohttp's default of 3630 s (ingest's ``run_app``: 75 s);
    ``bound_idle_connections`` gives Faust's runner the same bound, and the server closes both."""
    import socket

    from aiohttp.web_protocol import RequestHandler

    from streams.runtime.faust_compat import bound_idle_connections
    from streams.runtime.testing import free_port

    assert inspect.signature(RequestHandler).parameters["keepalive_timeout"].default == 3630

    def closed_after(port: int, sent: bytes) -> float:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            began = time.monotonic()
            sock.sendall(sent)
            assert sock.recv(100) == b""  # closed without an answer
            return time.monotonic() - began

    async def scenario() -> tuple[float, float]:
        port = free_port()
        app = faust.App("compat-idle", broker="kafka://127.0.0.1:1", store="memory://", web_bind="127.0.0.1",
                        web_port=port)  # fmt: skip
        bound_idle_connections(app, 0.5)
        await app.web.start_server()  # type: ignore[attr-defined]
        try:
            idle = await asyncio.to_thread(closed_after, port, b"")
            partial = await asyncio.to_thread(closed_after, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        finally:
            await app.web.stop_server()  # type: ignore[attr-defined]
        return idle, partial

    idle, partial = asyncio.run(scenario())
    assert idle < 5, idle
    assert partial < 5, partial


def test_tables_recovered_follows_recoverys_completed_event() -> None:
    """``tables_recovered`` is Faust's ``TableManager.recovery.completed``, which recovery sets once done."""
    from streams.runtime.faust_compat import tables_recovered

    async def scenario() -> tuple[bool, bool]:
        app = _app("compat-recovered")
        before = tables_recovered(app)
        app.tables.recovery.completed.set()  # type: ignore[attr-defined]
        return before, tables_recovered(app)

    assert asyncio.run(scenario()) == (False, True)
    assert "self.completed.set()" in inspect.getsource(recovery.Recovery.on_recovery_completed)


def test_faust_views_get_aiohttp_requests_and_make_aiohttp_responses() -> None:
    """A Faust view on the default web driver receives aiohttp's request and returns aiohttp's response."""
    from aiohttp import web as aiohttp_web
    from aiohttp.test_utils import TestClient, TestServer
    from faust.web import Request, Response, View

    from streams.runtime.faust_compat import aiohttp_request, close_connection_after

    seen: list[Any] = []

    async def scenario() -> tuple[int, str, str | None]:
        app = faust.App("compat-web", broker="kafka://127.0.0.1:1", store="memory://")

        class Echo(View):
            async def post(self, request: Request, **kwargs: Any) -> Response:
                body = await aiohttp_request(request).content.read()
                response = self.text(body.decode().upper())
                seen.extend([request, response])
                close_connection_after(response)
                return response

        app.page("/echo")(Echo)
        app.web.init_server()
        async with TestClient(TestServer(app.web.web_app)) as client:  # type: ignore[attr-defined]
            reply = await client.post("/echo", data=b"hello")
            return reply.status, await reply.text(), reply.headers.get("Connection")

    status, text, connection = asyncio.run(scenario())
    assert (status, text) == (200, "HELLO")
    assert connection == "close"  # force_close() took effect
    request, response = seen
    assert isinstance(request, aiohttp_web.Request)
    assert isinstance(response, aiohttp_web.Response)


def test_aiokafka_create_conn_logs_in_and_reports_refused_and_cut_connections() -> None:
    """``open_connection`` (aiokafka's ``create_conn``) takes our security keywords, raises ``OSError`` when
    nothing listens and ``KafkaConnectionError`` when the broker cuts the SASL handshake."""
    import socket

    from aiokafka import conn as aiokafka_conn
    from aiokafka.errors import KafkaConnectionError

    from streams.runtime.faust_compat import open_connection
    from streams.runtime.kafka_clients import aiokafka_config
    from streams.runtime.settings import Settings

    keywords = set(inspect.signature(aiokafka_conn.create_conn).parameters)
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="preempt",
        kafka_sasl_password="secret",
    )
    assert set(aiokafka_config(settings)) | {"client_id", "request_timeout_ms"} <= keywords
    assert "await conn.connect()" in inspect.getsource(aiokafka_conn.create_conn)
    assert "_do_sasl_handshake" in inspect.getsource(aiokafka_conn.AIOKafkaConnection.connect)

    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            idle_port = probe.getsockname()[1]

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        cutting_port = server.sockets[0].getsockname()[1]
        sasl = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}
        sasl |= {"sasl_plain_username": "u", "sasl_plain_password": "p"}
        outcomes: list[BaseException | None] = []
        for port in (idle_port, cutting_port):
            try:
                conn = await open_connection("127.0.0.1", port, client_id="compat", request_timeout_ms=5000, **sasl)
                conn.close()
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        server.close()
        await server.wait_closed()
        return outcomes[0], outcomes[1]

    refused, cut = asyncio.run(scenario())
    assert isinstance(refused, OSError), refused
    assert not isinstance(refused, KafkaConnectionError), refused
    assert isinstance(cut, KafkaConnectionError), cut


# --- the rule itself: no private reach outside the compat module ------------------------------------

_ROOT = Path(__file__).resolve().parents[4]
_COMPAT_MODULES = {"streams/runtime/faust_compat.py"}
_UPSTREAM = ("faust", "mode", "aiokafka")
# Upstream classes a module may subclass: Faust's documented way to write a web page, and the
# Prometheus sensor (its private names go through faust_compat; see the test above).
_ALLOWED_BASES = {"View", "PrometheusMonitor"}


# Standard-library functions whose documented, public name starts with an underscore.
_DOCUMENTED_STDLIB = {("os", "_exit")}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_imports(tree: ast.Module) -> tuple[set[str], list[str]]:
    """Names imported from faust/mode/aiokafka, and the private imports among them."""
    names: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _UPSTREAM:
            module = node.module or ""
            for alias in node.names:
                names.add(alias.asname or alias.name)
                if _private(alias.name) or any(_private(part) for part in module.split(".")):
                    found.append(f"{node.lineno}: from {module} import {alias.name}")
        elif isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] in _UPSTREAM and any(_private(p) for p in alias.name.split("."))
            ]
    return names, found


def _self_attributes(node: ast.AST) -> set[str]:
    """Every ``self.<name>`` assigned anywhere under ``node``."""
    targets: list[ast.expr] = []
    for n in ast.walk(node):
        if isinstance(n, ast.Assign):
            targets += [e for t in n.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
        elif isinstance(n, ast.AnnAssign):
            targets.append(n.target)
    return {
        t.attr
        for t in targets
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }


def _subclass_reaches(node: ast.ClassDef, upstream_names: set[str]) -> list[str]:
    """An upstream base beyond the allowed ones, and inherited private names read through ``self``."""
    upstream: set[str] = set()
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in upstream_names:
            upstream.add(base.id)
        elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id in _UPSTREAM:
            upstream.add(base.attr)
    if not upstream:
        return []
    found = [f"{node.lineno}: class {node.name}({', '.join(sorted(upstream))})"] if upstream - _ALLOWED_BASES else []
    own = {n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)} | _self_attributes(node)
    found += [
        f"{n.lineno}: self.{n.attr} (inherited from {', '.join(sorted(upstream))})"
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id == "self"
        and _private(n.attr)
        and n.attr not in own
    ]
    return found


def _private_reaches(path: Path) -> list[str]:
    """Every reach into a private name in the module at ``path`` (``"<line>: <what>"``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    upstream_names, found = _private_imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner not in {"self", "cls"} and (owner, node.attr) not in _DOCUMENTED_STDLIB:
                found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.args[1] if len(node.args) >= 2 else None
            if (
                node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
                and isinstance(name, ast.Constant)
                and isinstance(name.value, str)
                and _private(name.value)
            ):
                found.append(f"{node.lineno}: {node.func.id}(…, {name.value!r})")
        elif isinstance(node, ast.ClassDef):
            found += _subclass_reaches(node, upstream_names)
    return found


def test_nothing_outside_the_compat_modules_reaches_into_private_names() -> None:
    """No module of streams, alerts or bench but the compat module touches a private name (``obj._x``,
    ``getattr(obj, "_x")``, a private import), subclasses faust/mode/aiokafka beyond the allowed
    bases, or reads an inherited private attribute in such a subclass."""
    offenders: dict[str, list[str]] = {}
    for package in ("streams", "alerts", "bench"):
        for path in sorted((_ROOT / package).rglob("*.py")):
            relative = path.relative_to(_ROOT).as_posix()
            if relative in _COMPAT_MODULES:
                continue
            reaches = _private_reaches(path)
            if reaches:
                offenders[relative] = reaches
    assert offenders == {}, "move these into streams/runtime/faust_compat.py, with a test"


# Packages whose every module (tests included) must leave Faust's internals to the compat module.
_ALL_PACKAGES = ("streams", "alerts", "rules", "schemas", "bench", "deploy", "tests")
# Tests of the compat module itself: the one place besides it that may name Faust's internals.
_COMPAT_TESTS = {"tests/unit/streams/runtime/test_faust_compat.py"}


def _upstream_private_names() -> set[str]:
    """The private names the compat module and its tests reach into on objects that are not their own
    (Faust's, mode's and aiokafka's internals), less those Preempt's own classes define on ``self``."""
    nodes = [
        node
        for module in sorted(_COMPAT_MODULES | _COMPAT_TESTS)
        for node in ast.walk(ast.parse((_ROOT / module).read_text(encoding="utf-8")))
    ]
    reached = {
        node.attr
        for node in nodes
        if isinstance(node, ast.Attribute)
        and _private(node.attr)
        and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
    }
    reached |= {
        node.args[1].value
        for node in nodes
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"getattr", "setattr", "hasattr"}
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
        and _private(node.args[1].value)
    }
    own: set[str] = set()
    for package in _ALL_PACKAGES:
        for path in (_ROOT / package).rglob("*.py"):
            if path.relative_to(_ROOT).as_posix() not in _COMPAT_MODULES | _COMPAT_TESTS:
                own |= _self_attributes(ast.parse(path.read_text(encoding="utf-8")))
    return reached - own


def test_no_module_or_test_outside_the_compat_module_names_fausts_internals() -> None:
    """Every private name the compat module reaches into (``_committed_offset``, ``_acked``,
    ``_new_offset``…) appears nowhere else, and no other module patches an upstream class or module:
    not in rules, schemas or deploy, and not in tests but the compat module's own -- a test that needs
    Faust's state goes through ``stand_in_consumer_state`` (its skip, ``drop_one_record``) or lives
    here, so an upstream change fails one module's tests."""
    names = _upstream_private_names()
    assert {"_committed_offset", "_acked", "_new_offset", "_active_partitions"} <= names
    offenders: dict[str, list[str]] = {}
    for package in _ALL_PACKAGES:
        for path in sorted((_ROOT / package).rglob("*.py")):
            relative = path.relative_to(_ROOT).as_posix()
            if relative in _COMPAT_MODULES | _COMPAT_TESTS:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            upstream = _private_imports(tree)[0] | set(_UPSTREAM)
            reaches = [
                f"{node.lineno}: .{node.attr}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute)
                and node.attr in names
                and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
            ]
            reaches += [  # patching an upstream class or module (``Consumer.getmany = …``)
                f"{node.lineno}: {target.value.id}.{target.attr} = …"
                for node in ast.walk(tree)
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id in upstream
            ]
            if reaches:
                offenders[relative] = reaches
    assert offenders == {}, "name Faust's internals only in streams/runtime/faust_compat.py and its tests"


def test_the_private_reach_scan_finds_each_kind_of_reach(tmp_path: Path) -> None:
    """The scan reports a private attribute, a private getattr, a private import, an upstream subclass
    and an inherited private attribute; a class's own private names are fine."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from faust.streams import _current_event\n"
        "from faust.sensors.prometheus import PrometheusMonitor\n"
        "from mode import Service\n"
        "def f(consumer):\n"
        "    return consumer._committed_offset, getattr(consumer, '_acked', None)\n"
        "class Sensor(PrometheusMonitor):\n"
        "    def __init__(self):\n"
        "        self._mine = 1\n"
        "    def flush(self):\n"
        "        return self._mine, self._metrics\n"
        "class Worker(Service):\n"
        "    pass\n",
        encoding="utf-8",
    )
    found = [line.split(": ", 1)[1] for line in _private_reaches(sample)]
    assert sorted(found) == sorted(
        [
            "from faust.streams import _current_event",
            "._committed_offset",
            "getattr(…, '_acked')",
            "self._metrics (inherited from PrometheusMonitor)",
            "class Worker(Service)",
        ]
    )


class _NotUtf8Key(str):
    """A header key that aiokafka's (pure-Python) batch builder writes as bytes that are not UTF-8."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe-key"


def _batch_bytes(compression: int = 0) -> bytes:
    """One v2 batch: offsets 0-2, the middle record with a header key that is not UTF-8."""
    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

    builder = _DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=compression,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    builder.append(0, timestamp=1000, key=b"a", value=b"v0", headers=[("h", b"x")])
    builder.append(1, timestamp=1001, key=b"b", value=b"v1", headers=[(_NotUtf8Key("k"), b"y"), ("ok", b"z")])
    builder.append(2, timestamp=1002, key=b"c", value=b"v2", headers=[])
    return bytes(builder.build())


def test_aiokafka_cannot_unpack_a_record_whose_header_key_is_not_utf8() -> None:
    """Upstream: iterating a fetched batch raises on such a header key (Faust's fetcher then crashes the
    worker, and again after every restart)."""
    from aiokafka.errors import CorruptRecordException
    from aiokafka.record.memory_records import MemoryRecords

    records = MemoryRecords(_batch_bytes())
    batch = records.next_batch()
    assert batch is not None
    with pytest.raises((UnicodeDecodeError, CorruptRecordException)):
        list(batch)


@pytest.mark.parametrize("compression", [0, 1], ids=["plain", "gzip"])
def test_lenient_records_read_every_record_of_a_batch_with_a_bad_header_key(compression: int) -> None:
    """The fetcher's replacement reads all three records once, in order, keys and values intact, the bad
    header key with U+FFFD in its place."""
    records = faust_compat.LenientMemoryRecords(_batch_bytes(compression))
    batch = records.next_batch()
    assert records.has_next() is False
    got = [(r.offset, r.key, r.value, list(r.headers)) for r in batch]
    assert got == [
        (0, b"a", b"v0", [("h", b"x")]),
        (1, b"b", b"v1", [("\ufffd\ufffd-key", b"y"), ("ok", b"z")]),
        (2, b"c", b"v2", []),
    ]


def test_the_fetcher_reads_a_bad_header_key_through_the_lenient_records() -> None:
    """Installed, aiokafka's fetcher unpacks such a batch into consumer records instead of raising."""
    from aiokafka.consumer import fetcher
    from aiokafka.structs import TopicPartition

    original = fetcher.MemoryRecords
    try:
        faust_compat.tolerate_non_utf8_header_keys()
        assert fetcher.MemoryRecords is faust_compat.LenientMemoryRecords
        tp = TopicPartition("t", 0)
        partition = fetcher.PartitionRecords(
            tp, fetcher.MemoryRecords(_batch_bytes()), None, 0, None, None, True, fetcher.READ_UNCOMMITTED
        )
        assert [(r.offset, r.value) for r in partition] == [(0, b"v0"), (1, b"v1"), (2, b"v2")]
        assert partition.next_fetch_offset == 3
    finally:
        fetcher.MemoryRecords = original


def test_aiokafka_seeks_back_only_partitions_committed_above_zero() -> None:
    """The hole ``seek_uncommitted_to_beginning`` fills: Faust drops a poll that returns while the flow
    is stopped and seeks back to the committed offsets, but aiokafka leaves a partition with nothing
    (or 0) committed where the dropped poll advanced it."""
    getmany = inspect.getsource(faust_consumer.Consumer.getmany)
    assert "if not self.flow_active:" in getmany
    assert "await self.perform_seek()" in getmany
    assert "await self.seek_to_committed()" in inspect.getsource(faust_consumer.Consumer.perform_seek)
    assert "seek_to_committed()" in inspect.getsource(faust_consumer.ThreadDelegateConsumer.seek_to_committed)
    seek = inspect.getsource(aiokafka.AIOKafkaConsumer.seek_to_committed)
    assert "if offset and offset > 0:" in seek
    assert "self._fetcher.seek_to(tp, offset)" in seek
    assert "seek_to_beginning" in inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread)


def test_seek_uncommitted_to_beginning_rewinds_source_partitions_with_nothing_committed() -> None:
    """Partitions of the agents' topics committed at None or 0 go to their beginning; committed ones,
    changelogs and Faust's leader topic are left."""
    from streams.runtime.faust_compat import seek_uncommitted_to_beginning

    async def scenario() -> tuple[Any, list[Any]]:
        app = _app("compat-seek-back")
        table = app.Table("deliveries", partitions=4)
        changelog = table.changelog_topic.get_topic_name()

        async def agent(stream: Any) -> None:
            async for _ in stream:
                pass

        app.agent(app.topic("alerts"), name="notify")(agent)
        committed = {
            TP("alerts", 0): None,
            TP("alerts", 1): 0,
            TP("alerts", 2): 7,
            TP(changelog, 0): None,
            TP("compat-seek-back-__assignor-__leader", 0): None,
        }
        rewound: list[Any] = []

        async def seek_to_committed() -> Any:
            return committed

        async def seek_to_beginning(*tps: Any) -> None:
            rewound.extend(tps)

        consumer: Any = app.consumer
        consumer.seek_to_committed = seek_to_committed
        consumer._thread.seek_to_beginning = seek_to_beginning
        seek_uncommitted_to_beginning(app)
        return await consumer.seek_to_committed(), rewound

    got, rewound = asyncio.run(scenario())
    assert got[TP("alerts", 2)] == 7  # what Faust's perform_seek records is unchanged
    assert sorted(rewound) == [TP("alerts", 0), TP("alerts", 1)]


class _ClosingFetcher:
    """The slice of aiokafka's Fetcher that ``close`` uses: a fetch task, waiters, and one pending request
    that failed while the broker was away and sleeps its retry backoff (outside its CancelledError handler)."""

    def __init__(self) -> None:
        async def routine() -> None:
            await asyncio.sleep(3600)

        async def failed_request() -> bool:
            try:
                raise ConnectionError("node not ready")
            except ConnectionError:
                await asyncio.sleep(3600)  # aiokafka: asyncio.sleep(self._retry_backoff) in the except branch
                return False

        self._closed = False
        self._fetch_task = asyncio.ensure_future(routine())
        self._fetch_waiters: set[Any] = set()
        self._pending_tasks = {asyncio.ensure_future(failed_request())}

    def _notify(self, future: Any) -> None:
        pass


def test_aiokafka_fetcher_close_raises_when_a_request_sleeping_its_backoff_is_cancelled() -> None:
    """Upstream behaviour section 15 works around: Fetcher.close awaits its cancelled pending requests
    unguarded, so a request retrying an unreachable broker makes close raise CancelledError (the consumer
    thread then dies and mode waits 60 s for it). Fails once aiokafka guards it: drop the workaround."""
    from aiokafka.consumer.fetcher import Fetcher

    from streams.runtime.faust_compat import UPSTREAM

    original = UPSTREAM.get("Fetcher.close", Fetcher.close)  # upstream's, whether or not an app patched it

    async def scenario() -> None:
        fetcher = _ClosingFetcher()
        await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError):
            await original(fetcher)

    asyncio.run(scenario())


def test_a_fetcher_closed_while_its_requests_retry_an_absent_broker_closes_cleanly() -> None:
    """stop_fetchers_cleanly: the same close returns, every pending request cancelled, the fetcher closed."""
    from aiokafka.consumer import fetcher as module

    from streams.runtime.faust_compat import stop_fetchers_cleanly

    stop_fetchers_cleanly()

    async def scenario() -> None:
        fetcher = _ClosingFetcher()
        await asyncio.sleep(0)
        await asyncio.wait_for(module.Fetcher.close(fetcher), timeout=5)  # type: ignore[arg-type]
        assert fetcher._closed
        assert all(task.cancelled() for task in fetcher._pending_tasks)

    asyncio.run(scenario())


def test_a_cancelled_close_is_still_cancelled() -> None:
    """stop_fetchers_cleanly swallows only the pending requests' own cancellation: a close that is itself
    cancelled (while it awaits a request that takes a moment to end) raises CancelledError to its caller."""
    from aiokafka.consumer import fetcher as module

    from streams.runtime.faust_compat import stop_fetchers_cleanly

    stop_fetchers_cleanly()

    async def slow_to_end() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)  # cleanup under way when the close is cancelled
            raise

    async def scenario() -> None:
        fetcher = _ClosingFetcher()
        fetcher._pending_tasks = {asyncio.ensure_future(slow_to_end())}
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(module.Fetcher.close(fetcher))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(closing, timeout=5)

    asyncio.run(scenario())


def test_metadata_topics_read_the_consumer_and_producer_clients_cluster() -> None:
    """The consumer's client sits at ``_thread._consumer._client``, the producer's at ``_producer.client``; both
    keep ``cluster`` and a ``_sync_task`` once bootstrapped; a topic a metadata response leaves out is not listed."""
    from types import SimpleNamespace

    from aiokafka.client import AIOKafkaClient
    from aiokafka.cluster import ClusterMetadata
    from aiokafka.producer import AIOKafkaProducer

    from streams.runtime.faust_compat import consumer_metadata_topics, producer_metadata_topics

    assert "_sync_task" in AIOKafkaClient.__init__.__code__.co_names
    assert "client" in AIOKafkaProducer.__init__.__code__.co_names
    cluster = ClusterMetadata()
    cluster._partitions["t-app-state-changelog"] = {0: None}
    client = SimpleNamespace(cluster=cluster, _sync_task=object())
    app = SimpleNamespace(
        consumer=SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(_client=client))),
        producer=SimpleNamespace(_producer=SimpleNamespace(client=client)),
    )
    assert consumer_metadata_topics(app) == frozenset({"t-app-state-changelog"})  # type: ignore[arg-type]
    assert producer_metadata_topics(app) == frozenset({"t-app-state-changelog"})  # type: ignore[arg-type]
    unstarted = SimpleNamespace(cluster=cluster, _sync_task=None)
    app = SimpleNamespace(consumer=SimpleNamespace(_thread=None), producer=SimpleNamespace(_producer=None))
    assert consumer_metadata_topics(app) is None  # type: ignore[arg-type]
    assert producer_metadata_topics(app) is None  # type: ignore[arg-type]
    app.producer = SimpleNamespace(_producer=SimpleNamespace(client=unstarted))
    assert producer_metadata_topics(app) is None  # type: ignore[arg-type]


def test_table_store_files_are_the_rocksdb_stores_partition_paths(tmp_path: Path) -> None:
    """Faust's RocksDB store keeps partition N of table T in ``partition_path(N)``; the files of the tables on
    the given changelogs are found, another table's with a longer name that starts the same are not."""
    from streams.runtime.faust_compat import table_store_files

    app = faust.App("t-app", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
    state = app.Table("state", partitions=4, key_type=bytes, value_type=bytes)
    app.Table("state-2", partitions=4, key_type=bytes, value_type=bytes)
    folder = state.data.partition_path(0).parent
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("state-0.db", "state-3.db", "state-2-1.db", "state-backups"):
        (folder / name).mkdir(exist_ok=True)  # Faust made state-backups already
    assert state.data.partition_path(3) == folder / "state-3.db"
    found = table_store_files(app, [state.changelog_topic.get_topic_name()])
    assert [p.name for p in found] == ["state-0.db", "state-3.db"]
    assert table_store_files(app, []) == []


def test_cluster_partition_counts_read_the_consumer_clients_cluster_metadata() -> None:
    """aiokafka's client keeps ``cluster`` (ClusterMetadata) that every member fills; absent topics are None."""
    from types import SimpleNamespace

    from aiokafka.client import AIOKafkaClient
    from aiokafka.cluster import ClusterMetadata

    from streams.runtime.faust_compat import ClusterPartitionCounts

    assert "cluster" in AIOKafkaClient.__init__.__code__.co_names
    cluster = ClusterMetadata()
    assert cluster.partitions_for_topic("gone") is None
    cluster._partitions["t.events"] = {0: None, 1: None, 2: None}  # what a metadata response fills
    app = SimpleNamespace(
        consumer=SimpleNamespace(
            _thread=SimpleNamespace(_consumer=SimpleNamespace(_client=SimpleNamespace(cluster=cluster)))
        )
    )
    counts = ClusterPartitionCounts(app)  # type: ignore[arg-type]
    assert counts.topic_partitions("t.events") == 3
    assert counts.topic_partitions("gone") is None
    assert (
        ClusterPartitionCounts(SimpleNamespace(consumer=SimpleNamespace(_thread=None))).topic_partitions("t.events")
        is None
    )  # type: ignore[arg-type]


def test_a_written_topic_the_producer_no_longer_asks_metadata_for_is_not_missing() -> None:
    """The topic watch and ``producer_metadata_requested`` (here, not in test_missing_topics.py: the stand-in
    names aiokafka's private client state). aiokafka's producer asks the metadata of every topic until it
    first sends to one its metadata lacks (a dead-letter topic briefly gone); from then on it asks only for
    the topics it was given that way. The
    alerts topic, listed before, is absent from every later answer although it exists: it is not known to be
    missing (before: /readyz 503 'topic … does not exist (deleted?)' until an alert was sent)."""
    from types import SimpleNamespace

    from aiokafka.cluster import ClusterMetadata

    from streams.runtime.missing_topics import watch_topics

    cluster = ClusterMetadata()
    cluster._partitions.update({"x.alerts": {0: None}, "x.events.dlq": {0: None}})
    client = SimpleNamespace(cluster=cluster, _sync_task=object(), _topics=set())
    timers: list[Callable[[], Any]] = []
    app = SimpleNamespace(
        conf=SimpleNamespace(name="preempt-rules-test"),
        timer=lambda **_options: lambda fn: timers.append(fn) or fn,
        consumer=SimpleNamespace(_thread=None),
        producer=SimpleNamespace(_producer=SimpleNamespace(client=client)),
    )
    now = [0.0]
    reasons = watch_topics(
        app,  # type: ignore[arg-type]
        changelogs=(),
        written=["x.alerts"],
        reason_for=lambda topic: f"{topic} missing",
        stop=lambda _error: None,
        confirm_s=15.0,
        clock=lambda: now[0],
    )
    (check,) = timers
    asyncio.run(check())  # every topic's metadata: the alerts topic is seen
    client._topics = {"x.events.dlq"}  # a send to the dead-letter topic while it was gone: only it is asked for
    del cluster._partitions["x.alerts"]
    for now[0] in (2.0, 10.0, 20.0, 40.0):
        asyncio.run(check())
    assert reasons() == ()
    client._topics = {"x.events.dlq", "x.alerts"}  # asked for, and not in the answer: deleted
    for now[0] in (42.0, 60.0):
        asyncio.run(check())
    assert reasons() == ("x.alerts missing",)


class _FullDB:
    """A RocksDB handle whose every write fails as rocksdict reports a full disk."""

    def put(self, key: bytes, value: bytes) -> None:
        raise Exception("IO error: No space left on device: While appending to file: 000004.log")

    def write(self, batch: Any) -> None:
        raise Exception("IO error: No space left on device: While appending to file: 000004.log")

    def delete(self, key: bytes) -> None:
        raise Exception("IO error: No space left on device: While appending to file: 000004.log")


def test_store_write_failures_reach_the_watch_handler_first_and_are_raised_on(tmp_path: Path) -> None:
    """A failed RocksDB write (a changelog batch, the persisted offset, a delete, a partition that cannot be
    opened) is handed to the handler before Faust's caller sees it (its recovery loop only logs a
    WARNING); the exception itself is raised on unchanged."""
    from types import SimpleNamespace

    from faust.stores import rocksdb

    from streams.runtime.faust_compat import watch_store_writes

    # Upstream: the recovery loop swallows what apply_changelog_batch raises, as a warning.
    assert 'logger.warning(f"Error in recovery {ex}")' in inspect.getsource(recovery.Recovery._slurp_changelogs.fun)
    seen: list[BaseException] = []
    unwatch = watch_store_writes(seen.append)
    try:
        app = faust.App("t-full", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
        table = app.Table("state", partitions=2, key_type=bytes, value_type=bytes)
        store = table.data
        assert isinstance(store, rocksdb.Store)
        store._dbs[0] = _FullDB()  # a partition's opened database, as _db_for_partition keeps it
        tp = TP(table.changelog_topic.get_topic_name(), 0)
        with pytest.raises(Exception, match="No space left") as raised:
            store.set_persisted_offset(tp, 5)
        assert seen == [raised.value]
        event = SimpleNamespace(message=SimpleNamespace(tp=tp, offset=6, partition=0, key=b"k", value=b"v"))
        with pytest.raises(Exception, match="No space left"):
            store.apply_changelog_batch([event], lambda k: k, lambda v: v)
        store._key_index[b"k"] = 0
        with pytest.raises(Exception, match="No space left"):
            store._del(b"k")
        assert len(seen) == 3
        blocked = store.partition_path(1)
        blocked.parent.mkdir(parents=True, exist_ok=True)
        blocked.write_text("a file where the database folder goes")
        with pytest.raises(Exception, match="File exists") as refused:
            store._db_for_partition(1)
        assert seen[-1] is refused.value
        assert rocksdb.Store._set.__name__ == "_set"  # wrapped too (it needs the current event to run)
    finally:
        unwatch()
    seen.clear()
    with pytest.raises(Exception, match="No space left"):
        store.set_persisted_offset(tp, 7)
    assert seen == []  # unwatched


class _RefusingProducer:
    """Faust's producer as ``Topic.publish_message`` uses it; every record's answer is ``refusal``."""

    def __init__(self, refusal: BaseException) -> None:
        self.refusal = refusal

    async def maybe_start(self) -> None:
        return None

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(answer.set_exception, self.refusal)
        return answer


def test_topic_send_keeps_the_records_future_message_which_publish_returns() -> None:
    """``Topic.send(force=True)`` returns the producer's future, not the record's ``FutureMessage``, which the
    broker's refusal fails too and asyncio reports as never retrieved once collected; ``publish`` returns that
    ``FutureMessage``, so awaiting it reads the refusal and nothing is reported."""
    import gc

    from faust.types.tuples import FutureMessage

    from streams.runtime.faust_compat import publish

    refusal = aiokafka.errors.MessageSizeTooLargeError()
    app = _app("compat-publish")
    app._producer = _RefusingProducer(refusal)
    topic = app.topic("letters", key_serializer="raw", value_serializer="raw")

    async def unread_after(send: Callable[[], Any]) -> list[str]:
        reported: list[str] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: reported.append(context["message"]))
        future = await send()
        with pytest.raises(aiokafka.errors.MessageSizeTooLargeError):
            await future
        kinds = [isinstance(future, FutureMessage)]
        del future
        gc.collect()
        return [*map(str, kinds), *reported]

    async def sent() -> Any:
        return await topic.send(key=b"k", value=b"v", force=True)

    async def published() -> Any:
        return await publish(topic, key=b"k", value=b"v", headers=[("reason", b"x")])

    assert asyncio.run(unread_after(sent)) == ["False", "FutureMessage exception was never retrieved"]
    assert asyncio.run(unread_after(published)) == ["True"]


def test_a_standby_changelog_without_an_offset_is_sought_from_its_start() -> None:
    """seek_unread_changelogs_from_start: Faust's recovery seeks a partition recorded without an offset (None,
    as ``Recovery.add_standby`` records one with nothing persisted) to 0 instead of passing None to
    aiokafka's seek, which raised ``ValueError('Offset must be a positive integer')`` and stopped the worker."""
    from collections import Counter

    from faust.tables.recovery import Recovery
    from faust.types import TP

    from streams.runtime.faust_compat import UPSTREAM, seek_unread_changelogs_from_start

    seek_unread_changelogs_from_start()
    seek_unread_changelogs_from_start()  # idempotent
    sought: list[dict[Any, int]] = []

    class Consumer:
        async def seek_wait(self, offsets: dict[Any, int]) -> None:
            sought.append(dict(offsets))

    unread, read = TP("c-changelog", 0), TP("c-changelog", 1)
    offsets: Counter[Any] = Counter()
    offsets[read] = 41
    offsets.setdefault(unread, None)  # type: ignore[arg-type]  # what Recovery._add records
    recovery = Recovery.__new__(Recovery)
    asyncio.run(Recovery._seek_offsets(recovery, Consumer(), {unread, read}, offsets, "standby"))  # type: ignore[arg-type]
    assert sought == [{unread: 0, read: 41}]
    # The upstream behaviour worked around: None goes to the consumer's seek as it is.
    sought.clear()
    offsets[unread] = None  # type: ignore[assignment]
    asyncio.run(UPSTREAM["Recovery._seek_offsets"](recovery, Consumer(), {unread}, offsets, "standby"))
    assert sought == [{unread: None}]
