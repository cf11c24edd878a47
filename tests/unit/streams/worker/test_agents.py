"""The rules worker's runtime: the batched poll, gap checks after an assignment, the flow-control workaround."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, NamedTuple

import faust

from streams.worker.agents import keep_events_across_flow_resume
from streams.worker.processor import OffsetCheck


def _offsets_without_gaps(records: list[Any]) -> OffsetCheck:
    """What ``RulesProcessor.check_offsets`` returns for records with no offset jump."""
    first: dict[int, int] = {}
    nxt: dict[int, int] = {}
    for r in records:
        first.setdefault(r.partition, r.offset)
        nxt[r.partition] = max(nxt.get(r.partition, 0), r.offset + 1)
    return OffsetCheck([], first, nxt)


def test_flow_resume_no_longer_clears_the_agents_queue() -> None:
    """After the hook, ``flow_control.resume()`` leaves queued records in the stream's channel queue."""

    async def scenario() -> tuple[int, int]:
        app = faust.App("test-flow-resume", broker="memory://", web_enabled=False)
        other = app.topic("other").clone(is_iterator=True)
        stream = app.stream(app.topic("events").clone(is_iterator=True))
        for q in (stream.channel.queue, other.queue):
            q.put_nowait("record")
        keep_events_across_flow_resume(app, stream)
        app.flow_control.resume()
        return stream.channel.queue.qsize(), other.queue.qsize()

    kept, cleared = asyncio.run(scenario())
    assert (kept, cleared) == (1, 0)


def test_records_between_the_commit_and_the_first_delivered_one_are_re_read_and_marked_done() -> None:
    """After an assignment, a first record past the committed offset triggers a re-read of the missing
    range, and the re-read offsets are handed to Faust as done so its commits can pass them."""
    from faust.types import TP

    from streams.runtime.settings import Settings
    from streams.worker.agents import WorkerRuntime
    from streams.worker.processor import Record

    topic = "events"
    marked: list[tuple[TP, int, int]] = []

    class Consumer:
        def __init__(self) -> None:
            self._committed_offset = {TP(topic, 1): 10}

        async def _add_gap(self, tp: TP, start: int, last: int) -> None:
            marked.append((tp, start, last))

    class App:
        consumer = Consumer()

    class Repair:
        async def fetch(self, partition: int, start: int, end: int) -> list[Record]:
            return [Record(partition, o, b"k", b"v", (), topic) for o in range(start, end)]

    class Processor:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def check_offsets(self, records: list[Record]) -> OffsetCheck:
            return _offsets_without_gaps(records)

        def process_batch(self, records: list[Record], offsets: OffsetCheck) -> Any:
            self.seen = [r.offset for r in records]
            assert offsets == _offsets_without_gaps(records)  # the check of the merged batch
            return "out"

    runtime = WorkerRuntime(App(), Settings(), topic, Processor(), None, {}, {})  # type: ignore[arg-type]
    runtime._maybe_rebuild = lambda: None  # type: ignore[method-assign]
    runtime._first_unchecked = {1}

    async def apply(out: Any) -> None:
        return None

    runtime._apply = apply  # type: ignore[method-assign]
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

    batch = [Ev(Msg(1, o, b"k", b"v", [], topic)) for o in (13, 14)]
    asyncio.run(runtime.handle_batch(batch))
    assert runtime.processor.seen == [10, 11, 12, 13, 14]  # type: ignore[attr-defined]
    assert marked == [(TP(topic, 1), 10, 12)]
    assert runtime.processed_offsets == {1: 15}
    # Only the first record after an assignment is checked against the commit.
    asyncio.run(runtime.handle_batch([Ev(Msg(1, 20, b"k", b"v", [], topic))]))
    assert marked == [(TP(topic, 1), 10, 12)]


