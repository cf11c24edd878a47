"""The liveness watchdog: a stalled partition is logged at ERROR, counted, exported and cleared."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from streams.runtime.faust_compat import stand_in_consumer_state
from streams.worker.liveness import PartitionWatchdog


class TP(NamedTuple):
    topic: str
    partition: int


class StubConsumer:
    """The slice of Faust's consumer the watchdog reads, with settable offsets."""

    def __init__(self, tps: list[TP], ends: dict[TP, int], committed: dict[TP, int]) -> None:
        self.tps = tps
        self.ends = ends
        self.active = set(tps)  # what Faust fetches (faust_compat.partition_flow_state)
        stand_in_consumer_state(self, committed=committed, active=self.active)
        self.resumed: set[TP] = set()

    def assignment(self) -> set[TP]:
        return set(self.tps)

    def resume_partitions(self, tps: set[TP]) -> None:
        self.resumed = tps
        self.active |= tps  # in place: the set faust_compat reads

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)


class StubFlowControl:
    def is_active(self) -> bool:
        return True


class StubApp:
    def __init__(self, consumer: StubConsumer) -> None:
        self.consumer = consumer
        self.rebalancing = False
        self.in_recovery = False
        self.flow_control = StubFlowControl()
        self.consumer_generation_id = 3


def _gauge(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("preempt_partition_stalled", {"topic": topic, "partition": str(partition)})


def _stalls(topic: str) -> float:
    return REGISTRY.get_sample_value("preempt_partition_stalls_total", {"topic": topic}) or 0.0


class NeverAnswers:
    """``highwaters`` of partitions whose leaders are gone, with no controller to move them: no answer until
    ``release()`` (aiokafka's request timeout); ``calls`` counts the requests made."""

    def __init__(self) -> None:
        self.calls = 0
        self._gate: asyncio.Event | None = None

    async def __call__(self, *tps: TP) -> dict[TP, int]:
        self.calls += 1
        if self._gate is None:
            self._gate = asyncio.Event()
        await self._gate.wait()
        return {}

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()


def unreadable_rounds(
    dog: Any, now: list[float], times: list[float], before: dict[float, Callable[[], None]] | None = None
) -> list[tuple[str, ...]]:
    """One bounded ``check`` of a watchdog per time (``before[t]()`` first, if given), in one event loop, and
    what ``unreadable()`` said after each."""

    async def run() -> list[tuple[str, ...]]:
        seen = []
        for t in times:
            if before and t in before:
                before[t]()
                await asyncio.sleep(0.01)  # a released request finishes
            now[0] = t
            await asyncio.wait_for(dog.check(), timeout=5)
            seen.append(dog.unreadable())
        return seen

    return asyncio.run(run())


def test_a_partition_with_lag_and_no_progress_is_reported_until_it_moves() -> None:
    """After the stall time: one ERROR line, the gauge at 1, the counter +1, /readyz names it; progress clears it."""
    topic = "wd-events"
    tp0, tp1 = TP(topic, 0), TP(topic, 1)
    committed = {tp0: 50, tp1: 20}
    consumer = StubConsumer([tp0, tp1], ends={tp0: 50, tp1: 80}, committed=committed)
    now = [0.0]
    processed = {0: 50, 1: 20}
    dog = PartitionWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=30,
        processed=lambda: processed,
        ready=lambda: True,
        clock=lambda: now[0],
    )
    before = _stalls(topic)

    async def rounds(times: list[float]) -> list[dict[str, Any]]:
        with capture_logs() as logs:
            for t in times:
                now[0] = t
                await dog.check()
        return logs

    logs = asyncio.run(rounds([0, 15, 31, 45]))
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["partition"] == 1
    assert errors[0]["lag"] == 60
    assert errors[0]["committed"] == 20
    assert "faust_active" in errors[0]  # Faust's view of the fetch path is in the line
    assert dog.stalled() == (f"{topic}/1",)
    assert _gauge(topic, 1) == 1
    assert _stalls(topic) == before + 1
    assert consumer.resumed == set()  # Faust was fetching it: nothing to resume

    committed[tp1] = 40  # progress (the stand-in keeps this mapping as Faust's committed offsets)
    logs = asyncio.run(rounds([50]))
    assert dog.stalled() == ()
    assert _gauge(topic, 1) == 0
    assert any(entry["event"] == "partition progressing again" for entry in logs)
    assert _stalls(topic) == before + 1


