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
adds what the worker needs around them: the wall clock, which partitions moved (to persist), and
the hold after a broker outage (:meth:`PartitionClocks.fetched`).

A broker outage is a time at which the worker could not learn a partition's end offset, and at
which the producers could not write to it either: they buffer and retry, and deliver the events
stamped meanwhile after it, in no particular order (an ingest client's retries, an SDK's buffer
behind its request timeout) and mixed with fresh ones. Their delay is the outage's, not theirs: a
partition the broker did not answer for longer than the allowed lateness keeps the watermark the
outage left it at for ``outage_grace`` seconds once the broker answers again, so what producers
deliver meanwhile is evaluated, not dropped as late (the wall clock − lateness, or the first fresh
event, would otherwise pass every event stamped during the outage). A flapping broker extends a
hold at most to one grace after the first hold's end, and moves the held watermark up to each new
outage. Holds live in memory only: a restart, or a move of the partition to another worker,
loses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from rules.clock import DEFAULT_FUTURE_TOLERANCE, EventTimeClock

__all__ = ["DEFAULT_FUTURE_TOLERANCE", "DEFAULT_OUTAGE_GRACE", "PartitionClocks"]

DEFAULT_OUTAGE_GRACE = 60.0
"""Seconds a partition's watermark stays put once the broker answers again after an outage
(kafka-python's request timeout is 30 s; ingest clients retry after 5 s, and back off)."""


class _Hold:
    """A partition's watermark held after an outage (:meth:`PartitionClocks.fetched`)."""

    __slots__ = ("limit", "until", "watermark")

    def __init__(self, watermark: float, until: float, limit: float) -> None:
        self.watermark = watermark
        """The watermark the partition's is capped at while held (moved up by a later outage)."""
        self.until = until
        """Wall-clock time the hold ends (extended by a later outage, never past ``limit``)."""
        self.limit = limit
        """The latest ``until`` may become: the first hold's end + one grace."""


