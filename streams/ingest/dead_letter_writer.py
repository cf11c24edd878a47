"""Writes the dead letters of rejected ingest items in the background, so that no answer waits on them.

``gate.queue_dead_letters`` hands a request's letters to ``DeadLetterWriter.submit`` once its
accepted records are stored, and the handler answers at once: the answer already lists the
rejections and the accepted events are in Kafka, so a slow or unreachable dead-letter topic must
not delay it (an SDK that times out resends calls that were stored). Each write gets
``PREEMPT_INGEST_KAFKA_TIMEOUT_SECONDS``; it is counted in
``preempt_ingest_dead_letters_total{outcome="written"}``, or ``outcome="failed"`` with an ERROR log.

The writer holds its pending writes (asyncio keeps only weak references to tasks) and the bytes
they carry, bounded by ``MAX_PENDING_BYTES``: past it, new letters are counted failed at once
rather than piling up in memory while Kafka is slow. The app's cleanup calls ``drain`` after the
last request is answered and before the sink stops: it waits for the pending writes at most the
same timeout, then cancels the rest, which are counted failed and logged like any other failure:
their letters may be lost (a cancelled write may already have reached the broker, or go out while
the producer flushes on stop). A write that does not end within ``CANCELLED_WAIT_SECONDS`` of its
cancellation does not hold the shutdown: one ERROR names how many letters it leaves behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from streams.ingest.sink import EventSink
from streams.ingest.write_health import WRITE_DEAD_LETTERS, IngestWriteHealth
from streams.runtime.dead_letters import DeadLetterRecord
from streams.runtime.logs import get_logger
from streams.runtime.metrics import INGEST_DEAD_LETTERS

log = get_logger(__name__)

# Rejected items waiting for Kafka's acknowledgement, in bytes (keys, values, headers). Each write
# lasts at most the Kafka timeout, so this is ~6 MiB/s of rejected items with Kafka unreachable
# for 10 s before letters are counted failed instead of held.
MAX_PENDING_BYTES = 64 * 1024 * 1024
FAILED_LOG = "ingest could not write rejected items to the dead-letter topic"
CANCELLED_WAIT_SECONDS = 1.0
"""How long the drain waits for the writes it cancelled to end (a write that ignores its cancellation,
such as a client not honouring it, must not hold the shutdown)."""


def letter_bytes(letter: DeadLetterRecord) -> int:
    """What a letter holds in memory until it is written: key, value and headers."""
    headers = sum(len(name) + len(value) for name, value in letter.headers)
    return len(letter.key or b"") + len(letter.value or b"") + headers


class DeadLetterWriter:
    """Background writes of dead letters to the sink; built by ``create_ingest_app``, one per app."""

    def __init__(
        self,
        sink: EventSink,
        timeout_s: float,
        *,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        health: IngestWriteHealth | None = None,
        topic: str = "",
    ) -> None:
        self._sink = sink
        self._health = health  # /readyz "degraded" while every write fails (write_health)
        self._topic = topic
        self._timeout_s = timeout_s
        self._max_pending_bytes = max_pending_bytes
        self._pending: dict[asyncio.Task[None], int] = {}  # each write and how many letters it carries
        self._given_up: set[asyncio.Task[None]] = set()  # writes drain() stopped waiting for (counted failed)
        self._pending_bytes = 0
        self._stopping = False

    @property
    def pending(self) -> int:
        """Writes submitted and not finished."""
        return len(self._pending)

    def submit(self, letters: Sequence[DeadLetterRecord], *, source: str, route: str) -> None:
        """Start writing ``letters`` (a request's, from API key ``source`` on ``route``) and return at once."""
        if not letters:
            return
        size = sum(letter_bytes(letter) for letter in letters)
        if self._stopping:
            self._failed(letters, source, route, "ingest is stopping")
            return
        if self._pending_bytes + size > self._max_pending_bytes:
            self._failed(
                letters, source, route, f"more than {self._max_pending_bytes} bytes of dead letters wait for Kafka"
            )
            return
        self._pending_bytes += size
        task = asyncio.create_task(self._write(letters, source, route))
        self._pending[task] = len(letters)
        # Counted here, not in _write: a task cancelled before it ran never enters its coroutine.
        task.add_done_callback(partial(self._finished, letters, source, route, size))

    async def flush(self) -> None:
        """Wait until every write submitted so far has finished (written or counted failed)."""
        while self._pending:
            await asyncio.wait(set(self._pending))

    async def drain(self) -> None:
        """At shutdown: refuse new letters, wait for the pending writes at most the Kafka timeout, cancel the rest."""
        self._stopping = True
        if not self._pending:
            return
        log.info("ingest stopping: waiting for dead-letter writes", writes=len(self._pending))
        _, late = await asyncio.wait(set(self._pending), timeout=self._timeout_s)
        for task in late:
            task.cancel()
        if not late:
            return
        # Each cancelled write counts and logs its letters as it ends; one that does not end soon is left behind.
        _, stuck = await asyncio.wait(late, timeout=CANCELLED_WAIT_SECONDS)
        if stuck:
            # Counted failed now (the process is about to exit; PreemptIngestDeadLettersFailing sees them)
            # and forgotten: should one of them end after all, it counts nothing more.
            letters = sum(self._pending.pop(task, 0) for task in stuck)
            self._given_up.update(stuck)
            INGEST_DEAD_LETTERS.labels(outcome="failed").inc(letters)
            log.error(
                "ingest stopping without waiting for dead-letter writes that did not end when cancelled; "
                "their letters may be lost",
                writes=len(stuck),
                dead_letters=letters,
            )

    async def _write(self, letters: Sequence[DeadLetterRecord], source: str, route: str) -> None:
        error: str | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._sink.send_dead_letters(letters)
        except TimeoutError:
            error = f"Kafka did not acknowledge within {self._timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - the answer stands; the loss is logged and counted, never silent
            error = str(exc) or type(exc).__name__
        if asyncio.current_task() in self._given_up:
            return  # given up at shutdown: counted failed then
        if error is not None:
            self._failed(letters, source, route, error)
            if self._health is not None:
                self._health.write_failed(WRITE_DEAD_LETTERS, self._topic, error)
        else:
            INGEST_DEAD_LETTERS.labels(outcome="written").inc(len(letters))
            if self._health is not None:
                self._health.succeeded(self._topic)

    def _finished(
        self, letters: Sequence[DeadLetterRecord], source: str, route: str, size: int, task: asyncio.Task[None]
    ) -> None:
        self._pending.pop(task, None)
        self._pending_bytes -= size
        if task in self._given_up:
            self._given_up.discard(task)
            return
        if task.cancelled():
            self._failed(letters, source, route, "ingest stopped before Kafka acknowledged")

    @staticmethod
    def _failed(letters: Sequence[DeadLetterRecord], source: str, route: str, error: str) -> None:
        INGEST_DEAD_LETTERS.labels(outcome="failed").inc(len(letters))
        log.error(FAILED_LOG, source=source, route=route, dead_letters=len(letters), error=error)