def test_a_poll_is_processed_as_one_batch_and_acked_after_its_output_unless_the_generation_changed() -> None:
    """``handle_poll`` processes a poll's records in one batch and acks them after the I/O; a poll of
    an older consumer generation is dropped unprocessed and unacked."""
    from aiokafka.structs import ConsumerRecord
    from faust.types import TP

    from streams.runtime.settings import Settings
    from streams.worker.agents import WorkerRuntime

    topic = "events"
    steps: list[str] = []

    class Consumer:
        flow_active = True

        def __init__(self) -> None:
            # defaultdicts, as in Faust's consumer
            self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
            self._acked_index: dict[TP, set[int]] = defaultdict(set)
            self._acked: dict[TP, list[int]] = defaultdict(list)
            self._n_acked = 0

    class Flow:
        def is_active(self) -> bool:
            return True

    class Monitor:
        def __init__(self) -> None:
            self.messages_received_total = 0
            self.messages_received_by_topic: dict[str, int] = defaultdict(int)
            self.tp_read_offsets: dict[TP, int] = {}

    class App:
        consumer_generation_id = 7

        def __init__(self) -> None:
            self.consumer = Consumer()
            self.flow_control = Flow()
            self.monitor = Monitor()

    class Processor:
        def check_offsets(self, records: list[Any]) -> OffsetCheck:
            return _offsets_without_gaps(records)

        def process_batch(self, records: list[Any], offsets: OffsetCheck) -> Any:
            steps.append(f"process {[r.offset for r in records]}")
            return "out"

    app = App()
    runtime = WorkerRuntime(app, Settings(), topic, Processor(), None, {}, {})  # type: ignore[arg-type]
    runtime._maybe_rebuild = lambda: None  # type: ignore[method-assign]

    async def apply(out: Any) -> None:
        steps.append(f"apply, acked so far {sorted(app.consumer._acked[TP(topic, 0)])}")

    runtime._apply = apply  # type: ignore[method-assign]
    tp = TP(topic, 0)
    poll = {tp: [ConsumerRecord(topic, 0, o, 0, 0, b"k", b"v", None, 1, 1, []) for o in (3, 4, 5)]}
    asyncio.run(runtime.handle_poll(poll, generation_id=7))
    assert steps == ["process [3, 4, 5]", "apply, acked so far []"]
    assert app.consumer._acked[tp] == [3, 4, 5]
    assert runtime.processed_offsets == {0: 6}
    assert app.monitor.messages_received_total == 3  # Faust's sensor counts the batch

    stale = {tp: [ConsumerRecord(topic, 0, 6, 0, 0, b"k", b"v", None, 1, 1, [])]}
    asyncio.run(runtime.handle_poll(stale, generation_id=6))
    assert len(steps) == 2  # not processed
    assert app.consumer._acked[tp] == [3, 4, 5]  # not acked


def test_a_partition_is_caught_up_only_when_everything_up_to_its_end_offset_is_handled() -> None:
    """Live clocks follow the wall clock only on caught-up partitions: handled (or, before anything
    is handled, committed) up to the end offset of the last fetch; an unknown end or a partition
    aiokafka no longer holds is not caught up, and an empty partition is."""
    from faust.types import TP

    from streams.runtime.settings import Settings
    from streams.worker.agents import WorkerRuntime

    topic = "events"
    ends: dict[int, int | None] = {0: 100, 1: 100, 2: None, 3: 0, 4: 50, 5: 7}

    class Consumer:
        def __init__(self) -> None:
            self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None, {TP(topic, 4): 50})

        def highwater(self, tp: TP) -> int | None:
            if tp.partition not in ends:
                raise AssertionError("Partition is not assigned")  # aiokafka's check
            return ends[tp.partition]

    class App:
        consumer = Consumer()

    runtime = WorkerRuntime(App(), Settings(), topic, None, None, {}, {})  # type: ignore[arg-type]
    runtime.processed_offsets = {0: 100, 1: 60, 2: 10}
    # 0 handled to its end; 1 has 40 waiting; 2 end unknown; 3 empty; 4 committed to its end
    # (nothing handled since the assignment); 5 nothing handled nor committed; 9 not assigned.
    assert runtime.caught_up([0, 1, 2, 3, 4, 5, 9]) == {0, 3, 4}
