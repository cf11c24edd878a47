"""The rules worker's runtime: the batched poll, gap checks after an assignment, the flow-control workaround."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from prometheus_client import REGISTRY

from streams.runtime.faust_compat import acked_offsets, stand_in_consumer_state
from streams.worker.processor import BatchOutput, OffsetCheck


def _offsets_without_gaps(records: list[Any]) -> OffsetCheck:
    """What ``RulesProcessor.check_offsets`` returns for records with no offset jump."""
    first: dict[int, int] = {}
    nxt: dict[int, int] = {}
    for r in records:
        first.setdefault(r.partition, r.offset)
        nxt[r.partition] = max(nxt.get(r.partition, 0), r.offset + 1)
    return OffsetCheck([], first, nxt)


class Cache:
    """The state cache's surface the runtime uses: written states, how many are dirty, and the
    marks of the dirty ones (``StateCache``'s, for the states in the processor's ``unserialized``)."""

    def __init__(self, processor: Any = None) -> None:
        self.processor = processor
        self.marks = 0
        self.since: dict[str, tuple[int, float]] = {}  # dirty state -> (mark, time.monotonic() it became dirty)

    def mark(self, name: str) -> None:
        if name not in self.since:
            self.marks += 1
            self.since[name] = (self.marks, time.monotonic())

    def written(self, writes: Any) -> None:
        return None

    def _dirty(self) -> list[str]:
        unserialized = self.processor.unserialized if self.processor is not None else {}
        return sorted((a for accounts in unserialized.values() for a in accounts), key=lambda a: self.since[a][0])

    @property
    def dirty(self) -> int:
        return len(self._dirty())

    @property
    def dirty_mark(self) -> int:
        return self.marks

    @property
    def written_mark(self) -> int:
        dirty = self._dirty()
        return self.since[dirty[0]][0] - 1 if dirty else self.marks

    def dirty_since(self, before: float) -> int:
        n = 0
        for a in self._dirty():  # the oldest first, as StateCache counts them
            if self.since[a][1] > before:
                break
            n += 1
        return n

    def age(self, seconds: float) -> None:
        """Every dirty state became dirty ``seconds`` earlier."""
        self.since = {a: (mark, at - seconds) for a, (mark, at) in self.since.items()}


class Writer:
    """``OutputWriter`` that logs each step to ``steps``; ``deliveries`` holds each alert's delivery future."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.deliveries: list[asyncio.Future[None]] = []

    async def send_alerts(self, alerts: list[Any]) -> list[asyncio.Future[None]]:
        futures = []
        for alert in alerts:
            self.steps.append(f"send {alert.alert_id}")
            futures.append(asyncio.get_running_loop().create_future())
        self.deliveries += futures
        return futures

    async def send_dead_letters(self, letters: list[Any]) -> list[asyncio.Future[None]]:
        futures = []
        for letter in letters:
            self.steps.append(f"dead letter {letter}")
            futures.append(asyncio.get_running_loop().create_future())
        self.deliveries += futures
        return futures

    async def send_forwards(self, forwards: list[Any]) -> list[asyncio.Future[None]]:
        futures = []
        for forward in forwards:
            self.steps.append(f"forward {forward.account_id} to {forward.partition}")
            futures.append(asyncio.get_running_loop().create_future())
        self.deliveries += futures
        return futures

    def write_states(self, out: BatchOutput) -> None:
        self.steps.extend(f"state {a}" for writes in out.state_writes.values() for a in writes)

    def write_clocks(self, out: BatchOutput) -> None:
        self.steps.extend(f"clock {p}={t:g}" for p, t in out.clock_writes.items())


@pytest.mark.parametrize("known_by", ["faust", "coordinator"])
def test_records_between_the_commit_and_the_first_delivered_one_are_re_read_and_marked_done(known_by: str) -> None:
    """After an assignment, a first record past the committed offset triggers a re-read of the missing
    range, and the re-read offsets are handed to Faust as done so its commits can pass them. The committed
    offset is the one the rebuild got from the group coordinator: Faust's own copy is empty until its seek
    back, which the first poll can come before (then the gap went unseen)."""
    from faust.types import TP

    from streams.runtime.settings import Settings
    from streams.worker.agents import WorkerRuntime
    from streams.worker.processor import Record

    topic = "events"
    marked: list[tuple[TP, int, int]] = []

    class Consumer:
        def __init__(self) -> None:
            fausts = {TP(topic, 1): 10} if known_by == "faust" else {}
            stand_in_consumer_state(self, committed=fausts, add_gap=self.add_gap)

        async def add_gap(self, tp: TP, start: int, last: int) -> None:
            marked.append((tp, start, last))

        def highwater(self, tp: TP) -> int | None:
            return None  # no fetch answered yet: never caught up

        def assignment(self) -> set[TP]:
            return {TP(topic, 1)}

    class App:
        consumer = Consumer()

    class Repair:
        async def read_range(self, partition: int, start: int, end: int) -> tuple[list[Record], bool]:
            return [Record(partition, o, b"k", b"v", (), topic) for o in range(start, end)], True

    class Processor:
        cache = Cache()

        def __init__(self) -> None:
            self.seen: list[int] = []

        def check_offsets(self, records: list[Record]) -> OffsetCheck:
            return _offsets_without_gaps(records)

        def process_batch(
            self, records: list[Record], offsets: OffsetCheck, caught_up: Any = (), *, writes: bool = True
        ) -> Any:
            self.seen = [r.offset for r in records]
            assert offsets == _offsets_without_gaps(records)  # the check of the merged batch
            return BatchOutput()

        def take_writes(self, out: BatchOutput, count: int | None = None) -> None:
            return None

        def next_deadline(self, partitions: Any) -> float | None:
            return None

    runtime = WorkerRuntime(App(), Settings(), topic, Processor(), Writer([]), {}, {})  # type: ignore[arg-type]
    runtime._maybe_rebuild = _no_rebuild  # type: ignore[method-assign]
    runtime._first_unchecked = {1}
    if known_by == "coordinator":
        runtime._committed_at_rebuild = {1: 10}
    runtime.gap_repair = Repair()  # type: ignore[assignment]

    class Msg(NamedTuple):
        partition: int
        offset: int
        key: bytes
        value: bytes
        headers: list[Any]
        topic: str

    class Ev(NamedTuple):
        message: Msg

    async def scenario() -> None:
        batch = [Ev(Msg(1, o, b"k", b"v", [], topic)) for o in (13, 14)]
        await runtime.handle_batch(batch)
        assert runtime.processor.seen == [10, 11, 12, 13, 14]  # type: ignore[attr-defined]
        assert marked == [(TP(topic, 1), 10, 12)]
        assert runtime.processed_offsets == {1: 15}
        # Only the first record after an assignment is checked against the commit.
        await runtime.handle_batch([Ev(Msg(1, 20, b"k", b"v", [], topic))])
        assert marked == [(TP(topic, 1), 10, 12)]

    asyncio.run(scenario())


async def _no_rebuild() -> None:
    return None


