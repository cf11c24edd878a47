"""Records Faust acknowledged without handing them to an agent: one offset range re-read and sorted out.

faust-streaming 0.15 was seen to skip a record (about one in 80,000, soon after an assignment): its
drain loop marks the jump done and commits past it, so the record is never read again. Both apps
look for such a jump per partition — between two records handed to them in a row, and between
the group's committed offset and the first record after an assignment — and read the range with
a side consumer (``streams.runtime.range_reader``, the isolation level of Faust's consumer):

* the rules worker (``streams.worker.gap_repair``, ``WorkerRuntime._repair``) evaluates the records
  re-read in the same batch;
* the notifier (``NotifierRuntime.handle_alert``) handles the alerts re-read before the record that
  showed the jump, through the same delivery log (nothing is delivered twice).

A range can hold no record at all: a transactional producer's commit and abort markers take an
offset each that no consumer is ever given. Such a range reads complete and empty, and is not a
skip. A range retention deleted before anyone read it cannot be read whole: what is missing is lost
(the reader's ERROR names it; the caller counts it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streams.runtime.logs import get_logger

log = get_logger(__name__)


class RangeSource(Protocol):
    """What reads one offset range of one partition (``RangeReader``, the worker's ``GapRepair``)."""

    async def read_range(
        self, partition: int, start: int, end: int, *, first_only: bool = False
    ) -> tuple[Sequence[Any], bool]:
        """The records at ``start`` ≤ offset < ``end`` and whether the whole range was read."""
        ...


@dataclass(frozen=True, slots=True)
class SkippedRange:
    """One offset range ``[start, end)`` of ``partition`` no record of which reached the agent, as re-read."""

    partition: int
    start: int
    end: int
    records: Sequence[Any]  # the records re-read, in offset order
    complete: bool  # the whole range was read (the rest of its offsets are transaction markers)

    @property
    def markers_only(self) -> bool:
        """The range holds no record: transaction markers, not a skip."""
        return self.complete and not self.records

    @property
    def lost(self) -> int:
        """Offsets of the range not re-read when the read could not reach its end (retention deleted them,
        or the broker did not answer in time): at most this many records are lost (markers among them count)."""
        return 0 if self.complete else self.end - self.start - len(self.records)


def offset_jump(expected: int | None, offset: int) -> tuple[int, int] | None:
    """``(first_missing, next_seen)`` when a record at ``offset`` comes where ``expected`` was next
    (None: nothing known, or no jump — a record read again from an earlier offset is no jump)."""
    if expected is None or offset <= expected:
        return None
    return expected, offset


async def reread_skipped(source: RangeSource, partition: int, start: int, end: int, reader: str) -> SkippedRange:
    """Read ``[start, end)`` of ``partition`` again; log one ERROR when it was read whole and holds records
    (``reader``: who they skipped, e.g. "the rules worker"), a DEBUG when it holds transaction markers only.

    A range not read whole (retention deleted part of it, the broker was slow) is not logged here: the caller
    counts and logs what is lost in one line (``SkippedRange.lost``) — a second line here said the same."""
    records, complete = await source.read_range(partition, start, end)
    skipped = SkippedRange(partition, start, end, records, complete)
    if skipped.markers_only:
        log.debug("offsets without records (transaction markers)", partition=partition, start=start, end=end)
        return skipped
    if not skipped.complete:
        return skipped
    log.error(
        f"records skipped before reaching {reader}; re-read them from Kafka",
        partition=partition,
        first_missing=start,
        next_seen=end,
        recovered=len(records),
    )
    return skipped
