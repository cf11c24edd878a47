"""The per-account state cache in front of the changelog-backed state table, and its quarantine.

Kafka Streams' record-cache idea: rule state lives as live objects in memory while a batch is
processed; every account touched in the batch is marked dirty and serialized ONCE when the batch is
flushed, so the changelog gets one record per touched account per batch instead of one per rule
per event. The table (Faust ``Table`` of bytes) stays the source of truth for recovery.

The failure policy for one account (docs/pipeline.md): a state that cannot be read (corrupt bytes,
an unknown version), cannot be written (the encoder refuses it) or would be larger than
``max_state_bytes`` (Kafka would refuse the record) never stops the worker. The account is
QUARANTINED: its old state bytes are kept aside in a :class:`Quarantine` (the caller dead-letters
them with the reason), a fresh state takes its place and is written over the bad one, and the
stream goes on.

Dirty states are kept oldest first, each with the *mark* it got when it became dirty (a counter
over the cache's life): ``flush(limit)`` serializes the oldest ``limit`` of them, so a caller can
spread the writes of many hot accounts over its write interval instead of serializing them all at
once, and :attr:`StateCache.written_mark` says up to which mark every state is serialized — what
the runtime needs before it may ack the batches that dirtied them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from streams.runtime.logs import get_logger
from streams.runtime.metrics import ACCOUNT_STATE_BYTES, ACCOUNTS_QUARANTINED

log = get_logger(__name__)

StateLoader = Callable[[bytes], Any]
StateDumper = Callable[[Any], bytes]

DEFAULT_MAX_STATE_BYTES = 900 * 1024
"""Kafka's default record limit is 1 MB (broker ``message.max.bytes``, producer ``max.request.size``);
the rest is left for the key, headers and the dead letter's own headers."""

STATE_UNREADABLE = "state_unreadable"  # the stored bytes do not decode (corrupt, unknown version, a bug)
STATE_UNWRITABLE = "state_unwritable"  # the encoder refused the live state
STATE_TOO_LARGE = "state_too_large"  # the encoded state is over max_state_bytes
EVALUATION_ERROR = "evaluation_error"  # the engine raised while advancing the account (set by the processor)


@dataclass(frozen=True, slots=True)
class Quarantine:
    """An account whose state was set aside: ``kept`` is the stored state (at most ``max_state_bytes``)."""

    account_id: str
    partition: int
    reason: str
    detail: str
    kept: bytes | None


