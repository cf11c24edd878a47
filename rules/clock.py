"""The event-time clock: the one place the watermark formula and the allowed lateness live.

watermark = the highest event time seen − ``allowed_lateness``. Rules judge events and fire
deadlines against it, so events out of order by less than the lateness are evaluated exactly as if
sorted. The backtest keeps one clock for its whole file; the stream worker keeps one per assigned
partition (``streams.worker.clock.PartitionClocks``), which makes one account's result depend only
on its own partition's events.

A live clock (``future_tolerance`` given) is also moved by the wall clock − lateness whenever its
stream has caught up (:meth:`EventTimeClock.catch_up`: nothing is waiting to be read), so
deadlines fire on an all-quiet stream; while a backlog is read (a restart, a rebalance, a burst)
only event times move it, so the backlog is evaluated, not judged late for having waited. It
counts an event time only up to the wall clock + ``future_tolerance``: an event stamped minutes
ahead cannot drag the clock ahead and make every other account's on-time events late (such a
time is reported as ``Anomaly.FUTURE_EVENT``).

Pure: the wall-clock time comes in as an argument (``now``); nothing here reads a clock.
"""

from __future__ import annotations

from schemas import observed
from schemas.observed import Anomaly

DEFAULT_FUTURE_TOLERANCE = 1.0
"""Seconds a live clock may run ahead of the wall clock (client clocks are rarely exact)."""


class EventTimeClock:
    """The highest event time seen and the watermark derived from it.

    ``future_tolerance=None`` is an event-time-only clock (the backtest, replays in parity with
    it): only event times move it, and it has no watermark until it has seen one.
    """

    __slots__ = ("allowed_lateness", "future_tolerance", "max_event_time", "wall_floor")

    def __init__(self, allowed_lateness: float, future_tolerance: float | None = None) -> None:
        if allowed_lateness < 0:
            raise ValueError("allowed_lateness must be >= 0")
        self.allowed_lateness = allowed_lateness
        self.future_tolerance = future_tolerance
        self.max_event_time: float | None = None
        """The highest event time counted so far (None until the first)."""
        self.wall_floor: float | None = None
        """A live clock's wall clock − lateness when its stream last had nothing waiting (None until then)."""

    def observe(self, event_time: float, now: float | None = None) -> bool:
        """Count an accepted event's time; True when the clock moved (it only ever moves forward).

        On a live clock (which needs ``now``, the wall-clock time) a time beyond ``now`` +
        ``future_tolerance`` counts as that bound and is reported as ``Anomaly.FUTURE_EVENT``.
        """
        seen = self.max_event_time
        if seen is not None and event_time <= seen:
            return False
        if self.future_tolerance is not None:
            ceiling = _required(now) + self.future_tolerance
            if event_time > ceiling:
                observed.report(Anomaly.FUTURE_EVENT)
                event_time = ceiling
                if seen is not None and event_time <= seen:
                    return False
        self.max_event_time = event_time
        return True

    def restore(self, max_event_time: float) -> None:
        """Seed the clock from a persisted value (after recovery); never moves it back."""
        if self.max_event_time is None or max_event_time > self.max_event_time:
            self.max_event_time = max_event_time

    def catch_up(self, now: float) -> None:
        """The stream has nothing waiting to be read: the wall clock − lateness becomes a floor of
        a live clock's watermark (deadlines fire on a quiet stream). A no-op on an event-time-only clock."""
        if self.future_tolerance is None:
            return
        floor = now - self.allowed_lateness
        if self.wall_floor is None or floor > self.wall_floor:
            self.wall_floor = floor

    def watermark(self, now: float | None = None) -> float | None:
        """The watermark; None while the clock has seen nothing (and, live, never caught up).

        A live clock's watermark is never behind the wall floor set by :meth:`catch_up`, and a
        restored time beyond ``now`` + ``future_tolerance`` (written before that bound existed)
        counts as that bound.
        """
        seen = self.max_event_time
        if self.future_tolerance is None:
            return None if seen is None else seen - self.allowed_lateness
        now = _required(now)
        floor = self.wall_floor
        if seen is None:
            return floor
        wm = min(seen, now + self.future_tolerance) - self.allowed_lateness
        return wm if floor is None or wm >= floor else floor

    def after_event(self, event_time: float, now: float | None = None) -> float:
        """Observe ``event_time`` and return the watermark the clock then shows (the backtest's step)."""
        if self.future_tolerance is None:  # observe + watermark of an event-time-only clock, inlined
            seen = self.max_event_time
            if seen is None or event_time > seen:
                self.max_event_time = seen = event_time
            return seen - self.allowed_lateness
        self.observe(event_time, now)
        wm = self.watermark(now)
        return self.watermark_at(event_time) if wm is None else wm  # never None: it has seen an event

    def watermark_at(self, event_time: float) -> float:
        """The watermark once ``event_time`` is the highest event time (where a clock starts, and
        the point past which nothing earlier than ``event_time`` − lateness can still count)."""
        return event_time - self.allowed_lateness


def _required(now: float | None) -> float:
    if now is None:
        raise TypeError("a live clock needs the wall-clock time (now)")
    return now