def _fake_app(topic: str) -> Any:
    """The parts of a Faust app the batched path touches: consumer acks, flow, monitor, producer."""
    from faust.types import TP

    class Consumer:
        flow_active = True

        def __init__(self) -> None:
            # defaultdicts, as in Faust's consumer
            stand_in_consumer_state(self, committed=defaultdict(lambda: None), acks=True)

        def highwater(self, tp: TP) -> int | None:
            return None  # no fetch answered yet: never caught up

        async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
            return dict.fromkeys(tps, 0)  # nothing deleted by retention

        def assignment(self) -> set[TP]:
            return {TP(topic, 0)}

    class Flow:
        def is_active(self) -> bool:
            return True

    class Monitor:
        def __init__(self) -> None:
            self.messages_received_total = 0
            self.messages_received_by_topic: dict[str, int] = defaultdict(int)
            self.tp_read_offsets: dict[TP, int] = {}

    class Producer:
        def __init__(self) -> None:
            self.steps: list[str] = []

        async def flush(self) -> None:
            self.steps.append("flush")

    class App:
        consumer_generation_id = 7
        rebalancing = False

        def __init__(self) -> None:
            self.consumer = Consumer()
            self.flow_control = Flow()
            self.monitor = Monitor()
            self.producer = Producer()
            self.crashed: list[BaseException] = []

        async def crash(self, exc: BaseException) -> None:
            self.crashed.append(exc)

    return App()


class _Processor:
    """Turns a poll into one alert, one state write and one clock write named after its first offset."""

    def __init__(self, steps: list[str]) -> None:
        self.cache = Cache(self)
        self.steps = steps
        self.unserialized: dict[int, dict[str, bytes]] = {}
        self.quarantined: list[Any] = []
        self.due: list[str] = []
        self.evaluated: dict[int, int] = {}
        self.caught: list[list[int]] = []
        self.deadline: float | None = None
        self.ticked: asyncio.Event | None = None

    def check_offsets(self, records: list[Any]) -> OffsetCheck:
        return _offsets_without_gaps(records)

    def evaluated_until(self, partition: int) -> int | None:
        return self.evaluated.get(partition)

    def skip_recordless(self, partition: int, end: int) -> None:
        self.evaluated[partition] = max(end, self.evaluated.get(partition, end))

    def next_deadline(self, partitions: Any) -> float | None:
        return self.deadline

    def check_runs(self, runs: Any) -> OffsetCheck:
        return _offsets_without_gaps([r for run in runs for r in run])

    def process_batch(
        self, records: list[Any], offsets: OffsetCheck, caught_up: Any = (), *, writes: bool = True
    ) -> BatchOutput:
        first = records[0].offset
        self.steps.append(f"process {[r.offset for r in records]}")
        self.caught.append(sorted(caught_up))
        alert = SimpleNamespace(alert_id=f"a{first}", rule_id="r", account_id="acme", severity="high")
        self.unserialized.setdefault(0, {})[f"s{first}"] = b""  # dirty until serialized
        self.cache.mark(f"s{first}")
        self.evaluated.update(offsets.next)
        out = BatchOutput(alerts=[alert], clock_writes={0: first})  # type: ignore[list-item]
        if writes:
            self.take_writes(out)
        return out

    def tick(self, partitions: Any, caught_up: Any, *, writes: bool = True) -> BatchOutput:
        """A tick that fires the alerts and serializes the states a test put in ``due``."""
        self.steps.append("tick")
        if self.ticked is not None:
            self.ticked.set()
        alerts = [SimpleNamespace(alert_id=a, rule_id="r", account_id="acme", severity="high") for a in self.due]
        for a in self.due:
            self.unserialized.setdefault(0, {})[f"s{a}"] = b""
            self.cache.mark(f"s{a}")
        self.due = []
        out = BatchOutput(alerts=alerts)  # type: ignore[arg-type]
        if writes:
            self.take_writes(out)
        return out

    def take_writes(self, out: BatchOutput, count: int | None = None) -> None:
        """The ``count`` oldest dirty states (all when None) serialized (a step), with the dead
        letters of accounts a test quarantined."""
        taken = self.cache._dirty()[:count]
        out.state_writes = {0: {a: self.unserialized[0].pop(a) for a in taken}} if taken else {}
        for a in taken:
            del self.cache.since[a]
        self.steps.extend(f"serialize {a}" for writes in out.state_writes.values() for a in writes)
        out.dead_letters += self.quarantined
        self.quarantined = []

    def take_dead_letters(self, out: BatchOutput) -> None:
        """Only the dead letters of accounts a test quarantined; the states stay dirty."""
        out.dead_letters += self.quarantined
        self.quarantined = []


def _runtime(topic: str, interval: float = 0.0) -> tuple[Any, Any, list[str]]:
    """A runtime on a fake app; ``interval``: ``worker_state_write_interval_seconds`` (0: every batch)."""
    from streams.runtime.settings import Settings
    from streams.worker.agents import WorkerRuntime

    steps: list[str] = []
    app = _fake_app(topic)
    app.producer.steps = steps
    settings = Settings(worker_state_write_interval_seconds=interval)
    runtime = WorkerRuntime(app, settings, topic, _Processor(steps), Writer(steps), {}, {})  # type: ignore[arg-type]
    runtime._needs_rebuild = False  # as after the first batch of an assignment
    return runtime, app, steps


def _held_runtime(topic: str) -> tuple[Any, Any, list[str], Any]:
    """A recovered runtime with a 30 s write interval (a test's polls hold their states), and its TP 0."""
    from faust.types import TP

    runtime, app, steps = _runtime(topic, interval=30.0)
    runtime._recovered = True
    return runtime, app, steps, TP(topic, 0)


async def _first_poll_written(runtime: Any, topic: str) -> None:
    """Offset 1 polled, its alert delivered and its output stage (states, clock, ack) finished."""
    await runtime.handle_poll(_poll(topic, 1), generation_id=7)
    _deliver_all(runtime)
    await runtime._stage.task


async def _polls_delivered(runtime: Any, topic: str, *offsets: int) -> None:
    """One poll per offset, each alert delivered before the next poll."""
    for offset in offsets:
        await runtime.handle_poll(_poll(topic, offset), generation_id=7)
        _deliver_all(runtime)


