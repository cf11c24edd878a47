"""Offsets of ``preempt.alerts`` known to hold no record, so that consumer lag counts alerts, not markers.

Under ``exactly_once`` the rules worker writes alerts in transactions, and each commit (or abort)
marker takes an offset no consumer is ever given. Counted as lag, they kept
``preempt_consumer_lag{topic="preempt.alerts"}`` at 1 per partition on a notifier that had read and
delivered everything (the committed offset stops one short of the end, before the last marker),
and inflated it by one per transaction while alerts were held.

Two sources tell offsets without records, both at no broker cost per alert:

* the agent: offsets skipped between two alerts it read in a row of a partition (a marker, or an
  aborted alert under read_committed) — :meth:`RecordlessOffsets.add` from the hot path, a comparison
  and at most one append;
* the watchdog (``alerts.liveness``): a partition's tail ``[read, end)`` its side read found empty,
  once per sampled ``(read, end)`` that did not move (the watchdog's own cadence).

Offsets in the backlog not read yet cannot be told apart without reading them: they count as lag
until the agent passes them. Offsets are facts of the log, so a range stays true whoever owns the
partition; ranges below the committed offset are dropped when lag is counted.
"""

from __future__ import annotations

from collections import deque

# Ranges kept per partition (one per transaction between the committed offset and the read
# position, at most): past it the oldest are forgotten, and their markers count as lag again.
MAX_RANGES_PER_PARTITION = 100_000


class RecordlessOffsets:
    """Per partition, the ranges ``[start, end)`` of offsets known to hold no record, in offset order."""

    def __init__(self, max_ranges: int = MAX_RANGES_PER_PARTITION) -> None:
        self._ranges: dict[int, deque[tuple[int, int]]] = {}
        self._max_ranges = max_ranges

    def add(self, partition: int, start: int, end: int) -> None:
        """Remember that ``[start, end)`` of ``partition`` holds no record. What overlaps a range already
        known, or lies before the last one (a partition read again after a rebalance), adds nothing."""
        ranges = self._ranges.setdefault(partition, deque())
        if ranges:
            last_start, last_end = ranges[-1]
            if start < last_end:
                start = last_end
            if start >= end:
                return
            if start == last_end:
                ranges[-1] = (last_start, end)
                return
        elif start >= end:
            return
        ranges.append((start, end))
        if len(ranges) > self._max_ranges:
            ranges.popleft()

    def count(self, partition: int, start: int, end: int) -> int:
        """How many offsets of ``[start, end)`` of ``partition`` are known to hold no record."""
        known = 0
        for low, high in self._ranges.get(partition, ()):
            if low >= end:
                break
            known += max(0, min(high, end) - max(low, start))
        return known

    def covers(self, partition: int, start: int, end: int) -> bool:
        """True when every offset of ``[start, end)`` (not empty) is known to hold no record."""
        return end > start and self.count(partition, start, end) == end - start

    def excluded_from_lag(self, partition: int, committed: int, end: int) -> int:
        """Offsets of ``[committed, end)`` known to hold no record (the lag exporter subtracts them).
        Ranges before ``committed`` are forgotten: a committed offset is never read again."""
        ranges = self._ranges.get(partition)
        while ranges and ranges[0][1] <= committed:
            ranges.popleft()
        return self.count(partition, committed, end)
