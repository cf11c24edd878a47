"""Read one offset range of one partition with a side consumer (no group, no commits), bounded.

Three callers: the rules worker's gap repair (``streams.worker.gap_repair``: records Faust skipped,
re-read and processed), the recordless-tail probe of both watchdogs (does ``[position, end)``
hold any record at all, or only the commit/abort markers of a transactional producer, which take
an offset each and are never given to a consumer), and the notifier's recall of its ``inhibit_rules``
sources after a restart or a rebalance (the alerts of the last inhibit horizon, :meth:`offsets_since`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from streams.runtime.kafka_clients import aiokafka_config
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings

log = get_logger(__name__)


class RangeReader:
    """Reads ``[start, end)`` of one partition of ``topic`` on demand, one read at a time."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        timeout_s: float = 10.0,
        isolation_level: Callable[[], str] = lambda: "read_uncommitted",
        reader: str = "the worker",
        *,
        report_deleted: bool = True,
    ) -> None:
        """``isolation_level``: asked when the side consumer starts (the first read); pass the
        Faust consumer's (``faust_compat.consumer_isolation_level``), so a range holds the records
        Faust's consumer delivers (read_committed under exactly-once). ``reader``: who lost the
        records retention deleted, in the ERROR line that names them. ``report_deleted=False``: no such line —
        for a caller that logs every range it could not read whole itself, counted (the notifier: one line
        per loss, where this line, the re-read's and its own made three)."""
        self._settings = settings
        self._topic = topic
        self._isolation_level = isolation_level
        self._timeout_s = timeout_s
        self._reader = reader
        self._report_deleted = report_deleted
        self._consumer: AIOKafkaConsumer | None = None
        self._closed = False
        # One side consumer serves every caller (the worker's gap repair under the worker's lock,
        # the watchdog's recordless-tail probe outside it): one read at a time.
        self._lock = asyncio.Lock()

    @property
    def topic(self) -> str:
        """The topic whose partitions this reads."""
        return self._topic

    @property
    def consumer_started(self) -> bool:
        """Whether a side consumer is started and kept (none before the first read, after a failed start
        or after close)."""
        return self._consumer is not None

    async def read_range(
        self, partition: int, start: int, end: int, *, first_only: bool = False
    ) -> tuple[list[Any], bool]:
        """aiokafka's records at offsets ``start`` ≤ offset < ``end`` of ``partition``, and whether
        the whole range was read (the consumer's position reached ``end``) within the bounded wait.
        ``first_only``: stop at the first record of the range (whether the range holds any record
        at all; a stalled partition's backlog is not read and copied).

        A range can hold offsets without records: the commit or abort markers of a transactional
        producer take an offset each and are never returned. Stopping at the position, not at the
        last record, reads such a range at once (it waited the whole timeout, 10 s) and tells an
        empty range from a slow one.

        Offsets retention already deleted (``start`` below the partition's log start offset) are
        never complete: an ERROR names them, and the records still in Kafka after them are read
        (not ``first_only``). The side consumer does not reset to the end, which read such a
        range as complete and empty (markers only): lost records neither reported nor counted.
        """
        async with self._lock:
            if self._closed:  # the app is stopping: nothing is read, and no consumer is started again
                return [], False
            consumer = await self._ensure_consumer()
            tp = TopicPartition(self._topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            out: list[Any] = []
            limit = 1 if first_only else end - start
            deadline = time.monotonic() + self._timeout_s
            lost = False
            while time.monotonic() < deadline:
                try:
                    batch = await consumer.getmany(tp, timeout_ms=500, max_records=limit)
                except OffsetOutOfRangeError:
                    if self._report_deleted:
                        log.error(
                            f"records deleted from Kafka (retention) before {self._reader} read them: lost",
                            topic=self._topic,
                            partition=partition,
                            first_missing=start,
                            next_seen=end,
                        )
                    if lost or first_only:
                        return out, False
                    lost = True
                    await consumer.seek_to_beginning(tp)  # what is left of the range is still read
                    continue
                for msg in batch.get(tp, []):
                    if start <= msg.offset < end:
                        out.append(msg)
                        if first_only:
                            return out, True
                if (out and out[-1].offset >= end - 1) or await consumer.position(tp) >= end:
                    return out, not lost
            return out, False

    async def offsets_since(self, partition: int, since_ms: int) -> tuple[int, int]:
        """``(first, end)`` of ``partition``: the offset of its first record stamped at or after ``since_ms``
        (epoch milliseconds; ``end`` when none is) and its end offset, for :meth:`read_range`. Bounded by the
        read timeout (``TimeoutError``)."""
        async with self._lock:
            if self._closed:
                return 0, 0
            consumer = await self._ensure_consumer()
            tp = TopicPartition(self._topic, partition)
            async with asyncio.timeout(self._timeout_s):
                ends = await consumer.end_offsets([tp])
                found = await consumer.offsets_for_times({tp: max(since_ms, 0)})
            end = ends[tp]
            first = found.get(tp)
            return (end if first is None else min(first.offset, end)), end

    async def holds_no_record(self, partition: int, start: int, end: int) -> bool:
        """True when ``[start, end)`` of ``partition`` was read to its end within the bounded wait
        and holds no record (transaction markers only). False when a record is there, or the
        range could not be read in time (a slow broker, an open transaction under read_committed)."""
        if end <= start:
            return False
        got, complete = await self.read_range(partition, start, end, first_only=True)
        return complete and not got

    async def close(self) -> None:
        """Stop the side consumer, if it was started, after the read under way; later reads read nothing."""
        async with self._lock:
            self._closed = True
            if self._consumer is not None:
                consumer, self._consumer = self._consumer, None
                await consumer.stop()

    async def _ensure_consumer(self) -> AIOKafkaConsumer:
        """The side consumer, started. Kept only once it started: a start that failed (a broker away, a
        refused login) is stopped and raised, and the next read starts afresh (a consumer kept unstarted
        made every later read raise AttributeError, which crashed the notifier's watchdog timer). The
        start is bounded by the read timeout (TimeoutError)."""
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers,
                enable_auto_commit=False,
                group_id=None,
                # An offset retention deleted raises (OffsetOutOfRangeError) instead of jumping to
                # the end, where the range read as complete and empty.
                auto_offset_reset="none",
                isolation_level=self._isolation_level(),
                **aiokafka_config(self._settings),
            )
            try:
                async with asyncio.timeout(self._timeout_s):
                    await consumer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                raise
            self._consumer = consumer
        return self._consumer