def _poll(topic: str, *offsets: int) -> dict[Any, list[Any]]:
    from aiokafka.structs import ConsumerRecord
    from faust.types import TP

    return {TP(topic, 0): [ConsumerRecord(topic, 0, o, 0, 0, b"k", b"v", None, 1, 1, []) for o in offsets]}


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.parametrize("reader", ["raises", "incomplete"])
def test_a_gap_after_the_commit_the_side_reader_cannot_fill_is_counted_and_the_worker_goes_on(reader: str) -> None:
    """The side reader failing (its consumer cannot start, the broker away) or reading only part of the
    range in time no longer crashes the batch or leaves the rest unnamed: what stays missing between the
    committed offset and the first record goes to the batch's gaps (counted and logged as skipped)."""
    from faust.types import TP

    from streams.runtime.settings import Settings
    from streams.worker.agents import WorkerRuntime
    from streams.worker.processor import Record

    topic = "events"

    class Consumer:
        def __init__(self) -> None:
            stand_in_consumer_state(self, committed={}, add_gap=self.add_gap)

        async def add_gap(self, tp: TP, start: int, last: int) -> None:
            return None

        def highwater(self, tp: TP) -> int | None:
            return None

        def assignment(self) -> set[TP]:
            return {TP(topic, 1)}

    class App:
        consumer = Consumer()

    class Repair:
        async def read_range(self, partition: int, start: int, end: int) -> tuple[list[Record], bool]:
            if reader == "raises":
                raise TimeoutError("side consumer did not start")
            return [Record(partition, o, b"k", b"v", (), topic) for o in range(end - 1, end)], False

    class Processor:
        cache = Cache()

        def __init__(self) -> None:
            self.seen: list[int] = []
            self.gaps: list[tuple[int, int, int]] = []

        def check_offsets(self, records: list[Record]) -> OffsetCheck:
            return _offsets_without_gaps(records)

        def process_batch(
            self, records: list[Record], offsets: OffsetCheck, caught_up: Any = (), *, writes: bool = True
        ) -> Any:
            self.seen = [r.offset for r in records]
            self.gaps = list(offsets.gaps)
            return BatchOutput()

        def take_writes(self, out: BatchOutput, count: int | None = None) -> None:
            return None

        def next_deadline(self, partitions: Any) -> float | None:
            return None

    runtime = WorkerRuntime(App(), Settings(), topic, Processor(), Writer([]), {}, {})  # type: ignore[arg-type]
    runtime._maybe_rebuild = _no_rebuild  # type: ignore[method-assign]
    runtime._first_unchecked = {1}
    runtime._committed_at_rebuild = {1: 10}
    runtime.gap_repair = Repair()  # type: ignore[assignment]

    class Msg(NamedTuple):
        partition: int
        offset: int
        key: bytes
        value: bytes
        headers: list[Any]
        topic: str

    class Ev(NamedTuple):
        message: Msg

    async def scenario() -> None:
        await runtime.handle_batch([Ev(Msg(1, o, b"k", b"v", [], topic)) for o in (13, 14)])
        processor: Processor = runtime.processor  # type: ignore[assignment]
        if reader == "raises":
            assert processor.seen == [13, 14]
            assert processor.gaps == [(1, 10, 13)]
        else:  # offset 12 re-read; 10 and 11 not
            assert processor.seen == [12, 13, 14]
            assert processor.gaps == [(1, 10, 12)]
        assert runtime.processed_offsets == {1: 15}

    asyncio.run(scenario())


def test_a_poll_is_processed_as_one_batch_and_acked_after_its_output_unless_the_generation_changed() -> None:
    """``handle_poll`` processes a poll's records in one batch and acks them after its output (alert
    delivered → state → flush → clock); a poll of an older consumer generation is dropped
    unprocessed and unacked."""
    from faust.types import TP

    topic = "events"
    runtime, app, steps = _runtime(topic)
    tp = TP(topic, 0)

    async def scenario() -> None:
        acked_before = REGISTRY.get_sample_value("preempt_events_acked_total") or 0.0
        await runtime.handle_poll(_poll(topic, 3, 4, 5), generation_id=7)
        runtime.writer.deliveries[0].set_result(None)
        await runtime.drain()
        assert steps == ["process [3, 4, 5]", "send a3", "serialize s3", "state s3", "flush", "clock 0=3"]
        assert acked_offsets(app, tp) == [3, 4, 5]
        assert REGISTRY.get_sample_value("preempt_events_acked_total") == acked_before + 3
        assert runtime.processed_offsets == {0: 6}
        assert app.monitor.messages_received_total == 3  # Faust's sensor counts the batch

        await runtime.handle_poll(_poll(topic, 6), generation_id=6)
        await runtime.drain()
        assert len(steps) == 6  # not processed
        assert acked_offsets(app, tp) == [3, 4, 5]  # not acked
        assert REGISTRY.get_sample_value("preempt_events_acked_total") == acked_before + 3

    asyncio.run(scenario())


class _StepTable(dict[bytes, bytes]):
    """A table that logs each write to ``steps``."""

    def __init__(self, steps: list[str]) -> None:
        super().__init__()
        self.steps = steps

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.steps.append(f"progress {key.decode()}={value.decode()}")
        super().__setitem__(key, value)


@pytest.mark.parametrize("interval", [0.0, 30.0])
def test_a_polls_progress_record_goes_in_the_flush_before_its_clock(interval: float) -> None:
    """The progress record (how far the partition was evaluated) is handed to the producer with the states,
    before the flush that precedes the clock record: the broker never has a clock covering records that no
    progress record covers (a worker SIGKILLed in between left the next owner judging them late). Before,
    it was written with the acks, after the clock. Held for the write interval, it is released with the
    clock of its batch."""
    import contextlib

    from streams.worker.progress import PartitionProgress

    topic = "events"
    runtime, _, steps = _runtime(topic, interval=interval)
    scopes = SimpleNamespace(scope=lambda partition: contextlib.nullcontext())
    runtime.progress = PartitionProgress(_StepTable(steps), scopes, topic)  # type: ignore[arg-type]

    async def scenario() -> None:
        await runtime.handle_poll(_poll(topic, 3, 4, 5), generation_id=7)
        _deliver_all(runtime)
        await runtime.drain()
        _deliver_all(runtime)
        await runtime.drain()
        assert steps[-4:] == ["state s3", "progress 0=6", "flush", "clock 0=3"]

    asyncio.run(scenario())


def test_the_next_poll_is_processed_while_the_previous_polls_output_is_in_flight() -> None:
    """Poll 2 is processed while poll 1's alert is undelivered; its state waits for that delivery,
    each clock follows the flush after its own state, and offsets are acked only at the end of
    their poll's output; ``drain`` (what revocation waits for) returns only after all of it."""
    from faust.types import TP

    topic = "events"
    runtime, app, steps = _runtime(topic)
    tp = TP(topic, 0)

    async def scenario() -> None:
        await runtime.handle_poll(_poll(topic, 1, 2), generation_id=7)
        second = asyncio.ensure_future(runtime.handle_poll(_poll(topic, 3, 4), generation_id=7))
        await _settle()
        # Poll 2 processed and its alert sent, but it waits for poll 1's states (alert 1 undelivered).
        assert steps == ["process [1, 2]", "send a1", "serialize s1", "process [3, 4]", "send a3", "serialize s3"]
        assert not second.done()
        assert acked_offsets(app, tp) == []
        draining = asyncio.ensure_future(runtime.drain())

        runtime.writer.deliveries[0].set_result(None)
        await second  # poll 1's states are written: poll 2's output stage starts
        await _settle()
        assert steps[6:] == ["state s1", "flush", "clock 0=1"]
        assert acked_offsets(app, tp) == [1, 2]
        assert not draining.done()  # poll 2's alert is still undelivered

        runtime.writer.deliveries[1].set_result(None)
        await draining
        assert steps[9:] == ["state s3", "flush", "clock 0=3"]
        assert acked_offsets(app, tp) == [1, 2, 3, 4]

    asyncio.run(scenario())


def test_alerts_are_handed_to_the_producer_before_the_states_are_serialized() -> None:
    """A poll's and a tick's alerts go to the producer before their states are serialized (an alert's
    record is stamped when handed over), the dead letters of accounts quarantined while serializing
    follow, and a tick with nothing to send or write starts no output stage."""

    topic = "events"
    runtime, _, steps = _runtime(topic)
    runtime._recovered = True

    async def scenario() -> None:
        runtime.processor.quarantined = ["state_too_large"]
        await runtime.handle_poll(_poll(topic, 1), generation_id=7)
        assert steps == ["process [1]", "send a1", "serialize s1", "dead letter state_too_large"]
        for delivery in runtime.writer.deliveries:
            delivery.set_result(None)
        await runtime.drain()
        assert steps[4:] == ["state s1", "flush", "clock 0=1"]

        del steps[:]
        runtime.processor.due = ["due"]
        await runtime.tick()
        assert steps == ["tick", "send due", "serialize sdue"]
        runtime.writer.deliveries[-1].set_result(None)
        await runtime.drain()
        assert steps[3:] == ["state sdue"]  # a tick moves no clock: no flush, no clock write

        del steps[:]
        stage = runtime._stage
        await runtime.tick()
        assert steps == ["tick"]
        assert runtime._stage is stage  # nothing to hand over: no output stage

    asyncio.run(scenario())


