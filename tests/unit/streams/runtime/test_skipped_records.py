"""streams/runtime/skipped_records.py: a jump in offsets, and one skipped range read again and sorted out."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from structlog.testing import capture_logs

from streams.runtime.skipped_records import SkippedRange, offset_jump, reread_skipped


class Source:
    """A side reader over ``offsets`` of one partition; ``complete``: whether a read reaches its end."""

    def __init__(self, offsets: list[int], complete: bool = True) -> None:
        self.offsets = offsets
        self.complete = complete

    async def read_range(self, partition: int, start: int, end: int, *, first_only: bool = False) -> Any:
        return [SimpleNamespace(partition=partition, offset=o) for o in self.offsets if start <= o < end], self.complete


def test_a_jump_is_an_offset_past_the_one_expected() -> None:
    """Only an offset past the expected one is a jump; nothing expected, or a record read again, is none."""
    assert offset_jump(5, 8) == (5, 8)
    assert offset_jump(5, 5) is None
    assert offset_jump(5, 3) is None
    assert offset_jump(None, 8) is None


def test_a_range_read_to_its_end_without_records_holds_markers_only() -> None:
    """Complete and empty: transaction markers; incomplete: the offsets not read count as lost."""
    assert SkippedRange(0, 3, 5, [], True).markers_only
    assert SkippedRange(0, 3, 5, [], True).lost == 0
    assert not SkippedRange(0, 3, 5, [object()], True).markers_only
    assert SkippedRange(0, 3, 7, [object()], False).lost == 3
    assert not SkippedRange(0, 3, 7, [], False).markers_only


async def test_reread_logs_one_error_naming_the_reader_when_records_were_skipped() -> None:
    """Records in the range: one ERROR with the range and how many were read again; markers only: no ERROR."""
    with capture_logs() as logs:
        got = await reread_skipped(Source([4, 5]), 2, 3, 7, "the notifier")
        empty = await reread_skipped(Source([]), 2, 7, 9, "the notifier")
    assert [r.offset for r in got.records] == [4, 5]
    assert got.complete
    assert not got.markers_only
    assert empty.markers_only
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [(e["event"], e["partition"], e["first_missing"], e["next_seen"], e["recovered"]) for e in errors] == [
        ("records skipped before reaching the notifier; re-read them from Kafka", 2, 3, 7, 2)
    ]
