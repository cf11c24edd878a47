"""Re-read records that Faust acknowledged without handing them to the rules worker.

Offsets of ``preempt.events`` (a non-transactional topic) are contiguous, so a jump between two
records of one partition means records were skipped upstream of the agent (observed with
faust-streaming 0.15: one record in ~80,000, soon after assignment). The records are still in
Kafka; this reads exactly that offset range with a plain consumer (no group, no commits) so the
worker processes them in the same batch instead of losing them.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.runtime.range_reader import RangeReader
from streams.runtime.settings import Settings
from streams.worker.processor import Record


class GapRepair:
    """Fetches ``[start, end)`` of one partition of the events topic on demand."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        timeout_s: float = 10.0,
        isolation_level: Callable[[], str] = lambda: "read_uncommitted",
    ) -> None:
        """``isolation_level``: asked when the side consumer starts (the first read); the worker
        passes its Faust consumer's (``faust_compat.consumer_isolation_level``), so a range reads
        the same records Faust's consumer delivers (read_committed under exactly-once)."""
        self._topic = topic
        # One side consumer (``streams.runtime.range_reader``) serves the worker's gap repair (under
        # the worker's lock) and the watchdog's recordless-tail probe (outside it): one read at a time.
        self._reader = RangeReader(settings, topic, timeout_s=timeout_s, isolation_level=isolation_level)

    async def fetch(self, partition: int, start: int, end: int) -> list[Record]:
        """The records at offsets ``start`` ≤ offset < ``end`` of ``partition`` (bounded wait)."""
        return (await self.read_range(partition, start, end))[0]

    async def read_range(
        self, partition: int, start: int, end: int, *, first_only: bool = False
    ) -> tuple[list[Record], bool]:
        """The records at offsets ``start`` ≤ offset < ``end`` of ``partition``, and whether the
        whole range was read within the bounded wait (``RangeReader.read_range``, which says how
        ranges of transaction markers and offsets retention deleted are read). ``first_only``:
        stop at the first record of the range (whether the range holds any record at all)."""
        msgs, complete = await self._reader.read_range(partition, start, end, first_only=first_only)
        out = []
        for msg in msgs:
            headers = [(k, bytes(v) if v is not None else b"") for k, v in (msg.headers or ())]
            out.append(Record(partition, msg.offset, msg.key, msg.value, headers, self._topic))
        return out, complete

    async def close(self) -> None:
        """Stop the side consumer, if it was started."""
        await self._reader.close()