@pytest.mark.parametrize("event_time_only", [False, True])
def test_a_live_runtime_ticks_when_the_earliest_pending_deadline_falls_due(event_time_only: bool) -> None:
    """Live, a batch sets a timer for the earliest pending deadline and the runtime ticks then, not
    at the next periodic tick; an overdue deadline (its partition still behind) sets no timer, and
    an event-time-only worker sets none."""
    import time

    from streams.runtime.settings import Settings

    topic = "events"
    runtime, app, steps = _runtime(topic)
    runtime.settings = Settings(event_time_only=event_time_only)
    runtime._recovered = True
    app.consumer.assignment = lambda: set()

    async def scenario() -> None:
        runtime.processor.ticked = asyncio.Event()
        runtime.processor.deadline = time.time() + 0.05
        await runtime.handle_poll(_poll(topic, 1), generation_id=7)
        runtime.writer.deliveries[-1].set_result(None)
        if event_time_only:
            assert runtime._deadline is None
            return
        assert "tick" not in steps
        await asyncio.wait_for(runtime.processor.ticked.wait(), timeout=10)
        runtime.processor.deadline = time.time() - 1.0
        await runtime.handle_poll(_poll(topic, 2), generation_id=7)
        runtime.writer.deliveries[-1].set_result(None)
        assert runtime._deadline is None
        await runtime.drain()

    asyncio.run(scenario())


def test_a_failed_delivery_stops_the_worker_and_nothing_later_is_written() -> None:
    """An alert that cannot be delivered fails its output stage: the app is crashed, that poll's
    state, clock and acks are never written, and the next poll's submit raises instead of writing."""
    from faust.types import TP

    topic = "events"
    runtime, app, steps = _runtime(topic)

    async def scenario() -> None:
        await runtime.handle_poll(_poll(topic, 1), generation_id=7)
        second = asyncio.ensure_future(runtime.handle_poll(_poll(topic, 2), generation_id=7))
        await _settle()
        runtime.writer.deliveries[0].set_exception(RuntimeError("broker gone"))
        with pytest.raises(RuntimeError, match="broker gone"):  # the next poll does not start its output
            await second
        await _settle()
        assert [repr(e) for e in app.crashed] == [repr(RuntimeError("broker gone"))]
        assert not any(s.startswith(("state", "clock")) for s in steps)
        assert acked_offsets(app, TP(topic, 0)) == []

    asyncio.run(scenario())


@pytest.mark.parametrize(("event_time_only", "expected"), [(False, [0, 1]), (True, [0])])
def test_after_a_live_batch_every_caught_up_partition_catches_up_not_only_the_batchs(
    event_time_only: bool, expected: list[int]
) -> None:
    """Live, a batch catches up the clocks of every assigned partition read to its end (a partition
    without records in the poll has deadlines too), not of one still behind; an event-time-only
    worker (replay) considers the batch's partitions only."""
    from faust.types import TP

    from streams.runtime.settings import Settings

    topic = "events"
    runtime, app, _ = _runtime(topic)
    runtime.settings = Settings(event_time_only=event_time_only)
    ends = {0: 10, 1: 5, 2: 7}
    app.consumer.assignment = lambda: {TP(topic, p) for p in ends}
    app.consumer.highwater = lambda tp: ends[tp.partition]
    runtime.processor.evaluated = {1: 5, 2: 3}  # 1 read to its end, 2 behind

    async def scenario() -> None:
        await runtime.handle_poll(_poll(topic, 8, 9), generation_id=7)  # partition 0, to its end

    asyncio.run(scenario())
    assert runtime.processor.caught == [expected]


def test_a_partition_is_caught_up_only_when_everything_up_to_its_end_offset_is_handled() -> None:
    """Live clocks follow the wall clock only on caught-up partitions: evaluated (or, before anything
    is evaluated, committed) up to the end offset of the last fetch; an unknown end or a partition
    aiokafka no longer holds is not caught up, and an empty partition is."""
    from faust.types import TP

    from streams.runtime.settings import Settings
    from streams.worker.agents import WorkerRuntime

    topic = "events"
    ends: dict[int, int | None] = {0: 100, 1: 100, 2: None, 3: 0, 4: 50, 5: 7}

    class Consumer:
        def __init__(self) -> None:
            stand_in_consumer_state(self, committed=defaultdict(lambda: None, {TP(topic, 4): 50}))

        def highwater(self, tp: TP) -> int | None:
            if tp.partition not in ends:
                raise AssertionError("Partition is not assigned")  # aiokafka's check
            return ends[tp.partition]

    class App:
        consumer = Consumer()

    class Processor:
        def evaluated_until(self, partition: int) -> int | None:
            return {0: 100, 1: 60, 2: 10}.get(partition)

    runtime = WorkerRuntime(App(), Settings(), topic, Processor(), None, {}, {})  # type: ignore[arg-type]
    runtime.processed_offsets = {1: 100}  # acked offsets do not count: evaluation does
    # 0 evaluated to its end; 1 has 40 waiting; 2 end unknown; 3 empty; 4 committed to its end
    # (nothing handled since the assignment); 5 nothing handled nor committed; 9 not assigned.
    assert runtime.caught_up([0, 1, 2, 3, 4, 5, 9]) == {0, 3, 4}


