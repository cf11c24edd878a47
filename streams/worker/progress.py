"""How far each partition of ``preempt.events`` was handled, kept in a table, so that the worker that takes
a partition can tell when the consumer group's committed offset moved past records nobody read.

An operator's ``kafka-consumer-groups.sh --reset-offsets --to-latest`` (or ``--to-datetime``,
``--shift-by``) while the workers were stopped skipped every record between: the worker started at the
new offset and said nothing, so those events were never evaluated and no metric showed it. The
worker writes the next offset it handled per partition to the ``partition-progress`` table (one
changelog record per partition per batch, with the batch's states, in the flush before its partition
clocks: on the broker before the clock covers the batch, and before its offsets are committed); after
an assignment it compares the group's committed offsets with it. A committed offset past the
recorded one is a skip (counted, WARN); one before it is a replay (INFO; the records' events are
dropped as duplicates within the dedup horizon).

Retention that deleted records nobody read leaves the committed offset where it was, behind the
partition's log start: the consumer resets to the log start and the records between were never
evaluated, and nothing said so (the group's offset had not moved; no record marks the gap). The
check therefore compares the recorded offset with where reading really starts, the later of the
committed offset and the log start (:func:`reading_starts`), and counts what retention deleted
apart (``preempt_events_skipped_total{reason="retention"}``, WARN).

The same table holds, under ``accounts-dead-lettered:<partition>``, how far the bad records of that
partition of ``preempt.accounts`` were dead-lettered (streams/worker/account_letters.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass

from streams.runtime.logs import get_logger
from streams.runtime.metrics import CHANGELOG_WRITES, EVENTS_SKIPPED
from streams.worker.partition_scope import PartitionEvents

log = get_logger(__name__)

PROGRESS_TABLE = "partition-progress"


SKIP_REASONS = ("offset_moved", "retention")


def reading_starts(committed: Mapping[int, int | None], log_start: Mapping[int, int]) -> dict[int, int | None]:
    """Where the consumer reads each partition from: its ``committed`` offset, or the partition's
    ``log_start`` when retention deleted records past it (the consumer resets to the log start) or
    nothing is committed (read from the beginning); None when neither is known (pure)."""
    starts: dict[int, int | None] = {}
    for p, at in committed.items():
        start = log_start.get(p)
        starts[p] = at if start is None else start if at is None else max(at, start)
    return starts


@dataclass(frozen=True, slots=True)
class OffsetMove:
    """A partition whose committed offset is not where this deployment's workers left it."""

    partition: int
    recorded: int  # next offset after the last record handled
    committed: int  # next offset the consumer group will read

    @property
    def skipped(self) -> int:
        """Records the group's offset moved past without their being read (0 for a replay)."""
        return max(0, self.committed - self.recorded)


def offset_moves(recorded: Mapping[int, int], committed: Mapping[int, int | None]) -> list[OffsetMove]:
    """The partitions of ``recorded`` whose ``committed`` offset differs from it (pure)."""
    moves = []
    for partition, mark in sorted(recorded.items()):
        at = committed.get(partition)
        if at is not None and at != mark:
            moves.append(OffsetMove(partition, mark, at))
    return moves


class PartitionProgress:
    """Records each partition's handled offset in the progress table and checks it after assignments."""

    def __init__(self, table: MutableMapping[bytes, bytes], partitions: PartitionEvents, topic: str) -> None:
        self.table = table
        self._partitions = partitions
        self._topic = topic
        self._written: dict[int, int] = {}

    def record(self, next_offsets: Mapping[int, int]) -> None:
        """Write the next offsets that moved (called before the flush that precedes a batch's clocks)."""
        moved = 0
        for partition, nxt in next_offsets.items():
            if self._written.get(partition) == nxt:
                continue
            with self._partitions.scope(partition):
                self.table[str(partition).encode()] = str(nxt).encode()
            self._written[partition] = nxt
            moved += 1
        if moved:
            CHANGELOG_WRITES.labels(table=PROGRESS_TABLE).inc(moved)

    def check(
        self,
        partitions: Iterable[int],
        committed: Mapping[int, int | None],
        log_start: Mapping[int, int] | None = None,
    ) -> list[OffsetMove]:
        """After an assignment (tables recovered): compare the recorded offsets of ``partitions`` with
        where the consumer reads them from (the group's ``committed`` offsets, or the partitions'
        ``log_start`` past them); count and log the records skipped, by an offset move or by retention.
        Returns the moves found (each one's ``committed``: where reading starts)."""
        starts = reading_starts(committed, log_start or {})
        mine = set(partitions)
        self._written = {p: n for p, n in self._written.items() if p in mine}
        recorded: dict[int, int] = {}
        for partition in mine:
            raw = self.table.get(str(partition).encode())
            try:
                recorded[partition] = int(raw) if raw is not None else -1
            except ValueError:
                log.error("unreadable partition progress record skipped", partition=partition, value=repr(raw)[:100])
        # A partition no worker has recorded yet starts where the group will read it from (from the
        # log start when nothing is committed): a later reset past records it never read is a skip too.
        # Where that is not known (the coordinator and Kafka did not answer in time) nothing is recorded:
        # 0 would count every record before the committed offset as skipped at the next assignment.
        unrecorded = [p for p, n in recorded.items() if n < 0]
        for p in unrecorded:  # nothing handled yet: only what retention took from the committed offset on
            at, start = committed.get(p), starts.get(p)
            if at is not None and start is not None and start > at:
                self._count_retention(OffsetMove(p, at, start), at)
        self.record({p: start for p in unrecorded if (start := starts.get(p)) is not None})
        moves = offset_moves({p: n for p, n in recorded.items() if n >= 0}, starts)
        for move in moves:
            self._written[move.partition] = move.recorded
            if move.skipped:
                at = committed.get(move.partition)
                at = move.recorded if at is None else at  # nothing committed: read from the log start, no move
                moved = max(0, at - move.recorded)
                if moved:
                    EVENTS_SKIPPED.labels(reason="offset_moved").inc(moved)
                    log.warning(
                        "records skipped: the consumer group's offset moved past records no worker read "
                        "(an offset reset to latest); their events are not evaluated",
                        topic=self._topic,
                        partition=move.partition,
                        handled_until=move.recorded,
                        committed=at,
                        skipped=moved,
                    )
                if move.skipped > moved:
                    self._count_retention(move, max(move.recorded, at))
                # Counted once: a restart before the next batch compares with where reading starts now.
                self.record({move.partition: move.committed})
            else:
                log.info(
                    "records read again: the consumer group's offset is behind the records already handled "
                    "(expected after a restart or rebalance that came before the last commit; otherwise an offset "
                    "reset to earliest); their events are dropped as duplicates",
                    topic=self._topic,
                    partition=move.partition,
                    handled_until=move.recorded,
                    committed=move.committed,
                )
        return moves

    def _count_retention(self, move: OffsetMove, read_until: int) -> None:
        """Count and log the records of ``move`` from ``read_until`` to where reading starts: retention
        deleted them before a worker read them."""
        deleted = move.committed - read_until
        EVENTS_SKIPPED.labels(reason="retention").inc(deleted)
        log.warning(
            "records deleted by retention before a worker read them; their events are not evaluated",
            topic=self._topic,
            partition=move.partition,
            handled_until=move.recorded,
            log_start=move.committed,
            skipped=deleted,
        )
