"""The wakeup index: which accounts need ``engine.advance`` once a partition's watermark passes a time.

A heap per partition of ``(wakeup, account_id)`` with lazy invalidation: setting a new wakeup for
an account leaves the old heap entry behind, and ``iter_due`` skips entries that no longer match.
Left-behind entries leave the heap when the watermark passes them, which for a pack whose nearest
wakeup is days away (only ``inactivity: 14d`` rules, say) is days after they were pushed: one an
event. So once the heaps hold more than twice the live wakeups (plus ``COMPACT_SLACK``), they are
rebuilt from the live ones (checked whenever the live count falls too), amortised O(1) a ``set``.
It lives in memory only and is rebuilt from the state table after recovery or a rebalance.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

COMPACT_SLACK = 4096  # stale entries always tolerated (small indexes never compact)


class WakeupIndex:
    """Earliest watermark at which each account's state can change, grouped by partition."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[float, str]]] = {}
        self._current: dict[str, tuple[int, float]] = {}
        self._entries = 0  # heap entries over all partitions, live and stale

    def __len__(self) -> int:
        return len(self._current)

    @property
    def entries(self) -> int:
        """Heap entries held, the stale ones included (at most about twice ``len(self)``)."""
        return self._entries

    def set(self, partition: int, account_id: str, wakeup: float | None) -> None:
        """Schedule ``account_id`` for ``wakeup`` (None: nothing pending, unschedule)."""
        if wakeup is None:
            # An unschedule leaves its entry stale too: many of them (accounts whose rules have nothing
            # pending any more) would keep the heaps at their old size for good without this check.
            if self._current.pop(account_id, None) is not None:
                self._compact_if_stale()
            return
        if self._current.get(account_id) == (partition, wakeup):
            return
        self._current[account_id] = (partition, wakeup)
        heapq.heappush(self._heaps.setdefault(partition, []), (wakeup, account_id))
        self._entries += 1
        self._compact_if_stale()

    def _compact_if_stale(self) -> None:
        """Compact once more than twice the live wakeups (plus the slack) are held, whatever lowered the live
        count (an unschedule, a due pop, a revocation): amortised O(1), as a compaction costs the live wakeups,
        fewer than the stale entries that the sets before it left."""
        if self._entries > 2 * len(self._current) + COMPACT_SLACK:
            self._compact()

    def _compact(self) -> None:
        """Rebuild every heap from the live wakeups only."""
        heaps: dict[int, list[tuple[float, str]]] = {p: [] for p in self._heaps}
        for account_id, (partition, wakeup) in self._current.items():
            heaps.setdefault(partition, []).append((wakeup, account_id))
        for heap in heaps.values():
            heapq.heapify(heap)
        self._heaps = heaps
        self._entries = len(self._current)

    def pop_due(self, partition: int, watermark: float) -> list[str]:
        """Remove and return the accounts of ``partition`` whose wakeup is ≤ ``watermark``."""
        return list(self.iter_due(partition, watermark))

    def iter_due(self, partition: int, watermark: float) -> Iterator[str]:
        """Pop and yield, earliest first, the accounts of ``partition`` whose wakeup is ≤ ``watermark``,
        one at a time: a caller that stops part-way leaves the rest scheduled as they were."""
        while (heap := self._heaps.get(partition)) and heap[0][0] <= watermark:
            wakeup, account_id = heapq.heappop(heap)
            self._entries -= 1
            if self._current.get(account_id) == (partition, wakeup):
                del self._current[account_id]
                self._compact_if_stale()  # the live count fell: other partitions' stale entries may now be too many
                yield account_id

    def next_due(self, partition: int) -> float | None:
        """The earliest live wakeup on ``partition`` (for tests and the readiness of the timer)."""
        heap = self._heaps.get(partition)
        while heap:
            wakeup, account_id = heap[0]
            if self._current.get(account_id) == (partition, wakeup):
                return wakeup
            heapq.heappop(heap)
            self._entries -= 1
        return None

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget every wakeup of ``partitions`` (revoked from this worker)."""
        gone = set(partitions)
        for p in gone:
            self._entries -= len(self._heaps.pop(p, ()))
        for account_id in [a for a, (p, _) in self._current.items() if p in gone]:
            del self._current[account_id]
        self._compact_if_stale()