def test_a_fetch_landing_between_the_reads_never_dates_an_end_by_a_newer_response(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The time of the last fetch response is read before the end offset: when a fetch lands between the
    two reads, the partition is not caught up (a newer end) instead of caught up as of the newer
    response, whose records it has not evaluated (their events would then be judged late)."""
    from faust.types import TP

    from streams.runtime.settings import Settings
    from streams.worker import agents
    from streams.worker.agents import WorkerRuntime
    from streams.worker.clock import PartitionClocks

    topic = "events"
    fetch = {"end": 10, "at": 100.0, "reads": 0}

    def read() -> None:  # the first read sees the old fetch; a new one lands right after it
        fetch["reads"] += 1
        if fetch["reads"] == 2:
            fetch.update(end=11, at=200.0)

    class Consumer:
        def highwater(self, tp: TP) -> int:
            read()
            return fetch["end"]  # type: ignore[return-value]

    def highwater_time(app: Any, tp: TP) -> float:
        read()
        return fetch["at"]  # type: ignore[return-value]

    class App:
        consumer = Consumer()

    class Processor:
        clocks = PartitionClocks(5.0, event_time_only=False)

        def evaluated_until(self, partition: int) -> int:
            return 10

    monkeypatch.setattr(agents, "highwater_time", highwater_time)
    runtime = WorkerRuntime(App(), Settings(), topic, Processor(), None, {}, {})  # type: ignore[arg-type]
    caught = runtime.caught_up_as_of([0])
    assert fetch["reads"] == 2
    assert caught == {} or caught[0] <= 100.0


def test_the_runtime_hands_fetch_answers_and_failures_to_the_clocks_and_says_once_when_it_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before each batch and tick the clocks learn when the broker last answered each partition and
    when a request last failed: after an outage longer than the lateness the watermark is held, and
    one WARN names the partitions, how long nothing answered and for how long the clock is held."""
    from faust.types import TP
    from structlog.testing import capture_logs

    from streams.runtime.settings import Settings
    from streams.worker import agents
    from streams.worker.agents import WorkerRuntime
    from streams.worker.clock import PartitionClocks

    topic = "events"
    fetch = {"at": 1000.0, "failed": None}
    wall = {"now": 1000.0}

    class Consumer:
        def highwater(self, tp: TP) -> int:
            return 10

    class App:
        consumer = Consumer()

    class Processor:
        clocks = PartitionClocks(5.0, event_time_only=False, wall_clock=lambda: wall["now"])

        def evaluated_until(self, partition: int) -> int:
            return 10

    monkeypatch.setattr(agents, "highwater_time", lambda app, tp: fetch["at"] if tp.partition == 0 else None)
    monkeypatch.setattr(agents, "last_unanswered_request", lambda app: fetch["failed"])
    runtime = WorkerRuntime(App(), Settings(), topic, Processor(), None, {}, {})  # type: ignore[arg-type]
    clocks = runtime.processor.clocks
    clocks.observe(0, 999.0)
    with capture_logs() as logs:
        assert runtime.caught_up_as_of([0, 1])[0] == 1000.0  # partition 1: no answer yet (as of now)
        fetch.update(at=1031.0, failed=1012.0)
        wall["now"] = 1031.5
        assert runtime.caught_up_as_of([0, 1])[0] == 1031.0
        runtime.caught_up_as_of([0, 1])  # the same answer again: no second line
    clocks.catch_up({0: 1031.0})
    assert clocks.watermark(0) == 994.0  # held where the outage left it (the event at 999 − lateness)
    held = [e for e in logs if e["event"].startswith("the broker did not answer fetches")]
    assert [(e["partitions"], e["seconds_unanswered"], e["held_for_seconds"], e["log_level"]) for e in held] == [
        ([0], 31.0, 60.0, "warning")
    ]


def test_one_warn_per_outage_a_gauge_of_held_partitions_and_an_info_when_the_hold_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After one outage, partitions the broker answers in different batches are held under one WARN;
    ``preempt_clock_held_partitions`` counts them; an INFO names them when the hold ends, and the
    gauge is 0 again; a later outage has its own WARN."""
    from faust.types import TP
    from prometheus_client import REGISTRY
    from structlog.testing import capture_logs

    from streams.runtime.settings import Settings
    from streams.worker import agents
    from streams.worker.agents import WorkerRuntime
    from streams.worker.clock import PartitionClocks

    answers: dict[int, float] = {0: 1000.0, 1: 1000.0}
    fetch: dict[str, float | None] = {"failed": None}
    wall = {"now": 1000.0}

    class Consumer:
        def highwater(self, tp: TP) -> int:
            return 10

    class App:
        consumer = Consumer()

    class Processor:
        clocks = PartitionClocks(5.0, event_time_only=False, wall_clock=lambda: wall["now"])

        def evaluated_until(self, partition: int) -> int:
            return 10

    def held() -> float | None:
        return REGISTRY.get_sample_value("preempt_clock_held_partitions")

    monkeypatch.setattr(agents, "highwater_time", lambda app, tp: answers.get(tp.partition))
    monkeypatch.setattr(agents, "last_unanswered_request", lambda app: fetch["failed"])
    monkeypatch.setattr(agents, "broker_last_unanswered", lambda app: None)
    runtime = WorkerRuntime(App(), Settings(), "events", Processor(), None, {}, {})  # type: ignore[arg-type]
    clocks = runtime.processor.clocks
    clocks.observe(0, 999.0)
    clocks.observe(1, 999.0)
    with capture_logs() as logs:
        runtime.caught_up_as_of([0, 1])
        fetch["failed"] = 1012.0
        wall["now"] = answers[0] = 1031.0  # the first batch after the outage: partition 0 answered
        runtime.caught_up_as_of([0, 1])
        assert held() == 1.0
        wall["now"] = answers[1] = 1032.0  # the next: partition 1, after the same outage
        runtime.caught_up_as_of([0, 1])
        assert held() == 2.0
        wall["now"] = answers[0] = answers[1] = 1092.5  # both holds are over
        runtime.caught_up_as_of([0, 1])
        assert held() == 0.0
        fetch["failed"] = 1200.0
        wall["now"] = answers[0] = 1210.0  # another outage, 1092.5 to 1210
        runtime.caught_up_as_of([0, 1])
    warned = [e["partitions"] for e in logs if e["event"].startswith("the broker did not answer fetches")]
    assert warned == [[0], [0]]
    ended = [e["partitions"] for e in logs if e["event"].startswith("the watermark hold after a broker outage ended")]
    assert ended == [[0, 1]]


def _deliver_all(runtime: Any) -> None:
    for delivery in runtime.writer.deliveries:
        if not delivery.done():
            delivery.set_result(None)


def test_within_the_write_interval_states_stay_dirty_and_acks_and_clocks_wait_for_their_write() -> None:
    """Right after a state write a poll's alert and dead letters go out at once, but its states stay
    dirty and its offsets and clock wait; a later poll writes the states dirty for the interval or
    longer, oldest first, then the clock of the polls they cover, then acks those polls in order; a
    poll a whole interval after the last one writes every dirty state."""
    from faust.types import TP

    topic = "events"
    runtime, app, steps = _runtime(topic, interval=30.0)
    tp = TP(topic, 0)

    async def scenario() -> None:
        await runtime.handle_poll(_poll(topic, 1, 2), generation_id=7)  # nothing written yet: writes now
        _deliver_all(runtime)
        await runtime._stage.task
        assert steps == ["process [1, 2]", "send a1", "serialize s1", "state s1", "flush", "clock 0=1"]
        assert acked_offsets(app, tp) == [1, 2]

        del steps[:]
        runtime.processor.quarantined = ["state_too_large"]
        await runtime.handle_poll(_poll(topic, 3, 4), generation_id=7)
        _deliver_all(runtime)  # the broker acknowledges the alert (the next poll waits for it)
        await runtime.handle_poll(_poll(topic, 5), generation_id=7)
        _deliver_all(runtime)
        await _settle()
        # Alerts and the dead letter went out; no state serialized or written, no clock, no ack.
        assert steps == ["process [3, 4]", "send a3", "dead letter state_too_large", "process [5]", "send a5"]
        assert acked_offsets(app, tp) == [1, 2]
        assert runtime.processed_offsets == {0: 3}
        assert runtime.processor.cache.dirty == 2
        assert runtime.holding

        del steps[:]
        runtime.processor.cache.age(31.0)  # s3 and s5 are dirty for longer than the interval
        await runtime.handle_poll(_poll(topic, 6), generation_id=7)
        _deliver_all(runtime)
        await runtime._stage.task
        assert steps == [
            "process [6]",
            "send a6",
            "serialize s3",
            "serialize s5",
            "state s3",
            "state s5",
            "flush",  # the states are on the broker before the clock that covers them
            "clock 0=5",
        ]
        assert acked_offsets(app, tp) == [1, 2, 3, 4, 5]
        assert runtime.holding  # poll 6's state is dirty, its offset and clock wait

        del steps[:]
        runtime._last_share -= 30.0  # a whole interval since the last stage's share
        await runtime.handle_poll(_poll(topic, 7), generation_id=7)
        _deliver_all(runtime)
        await runtime._stage.task
        written = [s for s in steps if s.startswith(("serialize", "clock"))]
        assert written == ["serialize s6", "serialize s7", "clock 0=7"]
        assert acked_offsets(app, tp) == [1, 2, 3, 4, 5, 6, 7]
        assert runtime.processed_offsets == {0: 8}
        assert not runtime.holding

    asyncio.run(scenario())


def test_state_writes_are_spread_over_the_interval_oldest_first() -> None:
    """A stage a quarter of the interval after the previous one serializes a quarter of the dirty
    states (the oldest; the fraction left over is carried to the next stage) and releases the
    polls those states cover, in order, with their latest clock."""
    from faust.types import TP

    topic = "events"
    runtime, app, steps = _runtime(topic, interval=10.0)
    tp = TP(topic, 0)

    async def scenario() -> None:
        for offset in range(1, 12):  # the first writes at once; ten more within a moment
            await runtime.handle_poll(_poll(topic, offset), generation_id=7)
            _deliver_all(runtime)
        await _settle()
        assert acked_offsets(app, tp) == [1]
        assert runtime.processor.cache.dirty == 10

        del steps[:]
        now = time.monotonic()
        runtime._clock = lambda: now  # exactly a quarter of the interval, however slow the machine
        runtime._last_share = now - 2.5
        runtime._write_credit = 0.0
        await runtime.handle_poll(_poll(topic, 12), generation_id=7)  # 11 dirty x 0.25 = 2.75
        _deliver_all(runtime)
        await runtime._stage.task
        written = [s for s in steps if s.startswith(("serialize", "clock"))]
        assert written == ["serialize s2", "serialize s3", "clock 0=3"]
        assert acked_offsets(app, tp) == [1, 2, 3]
        assert runtime._write_credit == pytest.approx(0.75, abs=0.01)
        assert runtime.processor.cache.dirty == 9

    asyncio.run(scenario())


def test_the_first_poll_after_a_quiet_spell_writes_its_states_at_once() -> None:
    """Ticks with nothing dirty do not restart the interval's share: the first poll an interval or
    more after the last write serializes its states and acks at once."""

    topic = "events"
    runtime, app, steps, tp = _held_runtime(topic)

    async def scenario() -> None:
        await _first_poll_written(runtime, topic)
        runtime._last_share -= 31.0  # quiet for an interval; the clock timer ticks meanwhile
        await runtime.tick()
        await runtime.tick()
        del steps[:]
        await runtime.handle_poll(_poll(topic, 2), generation_id=7)
        _deliver_all(runtime)
        await runtime._stage.task
        assert [s for s in steps if s.startswith(("serialize", "clock"))] == ["serialize s2", "clock 0=2"]
        assert acked_offsets(app, tp) == [1, 2]
        assert not runtime.holding

    asyncio.run(scenario())


def test_a_graceful_stop_writes_the_held_states_and_a_failure_does_not_keep_it_from_stopping() -> None:
    """``write_before_stop`` (Faust's ``on_stop``) writes the held states, clocks and acks; when that
    fails (the broker gone) it logs and returns, so the stop goes on."""

    topic = "events"
    runtime, app, steps, tp = _held_runtime(topic)

    async def scenario() -> None:
        await _polls_delivered(runtime, topic, 1, 2)
        await _settle()
        assert acked_offsets(app, tp) == [1]
        del steps[:]
        await runtime.write_before_stop()
        assert steps == ["serialize s2", "state s2", "flush", "clock 0=2"]
        assert acked_offsets(app, tp) == [1, 2]

        await runtime.handle_poll(_poll(topic, 3), generation_id=7)
        _deliver_all(runtime)

        async def broken() -> None:
            raise ConnectionError("broker gone")

        runtime.drain = broken  # type: ignore[method-assign]
        await runtime.write_before_stop()  # logged, not raised
        assert acked_offsets(app, tp) == [1, 2]

    asyncio.run(scenario())


def test_after_a_failed_poll_nothing_more_is_written_not_even_by_a_graceful_stop() -> None:
    """A poll that fails part-way (its alerts not handed to the producer) marks the runtime failed:
    its states, already changed in the cache, are never written — not by ``write_before_stop``,
    a tick or a later poll (dropped unacked) — so the restart re-reads it and its alerts go out."""

    from streams.worker.agents import WorkerFailedError

    topic = "events"
    runtime, app, steps, tp = _held_runtime(topic)

    async def scenario() -> None:
        await _first_poll_written(runtime, topic)

        async def producer_gone(alerts: list[Any]) -> list[Any]:
            raise ConnectionError("alerts topic unreachable")

        sent = runtime.writer.send_alerts
        runtime.writer.send_alerts = producer_gone  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await runtime.handle_poll(_poll(topic, 2), generation_id=7)
        runtime.writer.send_alerts = sent  # type: ignore[method-assign]
        assert runtime.failed
        del steps[:]
        await runtime.write_before_stop()
        await runtime.tick()
        await runtime.handle_poll(_poll(topic, 3), generation_id=7)
        with pytest.raises(WorkerFailedError):
            await runtime.drain()
        assert steps == []  # nothing processed, serialized, written or flushed
        assert acked_offsets(app, tp) == [1]

    asyncio.run(scenario())


def test_a_failed_output_stage_marks_the_runtime_failed_and_a_graceful_stop_writes_nothing() -> None:
    """An output stage that fails (an alert the broker refused) stops the worker; the stop's
    ``write_before_stop`` then writes none of the states held since."""

    topic = "events"
    runtime, app, steps, tp = _held_runtime(topic)

    async def scenario() -> None:
        await _first_poll_written(runtime, topic)
        await runtime.handle_poll(_poll(topic, 2), generation_id=7)  # held: states dirty
        runtime.writer.deliveries[-1].set_exception(ConnectionError("broker refused the alert"))
        await _settle()
        assert runtime.failed
        assert app.crashed
        del steps[:]
        await runtime.write_before_stop()
        assert not [s for s in steps if s.startswith(("serialize", "state", "clock"))]
        assert acked_offsets(app, tp) == [1]

    asyncio.run(scenario())


def test_drain_writes_the_held_states_before_it_returns() -> None:
    """``drain`` (what revocation, a rebuild and shutdown wait for) writes the states held for the
    interval, then their clocks, and acks the held polls before it returns; a tick within the
    interval holds its states too."""

    topic = "events"
    runtime, app, steps, tp = _held_runtime(topic)

    async def scenario() -> None:
        await _polls_delivered(runtime, topic, 1, 2)
        runtime.processor.due = ["due"]
        await runtime.tick()
        _deliver_all(runtime)
        await _settle()
        assert [s for s in steps if s.startswith(("process", "send", "tick", "serialize"))] == [
            "process [1]",
            "send a1",
            "serialize s1",
            "process [2]",
            "send a2",
            "tick",
            "send due",
        ]
        assert acked_offsets(app, tp) == [1]

        del steps[:]
        await runtime.drain()
        assert steps == ["serialize s2", "serialize sdue", "state s2", "state sdue", "flush", "clock 0=2"]
        assert acked_offsets(app, tp) == [1, 2]
        assert not runtime.holding

        del steps[:]
        await runtime.drain()  # nothing held: nothing written
        assert steps == []

    asyncio.run(scenario())


def test_with_interval_zero_every_poll_writes_its_states_and_acks() -> None:
    """``PREEMPT_WORKER_STATE_WRITE_INTERVAL_SECONDS=0``: each poll serializes and writes its states
    and acks its offsets in its own output stage, as before the interval existed."""
    from faust.types import TP

    topic = "events"
    runtime, app, steps = _runtime(topic, interval=0.0)
    tp = TP(topic, 0)

    async def scenario() -> None:
        for offset in (1, 2, 3):
            await runtime.handle_poll(_poll(topic, offset), generation_id=7)
            _deliver_all(runtime)
            await runtime._stage.task
            assert acked_offsets(app, tp) == list(range(1, offset + 1))
        assert [s for s in steps if s.startswith(("serialize", "state", "clock"))] == [
            f"{step} {name}"
            for n in (1, 2, 3)
            for step, name in (("serialize", f"s{n}"), ("state", f"s{n}"), ("clock", f"0={n}"))
        ]

    asyncio.run(scenario())


def test_an_event_time_replay_read_to_the_end_of_its_partitions_writes_at_once() -> None:
    """Event-time mode: a poll that leaves every assigned partition read to its end (a replay's end)
    writes its states and acks at once, whatever the interval; one with records still waiting holds."""
    from faust.types import TP

    topic = "events"
    runtime, app, steps = _runtime(topic, interval=30.0)
    runtime.settings = runtime.settings.model_copy(update={"event_time_only": True})
    tp = TP(topic, 0)
    app.consumer.highwater = lambda tp: 4

    async def scenario() -> None:
        await runtime.handle_poll(_poll(topic, 0), generation_id=7)  # the first write
        _deliver_all(runtime)
        await runtime.handle_poll(_poll(topic, 1, 2), generation_id=7)  # 3 still to read: held
        _deliver_all(runtime)
        await _settle()
        assert acked_offsets(app, tp) == [0]
        await runtime.handle_poll(_poll(topic, 3), generation_id=7)  # read to the end offset 4
        _deliver_all(runtime)
        await runtime._stage.task
        assert acked_offsets(app, tp) == [0, 1, 2, 3]
        assert steps[-4:] == ["state s1", "state s3", "flush", "clock 0=3"]

    asyncio.run(scenario())


def test_the_per_record_path_writes_its_states_before_the_agent_acks() -> None:
    """``PREEMPT_WORKER_BATCHED_POLL=false``: the agent acks a batch when ``handle_batch`` returns, so
    that batch's states are written (and its clock after them) whatever the write interval."""
    topic = "events"
    runtime, _, steps = _runtime(topic, interval=30.0)

    def event(offset: int) -> Any:
        message = SimpleNamespace(partition=0, offset=offset, key=b"k", value=b"v", headers=None, topic=topic)
        return SimpleNamespace(message=message)

    async def scenario() -> None:
        for offset in (1, 2):
            handled = asyncio.ensure_future(runtime.handle_batch([event(offset)]))
            await _settle()
            _deliver_all(runtime)
            await asyncio.wait_for(handled, timeout=10)
            assert steps[-3:] == [f"state s{offset}", "flush", f"clock 0={offset}"]
            assert runtime.processed_offsets == {0: offset + 1}
            assert not runtime.holding

    asyncio.run(scenario())


class _EmptyRange:
    """A side read that finds no record in any range (transaction markers only); records its calls."""

    def __init__(self) -> None:
        self.reads: list[tuple[int, int, int]] = []

    async def read_range(self, partition: int, start: int, end: int, **kwargs: Any) -> tuple[list[Any], bool]:
        self.reads.append((partition, start, end))
        return [], True


def test_a_recordless_tail_is_not_acked_ahead_of_records_held_for_their_state_write() -> None:
    """While evaluated records of a partition wait for their state write (held, unacked), settling
    its recordless tail acks nothing and says False (Faust could otherwise commit past the held
    records); once they are acked, the tail is acked after them."""
    topic = "events"
    runtime, app, _steps, tp = _held_runtime(topic)
    runtime.gap_repair = _EmptyRange()

    async def scenario() -> None:
        await _first_poll_written(runtime, topic)  # offset 1 written and acked
        await _polls_delivered(runtime, topic, 2, 3)  # evaluated, held for the write interval
        await _settle()
        assert acked_offsets(app, tp) == [1]
        assert runtime.processor.evaluated_until(0) == 4

        assert await runtime.settle_recordless_tail(0, 6) is False
        assert acked_offsets(app, tp) == [1]  # nothing acked past the held offsets 2 and 3
        assert runtime.gap_repair.reads == []

        await runtime.drain()  # the held states written: 2 and 3 acked
        assert acked_offsets(app, tp) == [1, 2, 3]
        assert await runtime.settle_recordless_tail(0, 6) is True
        assert acked_offsets(app, tp) == [1, 2, 3, 4, 5]
        assert runtime.gap_repair.reads == [(0, 4, 6)]
        assert runtime.processed_offsets == {0: 6}

    asyncio.run(scenario())


def test_a_recordless_tail_is_probed_for_its_first_record_outside_the_lock_and_rechecked_before_the_ack() -> None:
    """Settling reads only whether the range holds a record (``first_only``), without the worker's
    lock (batches go on meanwhile); a batch that moves the partition during the read means no ack."""
    topic = "events"
    runtime, app, _steps = _runtime(topic)  # interval 0: every poll is acked with its output
    runtime._recovered = True
    from faust.types import TP

    tp = TP(topic, 0)
    seen: list[tuple[bool, Any]] = []
    poll_meanwhile = True

    class Probe:
        async def read_range(self, partition: int, start: int, end: int, **kwargs: Any) -> tuple[list[Any], bool]:
            seen.append((runtime.lock.locked(), kwargs.get("first_only")))
            if poll_meanwhile:  # a record arrives while the range is read: the batch is not blocked
                await runtime.handle_poll(_poll(topic, start), generation_id=7)
                _deliver_all(runtime)
                await runtime._stage.task
            return [], True

    runtime.gap_repair = Probe()

    async def scenario() -> None:
        nonlocal poll_meanwhile
        await _first_poll_written(runtime, topic)  # offset 1 acked; the next to evaluate is 2
        assert await runtime.settle_recordless_tail(0, 5) is False
        assert seen == [(False, True)]
        assert acked_offsets(app, tp) == [1, 2]  # only the batch's record: the range moved

        poll_meanwhile = False
        assert await runtime.settle_recordless_tail(0, 5) is True
        assert acked_offsets(app, tp) == [1, 2, 3, 4]

    asyncio.run(scenario())


def test_settling_a_recordless_tail_does_not_wait_for_a_lock_held_by_a_stuck_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a batch or tick holds the worker's lock — an output stage waiting on a dead letter the broker does
    not take (its topic deleted) — the watchdog's recordless-tail check answers False within the lock wait
    instead of waiting with it: waiting, the watchdog reported that stall only after it had ended."""
    from streams.worker import agents

    monkeypatch.setattr(agents, "SETTLE_LOCK_WAIT_SECONDS", 0.05, raising=False)
    topic = "events"
    runtime, _app, _steps = _runtime(topic)
    runtime._recovered = True
    runtime.gap_repair = _EmptyRange()

    async def scenario() -> None:
        await _first_poll_written(runtime, topic)
        await runtime.lock.acquire()  # the stuck stage's tick
        assert await asyncio.wait_for(runtime.settle_recordless_tail(0, 5), timeout=5) is False
        assert runtime.gap_repair.reads == []
        runtime.lock.release()
        assert await asyncio.wait_for(runtime.settle_recordless_tail(0, 5), timeout=5) is True
        assert not runtime.lock.locked()

    asyncio.run(scenario())


def test_a_deleted_events_topic_is_said_once_however_many_rebalances_come_before_it_is_back() -> None:
    """The events topic deleted under the worker: one ERROR, then one INFO when it is back. A rebalance while
    it was gone (the group reacts to the deletion) reset the flag and said "events topic back" and the ERROR
    again: a false recovery in the log, and two ERROR lines for one disappearance."""
    from structlog.testing import capture_logs

    from streams.runtime.settings import Settings
    from streams.worker.agents import WorkerRuntime

    partitions: dict[str, set[int]] = {"events": {0, 1}}

    class Cluster:
        def partitions_for_topic(self, topic: str) -> set[int] | None:
            return partitions.get(topic)

    class Consumer:
        class _thread:  # noqa: N801 - the attribute path faust_compat.ClusterPartitionCounts reads
            class _consumer:  # noqa: N801
                class _client:  # noqa: N801
                    cluster = Cluster()

    class App:
        consumer = Consumer()

    class Processor:
        class cache:  # noqa: N801
            @staticmethod
            def drop_partitions(_: Any) -> None: ...

        class clocks:  # noqa: N801
            @staticmethod
            def forget(_: Any) -> None: ...

        class wakeups:  # noqa: N801
            @staticmethod
            def drop_partitions(_: Any) -> None: ...

    runtime = WorkerRuntime(App(), Settings(), "events", Processor(), None, {}, {})  # type: ignore[arg-type]
    del partitions["events"]
    assert runtime.missing_events_topic() == ()  # before the first recovery the metadata may not list it yet
    partitions["events"] = {0, 1}
    runtime._recovered = runtime._recovered_once = True
    with capture_logs() as logs:
        assert runtime.missing_events_topic() == ()
        del partitions["events"]
        assert runtime.missing_events_topic()[0].startswith("topic events does not exist")
        runtime.on_revoked([])  # the group rebalances: nothing assigned, recovery again
        assert runtime.missing_events_topic()[0].startswith("topic events does not exist")  # the cause, said first
        runtime._recovered = True
        assert runtime.missing_events_topic()[0].startswith("topic events does not exist")
        partitions["events"] = {0, 1}
        assert runtime.missing_events_topic() == ()
    said = [(e["log_level"], e["event"]) for e in logs if "events topic" in e["event"]]
    assert said == [("error", "events topic missing; not ready until it is back"), ("info", "events topic back")]


class _Wakeups:
    def drop_partitions(self, partitions: Any) -> None:
        return None

    def __len__(self) -> int:
        return 0


class _RebuildProcessor:
    """What a rebuild calls on the processor; records what it is told is read again, and from where."""

    def __init__(self) -> None:
        self.cache = SimpleNamespace(clear=lambda: None, dirty=0, written_mark=0, dirty_mark=0)
        self.wakeups = _Wakeups()
        self.clocks = SimpleNamespace(forget=lambda partitions: None)
        self.read_from: dict[int, int | None] | None = None
        self.again: dict[int, int] = {}

    def forget_offsets(self) -> None:
        return None

    def restore_clock(self, key: bytes, value: bytes, partitions: set[int]) -> None:
        return None

    def rebuild_wakeups(self, states: Any) -> int:
        return len(list(states))

    def reading_from(self, committed: dict[int, int | None]) -> None:
        self.read_from = dict(committed)

    def read_again(self, partition: int, handled_until: int) -> None:
        self.again[partition] = handled_until

    def tick(self, partitions: Any, caught_up: Any, *, writes: bool = True) -> BatchOutput:
        return BatchOutput()

    def take_writes(self, out: BatchOutput, count: int | None = None) -> None:
        return None

    def take_dead_letters(self, out: BatchOutput) -> None:
        return None

    def next_deadline(self, partitions: Any) -> float | None:
        return None

    def evaluated_until(self, partition: int) -> int | None:
        return None


def _rebuilt(group_committed: Any, earliest: Any = None) -> _RebuildProcessor:
    """A rebuild after an assignment of partition 0, whose progress record says 9 was handled, while
    Faust's own copy of the committed offsets is empty (as after a revocation, before recovery's seek
    back) and the group coordinator answers ``group_committed``."""
    import contextlib

    from faust.types import TP

    from streams.runtime.settings import Settings
    from streams.worker.agents import WorkerRuntime
    from streams.worker.progress import PartitionProgress

    topic = "t.events"
    app = _fake_app(topic)
    stand_in_consumer_state(app.consumer, committed=defaultdict(lambda: None), group_committed=group_committed(TP))
    if earliest is not None:
        app.consumer.earliest_offsets = earliest
    processor = _RebuildProcessor()
    runtime = WorkerRuntime(app, Settings(), topic, processor, Writer([]), {}, {})  # type: ignore[arg-type]
    scopes = SimpleNamespace(scope=lambda partition: contextlib.nullcontext())
    runtime.progress = PartitionProgress({b"0": b"9"}, scopes, topic)  # type: ignore[arg-type]
    runtime._recovered = True
    asyncio.run(runtime.tick())
    assert not runtime._needs_rebuild
    return processor


def test_a_rebuild_reads_the_groups_committed_offsets_not_fausts_copy_emptied_by_the_revocation() -> None:
    """Faust forgets a partition's committed offset when it is revoked (every one with the eager
    assignor, those this worker keeps too) and learns it again only at recovery's seek back, which the
    first poll after the rebuild can come before. The rebuild took that empty copy for "nothing
    committed": it dropped what this worker had evaluated (``reading_from``) and did not compare the
    progress table with the committed offset, so the records the poll read again were judged late --
    126 to 607 of 5,501 in ``tests/integration/test_pipeline_rebalance_late.py``. It asks the group
    coordinator: committed 5, handled up to 9, so 5 to 8 are read again."""
    processor = _rebuilt(lambda tp: {tp("t.events", 0): 5})
    assert processor.read_from == {0: 5}
    assert processor.again == {0: 9}


def test_a_rebuild_whose_group_coordinator_does_not_answer_falls_back_to_fausts_copy() -> None:
    """No answer in time: the rebuild goes on with Faust's copy (here empty: nothing read again), and says so."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        processor = _rebuilt(lambda tp: False)
    assert processor.read_from == {0: None}
    assert processor.again == {}
    warned = [e for e in logs if e["event"].startswith("the group coordinator did not give the committed offsets")]
    assert [(e["log_level"], e["partitions"]) for e in warned] == [("warning", [0])]


def test_a_rebuild_whose_log_start_offsets_do_not_come_goes_on_from_the_committed_offsets() -> None:
    """Kafka does not give the log start offsets: the rebuild reads from the committed offsets as before (nothing
    counted as deleted by retention) and says so; with them, a log start past the committed offset is where
    reading starts."""
    from aiokafka.errors import KafkaTimeoutError
    from structlog.testing import capture_logs

    async def no_answer(*tps: Any) -> dict[Any, int]:
        raise KafkaTimeoutError

    with capture_logs() as logs:
        processor = _rebuilt(lambda tp: {tp("t.events", 0): 5}, no_answer)
    assert processor.read_from == {0: 5}
    warned = [e for e in logs if e["event"].startswith("the log start offsets were not given")]
    assert [(e["log_level"], e["partitions"]) for e in warned] == [("warning", [0])]

    async def deleted_to_12(*tps: Any) -> dict[Any, int]:
        return dict.fromkeys(tps, 12)

    processor = _rebuilt(lambda tp: {tp("t.events", 0): 5}, deleted_to_12)
    assert processor.read_from == {0: 12}
    assert processor.again == {}  # handled up to 9, reading from 12: nothing read again