class PartitionClocks:
    """One event-time clock per partition, and which of them moved since they were last persisted."""

    def __init__(
        self,
        allowed_lateness: float,
        event_time_only: bool,
        wall_clock: Callable[[], float] = time.time,
        future_tolerance: float = DEFAULT_FUTURE_TOLERANCE,
        outage_grace: float = DEFAULT_OUTAGE_GRACE,
    ) -> None:
        self.event_time_only = event_time_only
        self.outage_grace = outage_grace
        """Seconds a partition's watermark is held after an outage (:meth:`fetched`; 0: not held)."""
        self._future_tolerance = future_tolerance
        self._template = EventTimeClock(allowed_lateness, None if event_time_only else future_tolerance)
        self._wall_clock = wall_clock
        self._clocks: dict[int, EventTimeClock] = {}
        self._dirty: set[int] = set()
        self._answered: dict[int, float] = {}  # partition -> wall time of the broker's latest fetch answer
        self._holds: dict[int, _Hold] = {}

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

    def observe(self, partition: int, event_time: float) -> bool:
        """Record an accepted event's time; the clock only ever moves forward. True when it moved.

        In live mode a time beyond the wall clock + ``future_tolerance`` counts as that bound (and
        in ``preempt_future_events_total``): the partition's clock never runs ahead of real time.
        """
        if self._clock(partition).observe(event_time, self._now()):
            self._dirty.add(partition)
            return True
        return False

    def observe_watermark(self, partition: int, event_time: float) -> float | None:
        """:meth:`observe`, then, when the clock moved, :meth:`watermark` (None when it did not move): the
        rules worker's call per accepted event, one instead of two (and in event-time-only mode, where no
        wall clock or hold applies, without their inner calls)."""
        clock = self._clocks.get(partition)
        if clock is None:
            clock = self._clock(partition)
        if self.event_time_only:
            if not clock.observe(event_time, None):
                return None
            self._dirty.add(partition)
            return clock.watermark(None)
        if not clock.observe(event_time, self._wall_clock()):
            return None
        self._dirty.add(partition)
        return self.watermark(partition)

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

    def fetched(self, answered: Mapping[int, float], unanswered_at: float | Iterable[float] | None) -> dict[int, float]:
        """The broker answered a fetch of each partition at the given wall-clock time (its latest
        answer; the runtime passes every assigned partition's before each batch and tick), and the
        broker left a request of the worker unanswered at ``unanswered_at`` (the wall-clock times
        of recent ones: a consumer request that failed, or a probe of the broker watch; None: never).

        A partition not answered for longer than the allowed lateness, with a failed request in
        that gap (after the answer before it, not after the answer that ended it), was unreachable
        — for its producers too, most likely — so its watermark stays where it is now until
        ``outage_grace`` seconds after the answer that ended the gap. A gap without a failure is a
        batch that held the event loop: the producers wrote meanwhile and their records are read
        as a backlog, so nothing is held. Returns the partitions whose gap started or extended a
        hold, with the gap's length in seconds. A no-op in event-time-only mode.

        A later outage during the hold (a flapping broker) extends it, but never past one grace
        after the first hold's end (the total hold is at most the first gap's end + 2 × grace),
        and moves the held watermark up to where the new gap started (− the lateness, never past
        the clock's own watermark): what was buffered during the new gap is still on time, and the
        watermark does not stay at the first outage while deadlines wait.

        What is known survives :meth:`forget` while a hold lasts: a rebalance right after an outage
        must not lose its hold (the rebuilt clock is capped, not moved back, until the hold ends).
        """
        if self.event_time_only:
            return {}
        if unanswered_at is None:
            failures: tuple[float, ...] = ()
        elif isinstance(unanswered_at, int | float):
            failures = (float(unanswered_at),)
        else:
            failures = tuple(unanswered_at)
        lateness = self._template.allowed_lateness
        now = self._wall_clock()
        out: dict[int, float] = {}
        for p, at in answered.items():
            last = self._answered.get(p)
            if last is not None and at <= last:
                continue
            self._answered[p] = at
            if last is None or at - last <= lateness or self.outage_grace <= 0:
                continue
            if not any(last < failed <= at for failed in failures):
                continue  # nothing failed in the gap: the event loop was busy, not the broker away
            hold = self._holds.get(p)
            wm = self._clock(p).watermark(now)
            if hold is not None and hold.until > now:
                if wm is not None:
                    hold.watermark = max(hold.watermark, min(wm, last - lateness))
                hold.until = min(max(hold.until, at + self.outage_grace), hold.limit)
            else:
                if wm is None:
                    continue  # nothing to hold: the partition's first event will start its clock
                until = at + self.outage_grace
                self._holds[p] = _Hold(wm, until, until + self.outage_grace)
            out[p] = at - last
        return out

    def held_until(self, partition: int) -> float | None:
        """The wall-clock time until which ``partition``'s watermark is held after an outage, if it is."""
        hold = self._holds.get(partition)
        return None if hold is None or hold.until <= self._wall_clock() else hold.until

    def end_holds(self) -> dict[int, float]:
        """Drop the holds that are over (their partitions' clocks move on as the formula says) and
        return their partitions, with the watermark each was held at."""
        now = self._wall_clock()
        ended = {p: hold.watermark for p, hold in self._holds.items() if hold.until <= now}
        for p in ended:
            del self._holds[p]
        return ended

    def held_partitions(self) -> int:
        """How many partitions' watermarks are held after an outage now."""
        now = self._wall_clock()
        return sum(1 for hold in self._holds.values() if hold.until > now)

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
        now = self._now()
        wm = clock.watermark(now)
        hold = self._holds.get(partition)
        if hold is None or wm is None or now is None or now >= hold.until:
            return wm  # not held (an ended hold is dropped by :meth:`end_holds`)
        return min(wm, hold.watermark)

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
        """Drop the clocks of partitions this worker no longer owns, and when the broker last
        answered their fetches unless a hold of theirs lasts: a partition assigned again later
        measures its first gap from its first answer then, not from before it was revoked (a
        broker blip meanwhile held its backlog as if it had been an outage)."""
        now = self._wall_clock()
        for p in partitions:
            self._clocks.pop(p, None)
            self._dirty.discard(p)
            hold = self._holds.get(p)
            if hold is None or hold.until <= now:
                self._answered.pop(p, None)
