"""Per-partition event-time clocks: the watermark that decides when rules see events and deadlines.

A stream worker keeps one ``rules.clock.EventTimeClock`` per assigned partition of
``preempt.events`` (the rule-engine contract; the formula and the allowed lateness live there).
In live mode (``event_time_only`` false) the clocks are live: the wall clock − lateness also moves
a partition's clock whenever the worker has read everything the partition holds (:meth:`catch_up`,
called by the worker's clock timer for the partitions without lag), never while it reads a backlog
(after a restart or a rebalance, or when it falls behind), so waiting in Kafka does not make events
late; and an event stamped ahead of the wall clock + ``future_tolerance`` moves its partition's
clock only that far. Event-time-only mode (replays, parity with the backtest) keeps the plain
formula. One account's result therefore depends only on its own partition's events. This module
adds what the worker needs around them: the wall clock, and which partitions moved (to persist).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from rules.clock import DEFAULT_FUTURE_TOLERANCE, EventTimeClock

__all__ = ["DEFAULT_FUTURE_TOLERANCE", "PartitionClocks"]


class PartitionClocks:
    """One event-time clock per partition, and which of them moved since they were last persisted."""

    def __init__(
        self,
        allowed_lateness: float,
        event_time_only: bool,
        wall_clock: Callable[[], float] = time.time,
        future_tolerance: float = DEFAULT_FUTURE_TOLERANCE,
    ) -> None:
        self.event_time_only = event_time_only
        self._future_tolerance = future_tolerance
        self._template = EventTimeClock(allowed_lateness, None if event_time_only else future_tolerance)
        self._wall_clock = wall_clock
        self._clocks: dict[int, EventTimeClock] = {}
        self._dirty: set[int] = set()

    @property
    def future_tolerance(self) -> float:
        """Seconds a live clock may run ahead of the wall clock (the worker sets it from its settings)."""
        return self._future_tolerance

    @future_tolerance.setter
    def future_tolerance(self, seconds: float) -> None:
        self._future_tolerance = seconds
        if self.event_time_only:
            return  # event-time-only clocks are never bounded by the wall clock
        self._template.future_tolerance = seconds
        for clock in self._clocks.values():
            clock.future_tolerance = seconds

    def _clock(self, partition: int) -> EventTimeClock:
        clock = self._clocks.get(partition)
        if clock is None:
            template = self._template
            clock = self._clocks[partition] = EventTimeClock(template.allowed_lateness, template.future_tolerance)
        return clock

    def _now(self) -> float | None:
        return None if self.event_time_only else self._wall_clock()

    def observe(self, partition: int, event_time: float) -> None:
        """Record an accepted event's time; the clock only ever moves forward.

        In live mode a time beyond the wall clock + ``future_tolerance`` counts as that bound (and
        in ``preempt_future_events_total``): the partition's clock never runs ahead of real time.
        """
        if self._clock(partition).observe(event_time, self._now()):
            self._dirty.add(partition)

    def catch_up(self, partitions: Iterable[int] | Mapping[int, float]) -> None:
        """``partitions`` have nothing waiting to be read: in live mode the wall clock − lateness
        becomes the floor of their watermarks (deadlines fire on a quiet partition).

        A mapping gives, per partition, the wall-clock time it is known quiet as of (when the
        broker reported the end the worker has evaluated up to): the floor is that time −
        lateness, never later than now − lateness. Events written after that time may not have
        been read yet; judged against now, those waiting while a long batch held the worker would
        be late for it (they were dropped under load).
        """
        if self.event_time_only:
            return
        now = self._wall_clock()
        if isinstance(partitions, Mapping):
            for p, as_of in partitions.items():
                self._clock(p).catch_up(min(now, as_of))
            return
        for p in partitions:
            self._clock(p).catch_up(now)

    def restore(self, partition: int, max_event_time: float) -> None:
        """Seed a partition's clock from the persisted value after recovery (not marked dirty)."""
        self._clock(partition).restore(max_event_time)

    def max_event_time(self, partition: int) -> float | None:
        """The highest event time seen on ``partition``, if any."""
        clock = self._clocks.get(partition)
        return None if clock is None else clock.max_event_time

    def watermark(self, partition: int) -> float | None:
        """The partition's event-time clock, or None while it has seen nothing (event-time mode)."""
        clock = self._clocks.get(partition)
        if clock is None:
            clock = self._template  # a partition with no clock yet: what an empty clock says
        return clock.watermark(self._now())

    def watermark_or_start(self, partition: int, first_event_time: float) -> float:
        """The partition's watermark; while it has none, the one its first event will start it at
        (as the backtest's clock starts at the file's first event)."""
        wm = self.watermark(partition)
        return self._template.watermark_at(first_event_time) if wm is None else wm

    def wall_time_of(self, watermark: float) -> float | None:
        """The wall-clock time at which a caught-up live partition's watermark (wall clock −
        lateness) reaches ``watermark``; None for event-time-only clocks (the wall clock never moves them)."""
        return None if self.event_time_only else watermark + self._template.allowed_lateness

    def take_dirty(self) -> dict[int, float]:
        """Partitions whose max event time moved since the last call, with the new value (to persist)."""
        out: dict[int, float] = {}
        for p in self._dirty:
            seen = self._clocks[p].max_event_time
            if seen is not None:
                out[p] = seen
        self._dirty.clear()
        return out

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the clocks of partitions this worker no longer owns."""
        for p in partitions:
            self._clocks.pop(p, None)
            self._dirty.discard(p)