def test_no_stall_is_measured_while_rebalancing() -> None:
    """During a rebalance the watchdog samples nothing, and the stall clock restarts afterwards."""
    topic = "wd-rebalance"
    tp = TP(topic, 0)
    consumer = StubConsumer([tp], ends={tp: 10}, committed={tp: 0})
    app = StubApp(consumer)
    now = [0.0]
    dog = PartitionWatchdog(
        app,  # type: ignore[arg-type]
        topic,
        stall_after_s=10,
        processed=dict,
        ready=lambda: True,
        clock=lambda: now[0],
    )

    async def at(t: float) -> None:
        now[0] = t
        await dog.check()

    asyncio.run(at(0))
    app.rebalancing = True
    asyncio.run(at(20))
    app.rebalancing = False
    asyncio.run(at(25))
    assert dog.stalled() == ()
    asyncio.run(at(36))
    assert dog.stalled() == (f"{topic}/0",)


def test_a_stalled_partition_faust_stopped_fetching_is_resumed() -> None:
    """A stalled partition missing from Faust's active set outside a rebalance is resumed once."""
    topic = "wd-paused"
    tp = TP(topic, 0)
    consumer = StubConsumer([tp], ends={tp: 10}, committed={tp: 0})
    consumer.active.clear()  # paused and never resumed
    now = [0.0]
    dog = PartitionWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=10,
        processed=dict,
        ready=lambda: True,
        clock=lambda: now[0],
    )

    async def at(t: float) -> None:
        now[0] = t
        await dog.check()

    asyncio.run(at(0))
    asyncio.run(at(11))
    assert consumer.resumed == {tp}
    assert consumer.active == {tp}


def test_a_broker_outage_does_not_count_as_a_stall_once_the_broker_is_back() -> None:
    """While the broker watch declares the brokers unreachable and end offsets cannot be read, the
    stall clock restarts: the first samples after a long outage, with the lag that built up
    meanwhile, report no stall until the stall time has passed again without progress."""
    from aiokafka.errors import KafkaConnectionError

    topic = "wd-outage"
    tp0 = TP(topic, 0)
    consumer = StubConsumer([tp0], ends={tp0: 10}, committed={tp0: 10})
    now = [0.0]
    down = [False]
    dog = PartitionWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=30,
        processed=lambda: {0: 10},
        ready=lambda: True,
        clock=lambda: now[0],
        broker_down=lambda: down[0],
    )
    real_highwaters = consumer.highwaters

    async def broker_away(*tps: TP) -> dict[TP, int]:
        raise KafkaConnectionError("broker away")

    async def rounds(times: list[float]) -> None:
        for t in times:
            now[0] = t
            await dog.check()

    consumer.ends[tp0] = 25  # lag, and nothing can progress
    asyncio.run(rounds([0]))
    consumer.highwaters = broker_away  # type: ignore[method-assign]
    asyncio.run(rounds([10]))
    down[0] = True  # the broker watch declares the brokers unreachable
    asyncio.run(rounds([100, 200]))
    down[0] = False
    consumer.highwaters = real_highwaters  # type: ignore[method-assign]
    asyncio.run(rounds([205, 220]))
    assert dog.stalled() == ()
    asyncio.run(rounds([240]))  # 35 s of lag without progress since sampling resumed: a stall
    assert dog.stalled() == (f"{topic}/0",)


def test_a_sample_that_fails_while_the_broker_answers_does_not_hide_a_stall() -> None:
    """A broker that times out one sampling request in eight (not declared unreachable by the broker
    watch) does not restart the stall clock: the failed samples are skipped and the stall is reported."""
    topic = "wd-flaky"
    tp0 = TP(topic, 0)
    consumer = StubConsumer([tp0], ends={tp0: 25}, committed={tp0: 10})
    now = [0.0]
    dog = PartitionWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=30,
        processed=lambda: {0: 10},
        ready=lambda: True,
        clock=lambda: now[0],
        broker_down=lambda: False,
    )
    real_highwaters = consumer.highwaters
    calls = [0]

    async def flaky(*tps: TP) -> dict[TP, int]:
        calls[0] += 1
        if calls[0] % 8 == 0:
            raise TimeoutError
        return await real_highwaters(*tps)

    consumer.highwaters = flaky  # type: ignore[method-assign]

    async def rounds(times: list[float]) -> None:
        for t in times:
            now[0] = t
            await dog.check()

    asyncio.run(rounds([5.0 * i for i in range(9)]))  # 0 … 40 s; the 8th sample (35 s) times out
    assert calls[0] == 9
    assert dog.stalled() == (f"{topic}/0",)


