"""Handled offsets per partition, and what an assignment's committed offsets say about them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from streams.runtime.metrics import EVENTS_SKIPPED
from streams.worker.progress import OffsetMove, PartitionProgress, offset_moves, reading_starts


class _Partitions:
    """Records which partition each table write was scoped to."""

    def __init__(self) -> None:
        self.scopes: list[int] = []

    @contextlib.contextmanager
    def scope(self, partition: int) -> Iterator[None]:
        self.scopes.append(partition)
        yield


def _skipped() -> tuple[float, float]:
    """preempt_events_skipped_total for an offset move and for retention."""
    moved, retention = (EVENTS_SKIPPED.labels(reason=r)._value.get() for r in ("offset_moved", "retention"))
    return moved, retention


def _counted_since(before: tuple[float, float]) -> tuple[float, float]:
    now = _skipped()
    return now[0] - before[0], now[1] - before[1]


def _progress(table: dict[bytes, bytes]) -> tuple[PartitionProgress, _Partitions]:
    partitions = _Partitions()
    progress = PartitionProgress(table, partitions, "p.events")  # type: ignore[arg-type]
    return progress, partitions


def test_offset_moves_are_the_partitions_whose_committed_offset_differs() -> None:
    """Ahead is a skip of the difference, behind a replay (0 skipped), equal or unknown nothing."""
    moves = offset_moves({0: 10, 1: 10, 2: 10, 3: 10}, {0: 15, 1: 4, 2: 10})
    assert moves == [OffsetMove(0, 10, 15), OffsetMove(1, 10, 4)]
    assert [m.skipped for m in moves] == [5, 0]


def test_record_writes_each_moved_offset_once_on_its_own_partition() -> None:
    """A partition's next offset is written in its scope, and not again while it has not moved."""
    table: dict[bytes, bytes] = {}
    progress, partitions = _progress(table)
    progress.record({0: 7, 2: 3})
    progress.record({0: 7, 2: 4})
    assert table == {b"0": b"7", b"2": b"4"}
    assert partitions.scopes == [0, 2, 2]


def test_check_counts_records_the_committed_offset_moved_past() -> None:
    """Recorded 10, committed 14: 4 skipped, counted; a partition never recorded starts at its committed offset."""
    table: dict[bytes, bytes] = {b"0": b"10"}
    progress, _ = _progress(table)
    before = _skipped()
    moves: Any = progress.check([0, 1], {0: 14, 1: 2})
    assert [m.skipped for m in moves] == [4]
    assert _counted_since(before) == (4, 0)
    assert table[b"1"] == b"2"


def test_an_unreadable_record_is_skipped_not_raised() -> None:
    """A progress value that is not a number is logged and ignored."""
    progress, _ = _progress({b"0": b"not a number"})
    assert progress.check([0], {0: 3}) == []


def test_reading_starts_at_the_log_start_when_retention_passed_the_committed_offset() -> None:
    """The later of the committed offset and the log start; nothing committed: the log start (or unknown)."""
    starts = reading_starts({0: 5, 1: 9, 2: None, 3: 4, 4: None}, {0: 8, 1: 3, 2: 6})
    assert starts == {0: 8, 1: 9, 2: 6, 3: 4, 4: None}


def test_check_counts_records_retention_deleted_before_a_worker_read_them_apart_and_once() -> None:
    """Committed where the workers left it but the log starts past it: retention's (6); an offset reset to
    latest then retention: the reset's (4) and retention's (6) apart; a replay past which retention took
    records: retention's from the handled offset (2); never recorded: from the committed offset (5); nothing
    committed (read from the log start): retention's from the handled offset (3). The
    progress moves to where reading starts, so a restart before the next batch counts nothing again."""
    table: dict[bytes, bytes] = {b"0": b"10", b"1": b"10", b"2": b"10", b"4": b"0"}
    progress, _ = _progress(table)
    before = _skipped()
    committed: dict[int, int | None] = {0: 10, 1: 14, 2: 4, 3: 3, 4: None}
    log_start = {0: 16, 1: 20, 2: 12, 3: 8, 4: 3}
    moves = progress.check([0, 1, 2, 3, 4], committed, log_start)
    assert [(m.partition, m.skipped) for m in moves] == [(0, 6), (1, 10), (2, 2), (4, 3)]
    assert _counted_since(before) == (4, 6 + 6 + 2 + 5 + 3)
    assert table == {b"0": b"16", b"1": b"20", b"2": b"12", b"3": b"8", b"4": b"3"}

    again, _ = _progress(table)
    before = _skipped()
    assert again.check([0, 1, 2, 3, 4], committed, log_start) == []
    assert _counted_since(before) == (0, 0)


def test_a_partition_whose_reading_start_is_not_known_is_not_recorded_at_offset_0() -> None:
    """Never recorded, and neither its committed offset nor its log start known (the coordinator and Kafka did
    not answer in time): nothing is recorded, so the next assignment, which knows them, counts no skip; before,
    0 was recorded and an idle partition committed at 500 then counted 500 records skipped (a false page)."""
    table: dict[bytes, bytes] = {}
    progress, _ = _progress(table)
    before = _skipped()
    assert progress.check([0, 1], {0: None, 1: None}, {}) == []
    assert table == {}
    again, _ = _progress(table)
    assert again.check([0, 1], {0: 500, 1: None}, {0: 0, 1: 300}) == []
    assert _counted_since(before) == (0, 0)
    assert table == {b"0": b"500", b"1": b"300"}
