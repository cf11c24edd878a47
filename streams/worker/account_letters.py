"""Unreadable records of ``preempt.accounts``: dead-lettered once (reason ``invalid_account``), across
restarts and rebalances.

Every worker reads every partition of the accounts topic (a global table), and a worker that reads it
from its start again — the ``memory://`` store after a restart or a rebalance, a worker joining the
group, a RocksDB store on a new disk — sees every bad record still on the compacted topic once more.
Before, each such read wrote the record's dead letter again, so the DLQ filled with duplicates at each
restart.

Why a mark per partition, and where it lives: the accounts topic has no consumer-group offset (Faust
reads a global table's changelog without committing), so "what was already dead-lettered" must be kept
by the workers themselves. The worker whose events partition *p* is active (as before, so a group
writes one dead letter, not one each) writes, with each dead letter of accounts partition *p*, the
next offset past it into the ``partition-progress`` table under ``accounts-dead-lettered:<p>``, on
partition *p*'s changelog (streams/worker/progress.py). That table is recovered with the partition by
whoever takes it next — after a restart, a rebalance, on another disk — so the new owner dead-letters
only the bad records at or past the mark: each record's offset is its identity on the topic, and a
re-read shows the same offsets again.

Records read while the worker holds no recovered assignment (at recovery: the whole topic again on the
``memory://`` store; during a rebalance) wait here until the rebuild after the assignment; those of
partitions the worker does not own are kept (the newest ``pending_per_partition`` of each) in case it
gets the partition later: a record that arrives during a rebalance is read by every worker while no
one owns its partition. A worker that crashes between a dead letter and its mark reaching the broker
writes that dead letter again (at least once, never lost).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

from streams.runtime.dead_letters import DeadLetterRecord, dead_letter_record
from streams.runtime.faust_compat import publish
from streams.runtime.logs import get_logger
from streams.runtime.metrics import (
    CHANGELOG_WRITES,
    EVENTS_DEAD_LETTERED,
    INVALID_ACCOUNT_LETTER_FAILURES,
    INVALID_ACCOUNT_RECORDS,
)
from streams.worker.progress import PROGRESS_TABLE

log = get_logger(__name__)

INVALID_ACCOUNT = "invalid_account"  # dead-letter reason: a preempt.accounts record the worker cannot read
MARK_PREFIX = "accounts-dead-lettered:"  # + the partition: the progress table's key of its mark
PENDING_PER_PARTITION = 1000


def mark_key(partition: int) -> bytes:
    """The progress table's key holding the next offset of accounts ``partition`` not yet dead-lettered."""
    return f"{MARK_PREFIX}{partition}".encode()


class AccountDeadLetters:
    """Dead-letters each unreadable account record once on the events dead-letter topic.

    Called with the record's Faust ``Message`` and what is wrong (``AccountDirectory``'s sink); the
    worker runtime calls :meth:`hold` when its partitions are revoked and :meth:`resume` with its
    partitions once their tables are recovered. ``marks`` is the progress table, ``scope(p)`` makes a
    table write go to partition ``p``'s changelog.
    """

    def __init__(
        self,
        dlq: Any,
        marks: MutableMapping[bytes, bytes],
        scope: Callable[[int], AbstractContextManager[None]],
        pending_per_partition: int = PENDING_PER_PARTITION,
    ) -> None:
        self._dlq = dlq
        self._marks = marks
        self._scope = scope
        self._cap = pending_per_partition
        self._owned: dict[int, int] = {}  # partition -> next offset not yet dead-lettered, while recovered
        self._pending: dict[int, deque[tuple[Any, str]]] = {}
        self._dropped: dict[int, tuple[int, int]] = {}  # partition -> (records dropped, highest offset)
        self._sending: set[asyncio.Future[None]] = set()

    def __call__(self, message: Any, problem: str) -> None:
        partition = message.partition
        if partition in self._owned:
            self._letter(partition, message, problem)
            return
        waiting = self._pending.setdefault(partition, deque())
        if len(waiting) >= self._cap:
            old = waiting.popleft()[0]
            count, highest = self._dropped.get(partition, (0, -1))
            self._dropped[partition] = (count + 1, max(highest, old.offset))
        waiting.append((message, problem))

    def hold(self) -> None:
        """Partitions revoked: records wait until the next :meth:`resume` (their owner may change)."""
        self._owned.clear()

    def resume(self, partitions: Iterable[int]) -> None:
        """The worker's events ``partitions``, their tables recovered: read their marks and dead-letter the
        waiting records at or past them."""
        self._owned.clear()
        for partition in sorted(partitions):
            self._owned[partition] = self._read_mark(partition)
            waiting = self._pending.pop(partition, ())
            count, highest = self._dropped.pop(partition, (0, -1))
            if count and highest >= self._owned[partition]:
                INVALID_ACCOUNT_LETTER_FAILURES.labels(reason="buffer_full").inc(count)
                log.error(
                    "invalid account records not dead-lettered: more arrived while no worker held their "
                    "partition than a worker keeps",
                    partition=partition,
                    dropped=count,
                    kept=self._cap,
                )
            for message, problem in sorted(waiting, key=lambda item: item[0].offset):
                self._letter(partition, message, problem)

    def _read_mark(self, partition: int) -> int:
        raw = self._marks.get(mark_key(partition))
        try:
            return int(raw) if raw is not None else 0
        except ValueError:
            log.error("unreadable account dead-letter mark ignored", partition=partition, value=repr(raw)[:100])
            return 0

    def _letter(self, partition: int, message: Any, problem: str) -> None:
        """Dead-letter ``message`` unless an earlier owner of its partition did (its offset is before the mark)."""
        offset = message.offset
        if offset < self._owned[partition]:
            return
        self._owned[partition] = offset + 1
        with self._scope(partition):
            self._marks[mark_key(partition)] = str(offset + 1).encode()
        CHANGELOG_WRITES.labels(table=PROGRESS_TABLE).inc()
        INVALID_ACCOUNT_RECORDS.inc()
        self._emit(
            dead_letter_record(
                key=message.key,
                value=message.value,
                headers=message.headers or [],
                reason=INVALID_ACCOUNT,
                detail=problem,
                field=None,
                source_topic=message.topic,
                partition=partition,
                offset=offset,
                at=time.time(),
            )
        )

    def _emit(self, letter: DeadLetterRecord) -> None:
        task = asyncio.ensure_future(self._send(letter.key, letter.value, letter.headers))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, key: bytes | None, value: bytes | None, headers: Any) -> None:
        try:
            await (await publish(self._dlq, key=key, value=value, headers=headers))
        except Exception as exc:  # noqa: BLE001 - logged; the account's alerts go on without its context
            INVALID_ACCOUNT_LETTER_FAILURES.labels(reason="write_failed").inc()
            log.error("invalid account record could not be dead-lettered", error=f"{type(exc).__name__}: {exc}"[:500])
            return
        EVENTS_DEAD_LETTERED.labels(reason=INVALID_ACCOUNT).inc()
