"""Readiness and consumer-lag arithmetic shared by the rules worker and the notifier.

Pure functions over plain values, so that ``streams/worker/web.py`` and ``alerts/web.py`` (which may not
import each other) read Faust's state the same way and decide the same way. No Faust import here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar


class TopicPartitionLike(Protocol):
    """Faust's ``TP`` named tuple, as far as lag arithmetic needs it."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


TP = TypeVar("TP", bound=TopicPartitionLike)


@dataclass(frozen=True, slots=True)
class ConsumerState:
    """A snapshot of what a Faust app knows about its place in the consumer group."""

    started: bool  # the worker's consumer is running
    rebalances: int  # rebalances begun since start (0: never joined the group yet)
    rebalancing: bool  # a rebalance is in progress
    in_recovery: bool  # tables are being restored from their changelogs
    recovery_completed: bool  # table recovery finished at least once after an assignment
    assigned_partitions: int  # partitions of source topics assigned to this worker
    stalled: tuple[str, ...] = ()  # "topic/partition" of assigned partitions with lag and no progress
    broker_unreachable: str | None = None  # why no broker answered, once that has lasted too long
    stuck: tuple[str, ...] = ()  # writes the broker has not taken for too long (why, one per kind)
    missing: tuple[str, ...] = ()  # topics deleted under the process (why, one per topic)


@dataclass(frozen=True, slots=True)
class Readiness:
    """The answer of ``/readyz``: ready or not, and why not."""

    ready: bool
    reason: str


def readiness(state: ConsumerState) -> Readiness:
    """Decide readiness: broker reachable, assignment received, no rebalance running, tables recovered.

    A worker that received an empty assignment (more workers than partitions) is ready: it is a
    healthy member of the group, and a readiness probe that never passed would block rollouts.
    """
    if state.broker_unreachable is not None:  # the cause of whatever else looks wrong: said first
        return Readiness(False, f"broker unreachable: {state.broker_unreachable}")
    if state.missing:  # the cause of a rebalance or a stall that never ends: said before them
        return Readiness(False, "; ".join(state.missing))
    if not state.started:
        return Readiness(False, "consumer not started")
    if state.rebalances == 0:
        return Readiness(False, "waiting for the consumer group to assign partitions")
    # Faust keeps ``rebalancing`` set until recovery ends, so recovery is checked first: it is
    # the more precise reason, and the one the "recovery stuck" alert is about.
    if state.in_recovery:
        return Readiness(False, "table recovery in progress")
    if state.rebalancing:
        return Readiness(False, "rebalance in progress")
    if not state.recovery_completed:
        return Readiness(False, "table recovery in progress")
    if state.stalled:
        return Readiness(False, f"partition stalled (lag, no progress): {', '.join(state.stalled)}")
    if state.stuck:
        return Readiness(False, "; ".join(state.stuck))
    return Readiness(True, f"{state.assigned_partitions} partitions assigned, tables recovered")


def lag_by_topic(
    assigned: Iterable[TP],
    end_offsets: Mapping[TP, int],
    committed: Mapping[TP, int | None],
    earliest: Mapping[TP, int],
    recordless: Callable[[TP, int, int], int] | None = None,
) -> dict[str, int]:
    """Records between the committed offset and the end of each partition, summed per topic.

    A partition with no committed offset yet counts from its earliest offset (a new consumer
    group reading from the beginning is behind by the whole partition). ``recordless(tp, start,
    end)``: how many offsets of ``[start, end)`` are known to hold no record (a transactional
    producer's commit markers), left out. Never negative.
    """
    lag: dict[str, int] = {}
    for tp in assigned:
        end = end_offsets.get(tp)
        if end is None:
            continue
        start = committed.get(tp)
        if start is None:
            start = earliest.get(tp, 0)
        behind = max(0, end - start)
        if behind and recordless is not None:
            behind = max(0, behind - recordless(tp, start, end))
        lag[tp.topic] = lag.get(tp.topic, 0) + behind
    return lag


@dataclass(frozen=True, slots=True)
class PartitionSample:
    """One look at an assigned source partition: its end, what was committed and what processed."""

    topic: str
    partition: int
    end: int  # high watermark (next offset to be written)
    committed: int | None  # next offset to read, as committed by the consumer group (None: never)
    processed: int | None  # next offset after the last record the worker processed (None: none yet)
    start: int = 0  # earliest offset, counted from when nothing was committed yet

    @property
    def lag(self) -> int:
        """Records between the committed offset (or the start) and the end; never negative."""
        return max(0, self.end - (self.committed if self.committed is not None else self.start))


