"""Acks handed to Faust in offset order, per partition of ``preempt.alerts``.

The notifier settles alerts out of order: one waits for quiet hours, its group or a retry while
later ones are delivered. Faust commits a partition up to the end of the first run of consecutive
acked offsets, and checks only loosely that the run starts at the committed offset
(faust-streaming 0.15 ``Consumer._new_offset``): with 5 committed and 6, 7 acked it commits 8;
with nothing committed yet and 1–9 acked it commits 10. Offset 5 (or 0) was still waiting, and a
restart or a rebalance then never read it again: the alert was lost, silently (shown on the
installed Faust by ``tests/unit/streams/runtime/test_faust_compat.py``).

:class:`InOrderAcks` passes a record's ack to Faust only once every record before it in the
partition is settled, so a commit never passes an alert still waiting. A record read again from
an earlier offset X (Faust seeks back to the committed offset during recovery) replaces the copies
of X and after: those are read again, and the dispatcher settles both copies together. Copies
before X keep their acks — Faust does not always read the whole range again (its read offset can
move past the committed one while the seek is awaited). A rebalance forgets everything (``keep``):
Faust forgets its acks too and reads every partition it keeps again from the committed offset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Record:
    offset: int
    ack: Callable[[], object]
    settled: bool = False
    dropped: bool = False  # replaced by a copy read again, or its partition forgotten


@dataclass(slots=True)
class _Lane:
    """The records of one partition whose ack is not handed over yet, in offset order."""

    last: int
    pending: deque[_Record] = field(default_factory=deque)


class InOrderAcks:
    """Per partition, releases acks in the order the records were read."""

    def __init__(self) -> None:
        self._lanes: dict[int, _Lane] = {}

    def track(self, partition: int, offset: int, ack: Callable[[], object]) -> Callable[[], None]:
        """Register a record just read; returns the callable that settles it (idempotent).

        ``ack`` (Faust's) is called once this record and every record before it in ``partition``
        are settled. A record at or before the last one read means the partition is read again
        from there: the copies from that offset on are dropped (their new copies carry the acks).
        """
        lane = self._lanes.get(partition)
        if lane is None:
            lane = self._lanes[partition] = _Lane(offset)
        elif offset <= lane.last:
            kept: deque[_Record] = deque()
            for old in lane.pending:
                if old.offset < offset:
                    kept.append(old)
                else:
                    old.dropped = True
            lane.pending = kept
        record = _Record(offset, ack)
        lane.pending.append(record)
        lane.last = offset

        def settle() -> None:
            if record.settled or record.dropped:
                return
            record.settled = True
            pending = lane.pending
            while pending and pending[0].settled:
                pending.popleft().ack()

        return settle

    def keep(self, partitions: Collection[int]) -> None:
        """Forget the partitions not in ``partitions`` (all of them at a rebalance's revocation:
        Faust reads the partitions it keeps again from the committed offset, and the dispatcher
        drops the work of those that moved)."""
        for partition in [p for p in self._lanes if p not in partitions]:
            for record in self._lanes.pop(partition).pending:
                record.dropped = True

    def held(self) -> int:
        """How many records, over every partition, wait for their own or an earlier record's settling
        (``preempt_notifier_alerts_held``)."""
        return sum(len(lane.pending) for lane in self._lanes.values())

    def waiting(self, partition: int) -> int:
        """How many records of ``partition`` wait for their own or an earlier record's settling."""
        lane = self._lanes.get(partition)
        return len(lane.pending) if lane is not None else 0
