"""Handled offsets per partition, and what an assignment's committed offsets say about them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from streams.runtime.metrics import EVENTS_SKIPPED
from streams.worker.progress import OffsetMove, PartitionProgress, offset_moves


class _Partitions:
    """Records which partition each table write was scoped to."""

    def __init__(self) -> None:
        self.scopes: list[int] = []

    @contextlib.contextmanager
    def scope(self, partition: int) -> Iterator[None]:
        self.scopes.append(partition)
        yield


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
    before = EVENTS_SKIPPED._value.get()
    moves: Any = progress.check([0, 1], {0: 14, 1: None})
    assert [m.skipped for m in moves] == [4]
    assert EVENTS_SKIPPED._value.get() - before == 4
    assert table[b"1"] == b"0"


def test_an_unreadable_record_is_skipped_not_raised() -> None:
    """A progress value that is not a number is logged and ignored."""
    progress, _ = _progress({b"0": b"not a number"})
    assert progress.check([0], {0: 3}) == []
