"""Tests for streams/runtime/health.py: the readiness decision and the consumer-lag arithmetic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from streams.runtime.health import (
    BrokerWatch,
    ConsumerState,
    PartitionSample,
    StallTracker,
    lag_by_topic,
    readiness,
)


class TP(NamedTuple):
    topic: str
    partition: int


@pytest.fixture
def make_state() -> Callable[..., ConsumerState]:
    """Factory: a ready worker's state, with overrides."""

    def factory(**overrides: Any) -> ConsumerState:
        base: dict[str, Any] = {
            "started": True,
            "rebalances": 1,
            "rebalancing": False,
            "in_recovery": False,
            "recovery_completed": True,
            "assigned_partitions": 4,
        }
        base.update(overrides)
        return ConsumerState(**base)

    return factory


def test_assigned_and_recovered_worker_is_ready(make_state: Callable[..., ConsumerState]) -> None:
    """A worker with its assignment and recovered tables is ready and says how many partitions it holds."""
    verdict = readiness(make_state(assigned_partitions=3))
    assert verdict.ready
    assert "3 partitions" in verdict.reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"started": False}, "consumer not started"),
        ({"rebalances": 0, "recovery_completed": False}, "assign partitions"),
        ({"rebalancing": True}, "rebalance in progress"),
        ({"rebalancing": True, "in_recovery": True}, "table recovery"),
        ({"recovery_completed": False}, "table recovery"),
    ],
)
def test_not_ready_states_name_their_reason(
    make_state: Callable[..., ConsumerState], overrides: dict[str, Any], reason: str
) -> None:
    """Each not-ready state gives a reason naming what is being waited for."""
    verdict = readiness(make_state(**overrides))
    assert not verdict.ready
    assert reason in verdict.reason


def test_empty_assignment_after_rebalance_is_ready(make_state: Callable[..., ConsumerState]) -> None:
    """A worker that got no partitions (more workers than partitions) is a healthy, ready member."""
    assert readiness(make_state(assigned_partitions=0)).ready


def test_a_missing_topic_is_the_reason_before_a_rebalance_or_a_stall(make_state: Callable[..., ConsumerState]) -> None:
    """A topic deleted under the process is named even while the rebalance or the stall it causes lasts
    (before, /readyz said only 'rebalance in progress' or 'partition stalled')."""
    gone = ("topic t.alerts does not exist (deleted?): …",)
    for overrides in ({}, {"rebalancing": True}, {"in_recovery": True}, {"stalled": ("t.events/0",)}):
        verdict = readiness(make_state(missing=gone, **overrides))
        assert not verdict.ready
        assert verdict.reason == gone[0]
    assert readiness(make_state(missing=gone, broker_unreachable="no broker answered")).reason.startswith("broker")


def test_lag_sums_end_minus_committed_per_topic() -> None:
    """Lag is the end offset minus the committed offset, summed over a topic's partitions."""
    a0, a1, b0 = TP("events", 0), TP("events", 1), TP("feedback", 0)
    lag = lag_by_topic([a0, a1, b0], {a0: 10, a1: 7, b0: 3}, {a0: 4, a1: 7, b0: 1}, {})
    assert lag == {"events": 6, "feedback": 2}


def test_lag_of_a_never_committed_partition_counts_from_earliest() -> None:
    """A partition without a committed offset is behind by everything from its earliest offset."""
    tp = TP("events", 0)
    assert lag_by_topic([tp], {tp: 50}, {tp: None}, {tp: 20}) == {"events": 30}


def test_lag_leaves_out_offsets_known_to_hold_no_record() -> None:
    """Offsets said to hold no record (transaction markers) are not lag; the records around them still are."""
    a0, a1 = TP("alerts", 0), TP("alerts", 1)
    markers = {a0: range(5, 7), a1: range(2, 3)}  # a0: two markers at the tail; a1: one between two records

    def recordless(tp: TP, start: int, end: int) -> int:
        return len(range(max(start, markers[tp].start), min(end, markers[tp].stop)))

    assert lag_by_topic([a0, a1], {a0: 7, a1: 4}, {a0: 5, a1: 1}, {}, recordless) == {"alerts": 2}
    assert lag_by_topic([a0], {a0: 7}, {a0: 3}, {}, recordless) == {"alerts": 2}


def test_lag_is_never_negative_and_skips_unknown_ends() -> None:
    """A committed offset past a stale end offset gives 0; a partition with no end offset is skipped."""
    a0, a1 = TP("events", 0), TP("events", 1)
    assert lag_by_topic([a0, a1], {a0: 5}, {a0: 9, a1: 0}, {}) == {"events": 0}


def test_a_process_with_stuck_writes_is_not_ready_and_says_why(make_state: Callable[..., ConsumerState]) -> None:
    """A recovered notifier whose dead letter the broker has not taken for too long answers not ready, with why."""
    verdict = readiness(make_state(stuck=("dead letter not written for 130 s (1 pending)",)))
    assert not verdict.ready
    assert verdict.reason == "dead letter not written for 130 s (1 pending)"


