"""Offsets of preempt.alerts known to hold no record (transaction markers), which consumer lag leaves out."""

from __future__ import annotations

from alerts.recordless import RecordlessOffsets


def test_ranges_are_counted_where_they_overlap_the_asked_range() -> None:
    """Only the offsets of a known range inside ``[start, end)`` count, per partition."""
    known = RecordlessOffsets()
    known.add(0, 3, 4)  # a marker between two alerts
    known.add(0, 9, 11)  # a commit and an abort marker at the tail
    known.add(1, 0, 5)
    assert known.count(0, 0, 12) == 3
    assert known.count(0, 4, 10) == 1
    assert known.count(0, 11, 20) == 0
    assert known.count(2, 0, 100) == 0
    assert known.covers(0, 9, 11)
    assert not known.covers(0, 8, 11)
    assert not known.covers(0, 9, 9)


def test_a_range_read_again_or_overlapping_adds_nothing_twice() -> None:
    """A partition read again after a rebalance reports its markers again: each offset counts once, and a
    range that continues the last one extends it."""
    known = RecordlessOffsets()
    known.add(0, 5, 6)
    known.add(0, 6, 8)  # continues the last range
    known.add(0, 5, 6)  # read again
    known.add(0, 7, 9)  # overlaps the tail
    assert known.count(0, 0, 100) == 4
    assert known.covers(0, 5, 9)


def test_ranges_before_the_committed_offset_are_forgotten_when_lag_is_counted() -> None:
    """A committed offset is never read again: ranges below it are dropped, and not counted as lag's."""
    known = RecordlessOffsets()
    known.add(0, 1, 2)
    known.add(0, 4, 5)
    assert known.excluded_from_lag(0, 3, 6) == 1
    assert known.count(0, 0, 6) == 1  # the range at 1 is gone


def test_the_oldest_ranges_go_past_the_limit() -> None:
    """Memory is bounded: past the limit the oldest range is forgotten (its markers count as lag again)."""
    known = RecordlessOffsets(max_ranges=2)
    for offset in (1, 3, 5):
        known.add(0, offset, offset + 1)
    assert known.count(0, 0, 10) == 2
    assert not known.covers(0, 1, 2)
