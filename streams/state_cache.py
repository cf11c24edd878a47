"""The per-account state cache in front of the changelog-backed state table.

Kafka Streams' record-cache idea: rule state lives as live objects in memory while a batch is
processed; every account touched in the batch is marked dirty and serialized ONCE when the batch is
flushed, so the changelog gets one record per touched account per batch instead of one per rule
per event. The table (Faust ``Table`` of bytes) stays the source of truth for recovery.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

StateLoader = Callable[[bytes], Any]
StateDumper = Callable[[Any], bytes]


class StateCache:
    """Live ``AccountState`` objects by account id, with a dirty set flushed once per batch.

    ``store`` is read-only here (a Faust table of UTF-8 ``account_id`` -> state bytes); writes go out through
    the ``flush`` result so the caller can put them on the right changelog partition.
    ``max_clean`` bounds how many clean states stay deserialized in memory (LRU).
    """

    def __init__(
        self,
        store: Mapping[bytes, bytes],
        new_state: Callable[[], Any],
        loads: StateLoader,
        dumps: StateDumper,
        max_clean: int = 100_000,
    ) -> None:
        self._store = store
        self._new_state = new_state
        self._loads = loads
        self._dumps = dumps
        self._max_clean = max_clean
        self._states: OrderedDict[str, Any] = OrderedDict()
        self._partition: dict[str, int] = {}
        self._dirty: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, account_id: str, partition: int) -> Any:
        """The live state of ``account_id`` (loaded from the table, or new); remembers its partition."""
        state = self._states.get(account_id)
        if state is None:
            raw = self._store.get(account_id.encode())
            state = self._new_state() if raw is None else self._loads(raw)
            self._states[account_id] = state
        else:
            self._states.move_to_end(account_id)
        self._partition[account_id] = partition
        return state

    def mark_dirty(self, account_id: str, partition: int) -> None:
        """Schedule ``account_id``'s state for the next flush."""
        self._dirty[account_id] = partition

    @property
    def dirty_count(self) -> int:
        """Accounts waiting for the next flush."""
        return len(self._dirty)

    def flush(self) -> dict[int, dict[str, bytes]]:
        """Serialize every dirty state once; returns ``{partition: {account_id: state bytes}}``."""
        out: dict[int, dict[str, bytes]] = {}
        for account_id, partition in self._dirty.items():
            out.setdefault(partition, {})[account_id] = self._dumps(self._states[account_id])
        self._dirty.clear()
        self._evict()
        return out

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the states of partitions this worker no longer owns (the new owner recovers them)."""
        gone = set(partitions)
        for account_id in [a for a, p in self._partition.items() if p in gone]:
            self._states.pop(account_id, None)
            self._partition.pop(account_id, None)
            self._dirty.pop(account_id, None)

    def clear(self) -> None:
        """Forget everything (after a recovery the table is the truth)."""
        self._states.clear()
        self._partition.clear()
        self._dirty.clear()

    def _evict(self) -> None:
        while len(self._states) > self._max_clean:
            account_id, _ = self._states.popitem(last=False)
            self._partition.pop(account_id, None)