@dataclass(frozen=True, slots=True)
class PartitionStall:
    """An assigned partition that has had lag and made no progress for ``stalled_for_s``."""

    topic: str
    partition: int
    lag: int
    committed: int | None
    processed: int | None
    stalled_for_s: float

    @property
    def name(self) -> str:
        """``topic/partition``."""
        return f"{self.topic}/{self.partition}"


class StallTracker:
    """Decides which assigned partitions are stalled: lag > 0 and neither the committed nor the
    processed offset moved for ``stall_after_s``. Pure: the caller passes samples and the time.

    Progress is any change of ``(committed, processed)``; a partition without lag is never stalled.
    ``reset`` forgets everything (after a rebalance the clock starts again).
    """

    def __init__(self, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        self._since: dict[tuple[str, int], tuple[tuple[int | None, int | None], float]] = {}

    def observe(self, samples: Iterable[PartitionSample], now: float) -> list[PartitionStall]:
        """Record ``samples`` taken at ``now``; return the partitions stalled at this moment."""
        stalled: list[PartitionStall] = []
        seen: set[tuple[str, int]] = set()
        for s in samples:
            key = (s.topic, s.partition)
            seen.add(key)
            marker = (s.committed, s.processed)
            previous = self._since.get(key)
            if s.lag == 0 or previous is None or previous[0] != marker:
                self._since[key] = (marker, now)
                continue
            idle = now - previous[1]
            if idle >= self.stall_after_s:
                stalled.append(PartitionStall(s.topic, s.partition, s.lag, s.committed, s.processed, idle))
        for key in set(self._since) - seen:  # no longer assigned
            del self._since[key]
        return stalled

    def reset(self) -> None:
        """Forget every partition (a rebalance started: progress is measured afresh afterwards)."""
        self._since.clear()


LOOP_LAG_TOLERANCE_SECONDS = 1.0
"""How long the event loop may be blocked during a broker-watch attempt for its failure to count
as the broker's (:meth:`BrokerWatch.observe`)."""


class BrokerWatch:
    """Whether the brokers answer, from the outcome of periodic connection attempts. Pure: the
    caller passes each attempt's outcome and the time.

    :meth:`unreachable` is None until no attempt has succeeded for ``unreachable_after_s`` (a
    broker restart or a leader election of a few seconds does not flap readiness), then the
    reason of the last failure and for how long.
    """

    def __init__(self, unreachable_after_s: float, now: float) -> None:
        self.unreachable_after_s = unreachable_after_s
        self.last_ok = now  # the process checked the broker before it started
        self.last_error: str | None = None
        self.last_failure: float | None = None
        """When an attempt that went unanswered last gave up (None: never), however short the outage."""

    def observe(self, error: str | None, now: float, *, loop_lag: float = 0.0) -> None:
        """Record one attempt that ended at ``now``: ``error`` is None when a broker answered.

        A failure is remembered in ``last_failure`` at ``now``, when it gave up: a hung broker fails
        no consumer request for a long while, so the watch's failure is the only sign of it inside
        the fetch gap that ends with the broker's return (stamped at its start, the attempt under way
        when the broker hung fell before the gap, and a short hang went unnoticed).
        ``loop_lag``: how long the process's event loop was blocked when the attempt ended. Over
        :data:`LOOP_LAG_TOLERANCE_SECONDS`, the failure is not remembered: the broker may have
        answered while a long batch held the loop across the attempt's deadline (the worker's
        clocks held their watermark after every such batch). Readiness still counts it, as before.
        """
        if error is None:
            self.last_ok = now
        elif loop_lag <= LOOP_LAG_TOLERANCE_SECONDS:
            self.last_failure = now
        self.last_error = error

    def down_for(self, now: float) -> float | None:
        """Seconds since a broker last answered, once over the limit and still failing; else None."""
        if self.last_error is None:
            return None
        down = now - self.last_ok
        return down if down >= self.unreachable_after_s else None

    def unreachable(self, now: float) -> str | None:
        """``/readyz``'s reason while the brokers are unreachable (None otherwise)."""
        down = self.down_for(now)
        if down is None:
            return None
        return f"no broker answered for {down:.0f} s ({self.last_error})"
