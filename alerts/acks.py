"""Acks handed to Faust in offset order, per partition of ``preempt.alerts``.

The notifier settles alerts out of order: one waits for quiet hours, its group or a retry while
later ones are delivered. Faust commits a partition up to the end of the first run of consecutive
acked offsets, and checks only loosely that the run starts at the committed offset
(faust-streaming 0.15 ``Consumer._new_offset``): with 5 committed and 6, 7 acked it commits 8;
with nothing committed yet and 1–9 acked it commits 10. Offset 5 (or 0) was still waiting, and a
restart or a rebalance then never read it again: the alert was lost, silently.

:class:`InOrderAcks` passes a record's ack to Faust only once every record before it in the
partition (as read since the last rewind) is settled, so a commit never passes an alert still
waiting. A record read again from an earlier offset (Faust seeks back to the committed offset after
a rebalance or recovery) starts the partition afresh: what waited there is read again, and the
dispatcher settles both copies together.
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


@dataclass(slots=True)
class _Lane:
    """The records of one partition read since it was last (re)started, oldest first."""

    last: int
    pending: deque[_Record] = field(default_factory=deque)


class InOrderAcks:
    """Per partition, releases acks in the order the records were read."""

    def __init__(self) -> None:
        self._lanes: dict[int, _Lane] = {}

    def track(self, partition: int, offset: int, ack: Callable[[], object]) -> Callable[[], None]:
        """Register a record just read; returns the callable that settles it (idempotent).

        ``ack`` (Faust's) is called once this record and every record read before it in
        ``partition`` are settled. A record at or before the last one read means the partition
        was rewound: the records still waiting are read again, so their acks are dropped.
        """
        lane = self._lanes.get(partition)
        if lane is None or offset <= lane.last:
            lane = self._lanes[partition] = _Lane(offset)
        record = _Record(offset, ack)
        lane.pending.append(record)
        lane.last = offset

        def settle() -> None:
            if record.settled:
                return
            record.settled = True
            if self._lanes.get(partition) is not lane:
                return  # rewound since: the copy read again carries the ack
            pending = lane.pending
            while pending and pending[0].settled:
                pending.popleft().ack()

        return settle

    def keep(self, partitions: Collection[int]) -> None:
        """After a rebalance: forget the partitions not assigned here any more (their records
        are read by their new owner; the dispatcher drops their work)."""
        for partition in [p for p in self._lanes if p not in partitions]:
            del self._lanes[partition]

    def waiting(self, partition: int) -> int:
        """How many records of ``partition`` wait for their own or an earlier record's settling."""
        lane = self._lanes.get(partition)
        return len(lane.pending) if lane is not None else 0
