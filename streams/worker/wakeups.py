"""The wakeup index: which accounts need ``engine.advance`` once a partition's watermark passes a time.

A heap per partition of ``(wakeup, account_id)`` with lazy invalidation: setting a new wakeup for
an account leaves the old heap entry behind, and ``pop_due`` skips entries that no longer match.
It lives in memory only and is rebuilt from the state table after recovery or a rebalance.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator


class WakeupIndex:
    """Earliest watermark at which each account's state can change, grouped by partition."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[float, str]]] = {}
        self._current: dict[str, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._current)

    def set(self, partition: int, account_id: str, wakeup: float | None) -> None:
        """Schedule ``account_id`` for ``wakeup`` (None: nothing pending, unschedule)."""
        if wakeup is None:
            self._current.pop(account_id, None)
            return
        if self._current.get(account_id) == (partition, wakeup):
            return
        self._current[account_id] = (partition, wakeup)
        heapq.heappush(self._heaps.setdefault(partition, []), (wakeup, account_id))

    def pop_due(self, partition: int, watermark: float) -> list[str]:
        """Remove and return the accounts of ``partition`` whose wakeup is ≤ ``watermark``."""
        return list(self.iter_due(partition, watermark))

    def iter_due(self, partition: int, watermark: float) -> Iterator[str]:
        """Pop and yield, earliest first, the accounts of ``partition`` whose wakeup is ≤ ``watermark``,
        one at a time: a caller that stops part-way leaves the rest scheduled as they were."""
        heap = self._heaps.get(partition)
        current = self._current
        while heap and heap[0][0] <= watermark:
            wakeup, account_id = heapq.heappop(heap)
            if current.get(account_id) == (partition, wakeup):
                del current[account_id]
                yield account_id

    def next_due(self, partition: int) -> float | None:
        """The earliest live wakeup on ``partition`` (for tests and the readiness of the timer)."""
        heap = self._heaps.get(partition)
        while heap:
            wakeup, account_id = heap[0]
            if self._current.get(account_id) == (partition, wakeup):
                return wakeup
            heapq.heappop(heap)
        return None

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget every wakeup of ``partitions`` (revoked from this worker)."""
        gone = set(partitions)
        for p in gone:
            self._heaps.pop(p, None)
        for account_id in [a for a, (p, _) in self._current.items() if p in gone]:
            del self._current[account_id]