class StateCache:
    """Live ``AccountState`` objects by account id, with a dirty set flushed once per batch.

    ``store`` is read-only here (a Faust table of UTF-8 ``account_id`` -> state bytes); writes go out through
    the ``flush`` result so the caller can put them on the right changelog partition.
    ``max_clean`` bounds how many clean states stay deserialized in memory (LRU); ``max_state_bytes``
    is the largest state ``flush`` writes (a bigger one is quarantined).
    """

    def __init__(
        self,
        store: Mapping[bytes, bytes],
        new_state: Callable[[], Any],
        loads: StateLoader,
        dumps: StateDumper,
        max_clean: int = 100_000,
        max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
    ) -> None:
        self._store = store
        self._new_state = new_state
        self._loads = loads
        self._dumps = dumps
        self._max_clean = max_clean
        self.max_state_bytes = max_state_bytes
        self._states: OrderedDict[str, Any] = OrderedDict()
        self._partition: dict[str, int] = {}
        # Dirty states, oldest first: account id -> (partition, mark, time.monotonic() when it became dirty).
        self._dirty: dict[str, tuple[int, int, float]] = {}
        self._marks = 0  # the mark of the newest state to become dirty
        self._quarantined: list[Quarantine] = []
        # States flushed but not yet written to the table (the runtime writes a batch's states
        # only once its alerts are delivered, while the next batch is processed): a state evicted
        # meanwhile must be read back from here, not from the table's older value.
        self._unwritten: dict[str, tuple[int, bytes]] = {}  # account id -> (partition, state bytes)

    def __len__(self) -> int:
        return len(self._states)

    def get(self, account_id: str, partition: int) -> Any:
        """The live state of ``account_id`` (loaded from the table, or new); remembers its partition.

        Unreadable stored bytes quarantine the account and return a fresh state.
        """
        state = self._states.get(account_id)
        if state is None:
            raw = self._stored(account_id)
            if raw is None:
                state = self._new_state()
            else:
                try:
                    state = self._loads(raw)
                except Exception as exc:  # noqa: BLE001 - any failure to read one account's state is that account's
                    state = self._set_aside(account_id, partition, STATE_UNREADABLE, _describe(exc), raw)
            self._states[account_id] = state
        else:
            self._states.move_to_end(account_id)
        self._partition[account_id] = partition
        return state

    def load(self, account_id: str, partition: int, raw: bytes) -> Any | None:
        """Decode stored bytes read outside :meth:`get` (the rebuild after recovery); None = quarantined.

        A quarantined account gets a fresh state here (written at the next flush); a readable one is
        not cached (the rebuild reads every account, the cache keeps only what batches touch).
        """
        try:
            return self._loads(raw)
        except Exception as exc:  # noqa: BLE001 - as in get()
            self._states[account_id] = self._set_aside(account_id, partition, STATE_UNREADABLE, _describe(exc), raw)
            self._partition[account_id] = partition
            return None

    def quarantine(self, account_id: str, partition: int, reason: str, detail: str) -> Any:
        """Set ``account_id``'s state aside (the stored bytes are kept) and start it afresh; returns the new state."""
        state = self._set_aside(account_id, partition, reason, detail, self._stored(account_id))
        self._states[account_id] = state
        self._partition[account_id] = partition
        return state

    def mark_dirty(self, account_id: str, partition: int) -> None:
        """Schedule ``account_id``'s state for a flush (a state already dirty keeps its place and mark)."""
        if account_id not in self._dirty:
            self._marks += 1
            self._dirty[account_id] = (partition, self._marks, time.monotonic())

    def flush(self, count: int | None = None) -> dict[int, dict[str, bytes]]:
        """Serialize the ``count`` oldest dirty states (every one when None) once each; returns
        ``{partition: {account_id: state bytes}}``.

        A state the encoder refuses, or one over ``max_state_bytes``, is quarantined and its fresh
        replacement written instead.
        """
        out: dict[int, dict[str, bytes]] = {}
        observe = ACCOUNT_STATE_BYTES.observe
        limit = self.max_state_bytes
        dirty = self._dirty
        everything = count is None or count >= len(dirty)
        taken = list(dirty.items() if everything else islice(dirty.items(), max(count or 0, 0)))
        for account_id, (partition, _, _) in taken:
            try:
                data = self._dumps(self._states[account_id])
            except Exception as exc:  # noqa: BLE001 - an unencodable state is quarantined, whatever the cause
                data = self._dumps(self.quarantine(account_id, partition, STATE_UNWRITABLE, _describe(exc)))
            else:
                if len(data) > limit:
                    detail = f"the encoded state is {len(data)} bytes; the limit is {limit} (PREEMPT_MAX_STATE_BYTES)"
                    data = self._dumps(self.quarantine(account_id, partition, STATE_TOO_LARGE, detail))
            observe(len(data))
            out.setdefault(partition, {})[account_id] = data
            self._unwritten[account_id] = (partition, data)
        if everything:
            dirty.clear()
        else:
            for account_id, _ in taken:
                # A state quarantined just now got a fresh one: it is this flush's write, not dirty.
                dirty.pop(account_id, None)
        self._evict()
        return out

    def written(self, writes: Mapping[int, Mapping[str, bytes]]) -> None:
        """``writes`` (a :meth:`flush` result) are in the table now; a later flush's bytes stay pending."""
        unwritten = self._unwritten
        for accounts in writes.values():
            for account_id, data in accounts.items():
                pending = unwritten.get(account_id)
                if pending is not None and pending[1] is data:
                    del unwritten[account_id]

    @property
    def dirty(self) -> int:
        """How many states are changed in memory and not yet serialized by :meth:`flush`."""
        return len(self._dirty)

    @property
    def dirty_mark(self) -> int:
        """The mark of the newest state to become dirty: a batch that marked its states is covered
        once :attr:`written_mark` reaches the ``dirty_mark`` read after it."""
        return self._marks

    @property
    def written_mark(self) -> int:
        """Every state that became dirty with a mark up to this one is serialized (flushed)."""
        for _, mark, _ in self._dirty.values():
            return mark - 1
        return self._marks

    def dirty_since(self, before: float) -> int:
        """How many dirty states became dirty at or before ``before`` (``time.monotonic()``): they are the oldest."""
        n = 0
        for _, _, since in self._dirty.values():
            if since > before:
                break
            n += 1
        return n

    @property
    def unwritten(self) -> int:
        """How many flushed states are not written to the table yet."""
        return len(self._unwritten)

    def take_quarantined(self) -> list[Quarantine]:
        """The accounts quarantined since the last call (to dead-letter their kept state)."""
        out, self._quarantined = self._quarantined, []
        return out

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the states of partitions this worker no longer owns (the new owner recovers them)."""
        gone = set(partitions)
        for account_id in [a for a, p in self._partition.items() if p in gone]:
            self._states.pop(account_id, None)
            self._partition.pop(account_id, None)
            self._dirty.pop(account_id, None)
        for account_id in [a for a, (p, _) in self._unwritten.items() if p in gone]:
            del self._unwritten[account_id]
        self._quarantined = [q for q in self._quarantined if q.partition not in gone]

    def clear(self) -> None:
        """Forget everything (after a recovery the table is the truth)."""
        self._states.clear()
        self._partition.clear()
        self._dirty.clear()
        self._unwritten.clear()

    def _stored(self, account_id: str) -> bytes | None:
        """The account's state as the table will hold it once the pending writes are made."""
        pending = self._unwritten.get(account_id)
        return pending[1] if pending is not None else self._store.get(account_id.encode())

    def _set_aside(self, account_id: str, partition: int, reason: str, detail: str, kept: bytes | None) -> Any:
        if kept is not None and len(kept) > self.max_state_bytes:  # the dead letter must fit in a record too
            detail += f"; the kept state is cut to its first {self.max_state_bytes} of {len(kept)} bytes"
            kept = bytes(kept[: self.max_state_bytes])
        self._quarantined.append(Quarantine(account_id, partition, reason, detail, kept))
        ACCOUNTS_QUARANTINED.labels(reason=reason).inc()
        log.error(
            "account state quarantined; the account starts afresh",
            account_id=account_id,
            partition=partition,
            reason=reason,
            detail=detail,
            kept_bytes=0 if kept is None else len(kept),
        )
        self.mark_dirty(account_id, partition)  # the fresh state replaces the bad one in the table
        return self._new_state()

    def _evict(self) -> None:
        """Forget the least recently used clean states beyond ``max_clean`` (a dirty one is kept: it
        is written later, from memory)."""
        states = self._states
        excess = len(states) - self._max_clean
        if excess <= 0:
            return
        dirty = self._dirty
        victims: list[str] = []
        for account_id in states:
            if account_id not in dirty:
                victims.append(account_id)
                if len(victims) >= excess:
                    break
        for account_id in victims:
            del states[account_id]
            self._partition.pop(account_id, None)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:499] + "…"
