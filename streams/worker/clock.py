"""Per-partition event-time clocks: the watermark that decides when rules see events and deadlines.

A stream worker keeps one clock per assigned partition of ``preempt.events`` (the rule-engine
contract): watermark = that partition's highest event time − ``allowed_lateness``. In live mode
(``event_time_only`` false) the wall clock − ``allowed_lateness`` also moves it, so deadlines fire on
an all-quiet stream, and the highest event time counts only up to the wall clock +
``future_tolerance``: an event stamped minutes ahead (inside the decoder's allowed future skew) is
accepted for its own account but cannot drag its partition's clock ahead and make every other
account's on-time events late. Event-time-only mode (replays, parity with the backtest) keeps the
plain formula. One account's result therefore depends only on its own partition's events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from streams.runtime.metrics import FUTURE_EVENTS

DEFAULT_FUTURE_TOLERANCE = 1.0
"""Seconds a live partition clock may run ahead of the wall clock (client clocks are rarely exact)."""


class PartitionClocks:
    """The highest event time seen per partition and the watermark derived from it."""

    def __init__(
        self,
        allowed_lateness: float,
        event_time_only: bool,
        wall_clock: Callable[[], float] = time.time,
        future_tolerance: float = DEFAULT_FUTURE_TOLERANCE,
    ) -> None:
        self.allowed_lateness = allowed_lateness
        self.event_time_only = event_time_only
        self.future_tolerance = future_tolerance
        self._wall_clock = wall_clock
        self._max_event_time: dict[int, float] = {}
        self._dirty: set[int] = set()

    def observe(self, partition: int, event_time: float) -> None:
        """Record an accepted event's time; the clock only ever moves forward.

        In live mode a time beyond the wall clock + ``future_tolerance`` counts as that bound (and
        in ``preempt_future_events_total``): the partition's clock never runs ahead of real time.
        """
        if event_time > self._max_event_time.get(partition, float("-inf")):
            if not self.event_time_only:
                ceiling = self._wall_clock() + self.future_tolerance
                if event_time > ceiling:
                    FUTURE_EVENTS.inc()
                    event_time = ceiling
                    if event_time <= self._max_event_time.get(partition, float("-inf")):
                        return
            self._max_event_time[partition] = event_time
            self._dirty.add(partition)

    def restore(self, partition: int, max_event_time: float) -> None:
        """Seed a partition's clock from the persisted value after recovery (not marked dirty)."""
        if max_event_time > self._max_event_time.get(partition, float("-inf")):
            self._max_event_time[partition] = max_event_time

    def max_event_time(self, partition: int) -> float | None:
        """The highest event time seen on ``partition``, if any."""
        return self._max_event_time.get(partition)

    def watermark(self, partition: int) -> float | None:
        """The partition's event-time clock, or None while it has seen nothing (event-time mode)."""
        wm: float | None = None
        seen = self._max_event_time.get(partition)
        if self.event_time_only:
            return None if seen is None else seen - self.allowed_lateness
        now = self._wall_clock()
        if seen is not None:
            # Also bounds a future time restored from the clock table (written before this bound).
            wm = min(seen, now + self.future_tolerance) - self.allowed_lateness
        wall = now - self.allowed_lateness
        return wall if wm is None else max(wm, wall)

    def take_dirty(self) -> dict[int, float]:
        """Partitions whose max event time moved since the last call, with the new value (to persist)."""
        out = {p: self._max_event_time[p] for p in self._dirty}
        self._dirty.clear()
        return out

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the clocks of partitions this worker no longer owns."""
        for p in partitions:
            self._max_event_time.pop(p, None)
            self._dirty.discard(p)