def test_a_worker_with_a_stalled_partition_is_not_ready(make_state: Callable[..., ConsumerState]) -> None:
    """A recovered worker reporting a stalled partition answers not ready and names the partition."""
    verdict = readiness(make_state(stalled=("preempt.events/2",)))
    assert not verdict.ready
    assert verdict.reason == "partition stalled (lag, no progress): preempt.events/2"


def _sample(committed: int | None, processed: int | None, end: int = 100, partition: int = 0) -> PartitionSample:
    return PartitionSample("events", partition, end=end, committed=committed, processed=processed)


def test_lag_without_progress_for_the_stall_time_is_a_stall() -> None:
    """A partition with lag whose offsets do not move is stalled once ``stall_after_s`` has passed."""
    tracker = StallTracker(stall_after_s=60)
    assert tracker.observe([_sample(10, 12)], now=0) == []
    assert tracker.observe([_sample(10, 12)], now=59) == []
    [stall] = tracker.observe([_sample(10, 12)], now=61)
    assert (stall.name, stall.lag, stall.committed, stall.processed) == ("events/0", 90, 10, 12)
    assert stall.stalled_for_s == 61


def test_progress_of_either_offset_restarts_the_stall_clock() -> None:
    """A moving committed or processed offset is progress; the stall clock starts again from it."""
    tracker = StallTracker(stall_after_s=60)
    tracker.observe([_sample(10, 12)], now=0)
    assert tracker.observe([_sample(10, 13)], now=50) == []  # processed moved
    assert tracker.observe([_sample(11, 13)], now=100) == []  # committed moved
    assert tracker.observe([_sample(11, 13)], now=159) == []
    assert [s.partition for s in tracker.observe([_sample(11, 13)], now=161)] == [0]


def test_a_partition_without_lag_is_never_stalled() -> None:
    """An idle partition committed to its end is healthy however long nothing happens."""
    tracker = StallTracker(stall_after_s=1)
    for now in range(10):
        assert tracker.observe([_sample(100, 100, end=100)], now=now) == []


def test_a_partition_never_committed_counts_lag_from_its_start() -> None:
    """With nothing committed, the lag runs from the earliest offset and an untouched partition stalls."""
    tracker = StallTracker(stall_after_s=5)
    untouched = PartitionSample("events", 3, end=40, committed=None, processed=None, start=10)
    assert untouched.lag == 30
    tracker.observe([untouched], now=0)
    assert [s.lag for s in tracker.observe([untouched], now=5)] == [30]


def test_reset_and_revocation_forget_the_stall_clock() -> None:
    """After ``reset`` (a rebalance) or once a partition is no longer sampled, its clock starts afresh."""
    tracker = StallTracker(stall_after_s=10)
    tracker.observe([_sample(1, 1), _sample(1, 1, partition=1)], now=0)
    tracker.reset()
    assert tracker.observe([_sample(1, 1)], now=10) == []
    tracker.observe([], now=11)  # partition 0 revoked
    assert tracker.observe([_sample(1, 1)], now=20) == []
    assert len(tracker.observe([_sample(1, 1)], now=30)) == 1


def test_an_unreachable_broker_makes_the_worker_not_ready_and_says_why_first(
    make_state: Callable[..., ConsumerState],
) -> None:
    """With no broker answering, /readyz is 503 with that reason, before any other it would give."""
    verdict = readiness(make_state(broker_unreachable="no broker answered for 20 s (x)", stalled=("t/1",)))
    assert not verdict.ready
    assert verdict.reason == "broker unreachable: no broker answered for 20 s (x)"
    assert readiness(make_state(broker_unreachable="y", started=False)).reason == "broker unreachable: y"


def test_the_broker_counts_as_unreachable_only_after_the_limit_of_failures() -> None:
    """A failure shorter than the limit changes nothing; past it the watch gives the last error and the
    time since a broker answered; one answer clears it."""
    watch = BrokerWatch(15.0, now=100.0)
    assert watch.unreachable(100.0) is None
    watch.observe("127.0.0.1:9: refused", now=105.0)
    assert watch.unreachable(114.0) is None
    watch.observe("127.0.0.1:9: refused", now=116.0)
    assert watch.down_for(116.0) == 16.0
    assert watch.unreachable(116.0) == "no broker answered for 16 s (127.0.0.1:9: refused)"
    watch.observe(None, now=120.0)
    assert watch.unreachable(200.0) is None
    watch.observe("timeout", now=130.0)  # counted from the last answer, not from the first failure
    assert watch.unreachable(134.0) is None
    assert watch.down_for(135.0) == 15.0


def test_broker_unreachable_is_true_only_once_the_broker_watch_declares_it() -> None:
    """``ops_web.broker_unreachable`` (what the stall watchdog asks before restarting its clock) is
    False without a broker watch and while failures are shorter than the limit, True after."""
    import time

    import faust

    from streams.runtime import ops_web
    from streams.runtime.settings import Settings

    app = faust.App("broker-unreachable-check", broker="kafka://127.0.0.1:1", web_enabled=False)
    assert ops_web.broker_unreachable(app) is False  # no watch registered
    ops_web.register_broker_watch(app, Settings(broker_unreachable_seconds=15.0))
    watch = ops_web._BROKER_WATCH[app]
    now = time.monotonic()
    watch.observe("refused", now)  # one failure right after a success: not declared
    assert ops_web.broker_unreachable(app) is False
    watch.last_ok = now - 20.0  # nothing answered for 20 s, over the 15 s limit
    assert ops_web.broker_unreachable(app) is True
    watch.observe(None, time.monotonic())  # a broker answers again
    assert ops_web.broker_unreachable(app) is False