def test_lag_of_offsets_without_records_is_settled_not_reported_as_a_stall() -> None:
    """Lag that does not move is offered to ``settle`` (the runtime reads the range); when it holds no
    record (a transaction's last commit marker) the partition is not stalled, however long it lasts."""
    topic = "wd-markers"
    tp0 = TP(topic, 0)
    consumer = StubConsumer([tp0], ends={tp0: 4}, committed={tp0: 3})
    now = [0.0]
    asked: list[tuple[int, int]] = []

    async def settle(partition: int, end: int) -> bool:
        asked.append((partition, end))
        return True

    dog = PartitionWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=30,
        processed=lambda: {0: 3},
        ready=lambda: True,
        clock=lambda: now[0],
        settle=settle,
    )

    async def rounds(times: list[float]) -> None:
        for t in times:
            now[0] = t
            await dog.check()

    asyncio.run(rounds([0, 15, 31, 45, 60]))
    assert dog.stalled() == ()
    assert asked[0] == (0, 4)  # asked once the lag had not moved for one round
    assert len(asked) == 4


def test_lag_settle_refuses_is_still_a_stall() -> None:
    """When the range holds records (``settle`` says False) a partition without progress is stalled as before."""
    topic = "wd-real-stall"
    tp0 = TP(topic, 0)
    consumer = StubConsumer([tp0], ends={tp0: 9}, committed={tp0: 3})
    now = [0.0]

    async def settle(partition: int, end: int) -> bool:
        return False

    dog = PartitionWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=30,
        processed=lambda: {0: 3},
        ready=lambda: True,
        clock=lambda: now[0],
        settle=settle,
    )

    async def rounds(times: list[float]) -> None:
        for t in times:
            now[0] = t
            await dog.check()

    asyncio.run(rounds([0, 15, 31]))
    assert dog.stalled() == (f"{topic}/0",)


def test_samples_that_never_answer_while_a_broker_answers_make_the_worker_not_ready_after_the_stall_time() -> None:
    """Two of three brokers down with the controller quorum: the partitions keep leaders that are gone,
    the end offsets never come (aiokafka waited 86 s for each sample, the timer with it) and nothing
    progresses, while the third broker answers. Each sample is bounded by the interval; once they have
    failed for the stall time, /readyz names the topic (one ERROR line), until a sample works again."""
    topic = "wd-leaderless"
    tp0 = TP(topic, 0)
    consumer = StubConsumer([tp0], ends={tp0: 25}, committed={tp0: 25})
    now = [0.0]
    dog = PartitionWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=2,  # sampled every 1 s, so each hanging sample costs this test 1 s
        processed=lambda: {0: 25},
        ready=lambda: True,
        clock=lambda: now[0],
        broker_down=lambda: False,
    )
    real_highwaters = consumer.highwaters
    hanging = NeverAnswers()
    consumer.highwaters = hanging  # type: ignore[method-assign]

    def back() -> None:
        hanging.release()  # the request times out in aiokafka; the next sample is a new one
        consumer.highwaters = real_highwaters  # type: ignore[method-assign]

    with capture_logs() as logs:
        seen = unreadable_rounds(dog, now, [0.0, 1.0, 2.0, 3.0], before={3.0: back})
        assert seen[:2] == [(), ()]
        assert len(seen[2]) == 1
        assert seen[2][0].startswith(f"end offsets of {topic} not readable for 2 s")
        # One request at a time waits in the consumer's thread (it also fetches and commits): the rounds
        # after the first that hung start none (three hanging requests before).
        assert hanging.calls == 1
        assert seen[3] == ()
    events = [e["event"] for e in logs if e["log_level"] in {"error", "info"}]
    assert events == [
        "partition end offsets not readable; not ready until they are",
        "partition end offsets readable again",
    ]