def test_the_broker_watch_remembers_its_last_failed_attempt_in_wall_clock_time() -> None:
    """Any failed attempt, however short the outage, is remembered (the worker's clocks ask whether
    the broker went unanswered between two fetch answers); ``ops_web.broker_last_unanswered`` gives
    its time on the wall clock, None before any failure or without a watch."""
    import time

    import faust

    from streams.runtime import ops_web
    from streams.runtime.settings import Settings

    watch = BrokerWatch(15.0, now=100.0)
    watch.observe("refused", now=105.0)
    watch.observe(None, now=110.0)
    assert watch.last_failure == 105.0
    app = faust.App("broker-last-unanswered", broker="kafka://127.0.0.1:1", web_enabled=False)
    assert ops_web.broker_last_unanswered(app) is None  # no watch registered
    ops_web.register_broker_watch(app, Settings())
    assert ops_web.broker_last_unanswered(app) is None  # no failure yet
    ops_web._BROKER_WATCH[app].observe("timeout", time.monotonic() - 3.0)
    failed = ops_web.broker_last_unanswered(app)
    assert failed is not None
    assert abs(failed - (time.time() - 3.0)) < 0.5


def _long_batch(seconds: float) -> None:
    """A batch that holds the event loop (CPU-bound work, as the worker's evaluation)."""
    import time

    time.sleep(seconds)


def test_a_probe_that_timed_out_while_a_batch_held_the_event_loop_is_not_a_broker_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker watch runs on the worker's own event loop: a 1.5 s batch holding it makes an
    attempt time out though the broker answered. That attempt still counts for readiness, but not
    as a request the broker left unanswered (the clocks held their watermark after every long
    batch); an attempt that timed out on a free loop does count, stamped when it started."""
    import asyncio
    import time

    import faust

    from streams.runtime import ops_web
    from streams.runtime.settings import Settings

    async def blocked_probe(settings: Settings, timeout_s: float) -> str:
        await asyncio.sleep(0.01)
        _long_batch(1.5)  # on the same loop
        return "127.0.0.1:9092: timed out"

    async def hung_broker(settings: Settings, timeout_s: float) -> str:
        await asyncio.sleep(1.5)
        return "127.0.0.1:9092: timed out"

    app = faust.App("broker-watch-loop-lag", broker="kafka://127.0.0.1:1", web_enabled=False)
    timers: list[Any] = []
    monkeypatch.setattr(app, "timer", lambda **kwargs: lambda fun: timers.append(fun) or fun)
    ops_web.register_broker_watch(app, Settings())
    (watch_broker,) = timers
    watch = ops_web._BROKER_WATCH[app]

    monkeypatch.setattr(ops_web, "unreachable_reason", blocked_probe)
    asyncio.run(watch_broker())
    assert watch.last_error is not None
    assert ops_web.broker_last_unanswered(app) is None

    monkeypatch.setattr(ops_web, "unreachable_reason", hung_broker)
    asyncio.run(watch_broker())
    ended = time.time()
    failed = ops_web.broker_last_unanswered(app)
    assert failed is not None
    # When the attempt gave up: the attempt under way when a broker hangs started before the fetch gap,
    # and stamped at its start a short hang was never seen inside it.
    assert abs(failed - ended) < 0.5

    async def blocked_in_the_middle(settings: Settings, timeout_s: float) -> str:
        await asyncio.sleep(0.01)
        _long_batch(1.5)  # a batch in the middle of the attempt, which then still waits for its deadline
        await asyncio.sleep(1.0)
        return "127.0.0.1:9092: timed out"

    monkeypatch.setattr(ops_web, "unreachable_reason", blocked_in_the_middle)
    before = ops_web.broker_last_unanswered(app)
    asyncio.run(watch_broker())
    assert ops_web.broker_last_unanswered(app) != before  # the broker's failure, not the batch's


def test_with_loop_lag_measures_how_long_the_loop_was_blocked() -> None:
    import asyncio

    from streams.runtime.ops_web import with_loop_lag

    async def blocks() -> int:
        await asyncio.sleep(0.01)
        _long_batch(0.8)
        return 1

    async def blocks_then_waits() -> int:
        await asyncio.sleep(0.01)
        _long_batch(0.8)
        await asyncio.sleep(0.6)  # the loop is free again when the attempt ends
        return 3

    async def waits() -> int:
        await asyncio.sleep(0.8)
        return 2

    assert asyncio.run(with_loop_lag(blocks()))[1] > 0.5
    result, lag = asyncio.run(with_loop_lag(waits()))
    assert result == 2
    assert lag < 0.2
    assert asyncio.run(with_loop_lag(blocks_then_waits()))[1] < 0.2
