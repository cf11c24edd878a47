"""Perform the I/O a processed batch asks for: state and clock writes, dead letters, alerts.

Order matters for at-least-once: alerts and dead letters are sent and *delivered* before the
table writes that record their events as seen (the caller awaits ``send``'s futures first). The
other order lost an alert when a SIGKILL landed between the two: the state's changelog record
(with the event's id in the dedup set) reached the broker, the alert did not, and the restarted
worker dropped the re-read event as a duplicate. Everything is handed to the producer before the
batch's offsets are acked, and Faust flushes the producer before it commits offsets, so a crash
can repeat work (same ``alert_id``s) but never lose it. Likewise a partition's clock is written
only after the account states of its batch are on the broker: restored ahead of the restored
states, it would make the restarted worker drop the re-read events of a lost state write as late.

The runtime (``streams.worker.agents``) performs this order per batch in an output stage that runs
while the next poll is processed; stages write states, clocks and acks in batch order, and a
revocation waits for every stage in flight.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, MutableMapping, Sequence
from typing import Any

import faust
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

from schemas.alert import Alert
from streams.runtime.dead_letters import (
    CUT_DEAD_LETTER_BYTES,
    NO_POSITION,
    REASON,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    DeadLetterRecord,
    cut_dead_letter,
    dead_letter_record,
)
from streams.runtime.faust_compat import publish
from streams.runtime.logs import get_logger
from streams.runtime.metrics import ALERTS, CHANGELOG_WRITES, EVENTS_DEAD_LETTERED
from streams.worker.partition_scope import PartitionEvents
from streams.worker.processor import FORWARDED_FROM, BatchOutput, DeadLetterOutput, ForwardOutput

log = get_logger(__name__)

JSON_HEADERS = [("content-type", b"application/json")]
ALERT_TOO_LARGE = "alert_too_large"  # the broker (or the producer) refused an alert record as too large
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
MAX_FORWARDED_HEADER_BYTES = 64 * 1024  # a forwarded event's own headers beyond this are replaced by content-type


def dead_letter(letter: DeadLetterOutput, rejected_at: float) -> DeadLetterRecord:
    """The DLQ record of ``letter``: original key, value and headers plus the ``preempt.dlq.*`` verdict."""
    record = letter.record
    return dead_letter_record(
        key=record.key,
        value=record.value,
        headers=record.headers,
        reason=letter.reason,
        detail=letter.detail,
        field=letter.field,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        at=rejected_at,
    )


class OutputWriter:
    """Applies a :class:`BatchOutput` through the app's tables and topics."""

    def __init__(
        self,
        partitions: PartitionEvents,
        state_table: MutableMapping[bytes, bytes],
        clock_table: MutableMapping[bytes, bytes],
        alerts_topic: faust.TopicT,
        dlq_topic: faust.TopicT,
        events_topic: faust.TopicT | None = None,
    ) -> None:
        self._partitions = partitions
        self._state = state_table
        self._clock = clock_table
        self._alerts = alerts_topic
        self._dlq = dlq_topic
        self._events = events_topic
        self._resend_lock = asyncio.Lock()

    def write_states(self, out: BatchOutput) -> None:
        """One changelog record per touched account (synchronous: handed to the producer)."""
        for partition, writes in out.state_writes.items():
            with self._partitions.scope(partition):
                for account_id, data in writes.items():
                    self._state[account_id.encode()] = data
            CHANGELOG_WRITES.labels(table="account-state").inc(len(writes))

    def write_clocks(self, out: BatchOutput) -> None:
        """One changelog record per moved partition clock (synchronous: handed to the producer)."""
        for partition, max_event_time in out.clock_writes.items():
            with self._partitions.scope(partition):
                self._clock[str(partition).encode()] = repr(max_event_time).encode()
            CHANGELOG_WRITES.labels(table="partition-clock").inc()

    async def send(self, out: BatchOutput) -> list[Awaitable[Any]]:
        """Alerts keyed by account, then dead letters to the DLQ (original key/value/headers + reason headers).

        Returns the delivery futures: awaiting them means the broker has the records.
        """
        return [*await self.send_alerts(out.alerts), *await self.send_dead_letters(out.dead_letters)]

    async def send_alerts(self, alerts: Sequence[Alert]) -> list[Awaitable[Any]]:
        """``alerts`` to the alerts topic, keyed by account; returns their delivery futures."""
        # publish() only enqueues in the producer (now, not attached to an offset) and returns the record's own
        # FutureMessage: awaiting that one reads a refusal (faust_compat section 20).
        pending: list[Awaitable[Any]] = []
        for alert in alerts:
            value = alert.model_dump_json().encode()
            try:
                sent = await publish(
                    self._alerts, key=alert.account_id.encode(), value=value, headers=list(JSON_HEADERS)
                )
            except _TOO_LARGE as exc:  # over the producer's max_request_size: refused before sending
                pending.append(asyncio.ensure_future(self._alert_too_large(alert, value, exc)))
                continue
            pending.append(asyncio.ensure_future(self._alert_delivered(alert, value, sent)))
        return pending

    async def _alert_delivered(self, alert: Alert, value: bytes, sent: Awaitable[Any]) -> None:
        """Await ``alert``'s delivery; an alert the broker refuses as too large is dead-lettered.

        A topic's ``max.message.bytes`` (a managed Kafka's is often 1 MB, or set lower per topic)
        below an alert's size (a long playbook, large evidence) failed the whole batch: the worker
        stopped, and stopped again on the same alert after every restart.
        """
        try:
            await sent
        except _TOO_LARGE:
            # The limit is on a record *batch*: alerts that fit were refused with a large one that
            # shared their batch. Sent again one at a time, each travels alone (aiokafka does not
            # split a refused batch as Kafka's Java producer does).
            async with self._resend_lock:
                try:
                    await (
                        await publish(
                            self._alerts, key=alert.account_id.encode(), value=value, headers=list(JSON_HEADERS)
                        )
                    )
                except _TOO_LARGE as again:
                    await self._alert_too_large(alert, value, again)
                    return
        ALERTS.labels(rule=alert.rule_id, severity=alert.severity).inc()

    async def _alert_too_large(self, alert: Alert, value: bytes, exc: BaseException) -> None:
        """Dead-letter an alert Kafka refused as too large: the alert itself (cut to fit), or, if the
        dead-letter topic refuses that too, its ids; counted and logged. Raises when even that fails."""
        topic = self._alerts.get_topic_name()
        detail = (
            f"alert of {len(value)} bytes refused by Kafka as too large for {topic} ({type(exc).__name__}); "
            "shorten the rule's playbook or raise the topic's max.message.bytes"
        )
        letter = dead_letter_record(
            key=alert.account_id.encode(),
            value=value,
            headers=JSON_HEADERS,
            reason=ALERT_TOO_LARGE,
            detail=detail,
            field=None,
            source_topic=topic,
            partition=NO_POSITION,
            offset=NO_POSITION,
            at=time.time(),
        )
        try:
            await (await publish(self._dlq, key=letter.key, value=letter.value, headers=letter.headers))
        except _TOO_LARGE:
            ids = {k: getattr(alert, k) for k in ("alert_id", "rule_id", "kind", "severity", "account_id", "user_id")}
            summary = json.dumps({**ids, "fired_at": alert.fired_at, "alert_bytes": len(value)})
            await (await publish(self._dlq, key=letter.key, value=summary.encode(), headers=letter.headers))
        EVENTS_DEAD_LETTERED.labels(reason=ALERT_TOO_LARGE).inc()
        log.error(
            "alert too large for Kafka; dead-lettered",
            alert_id=alert.alert_id,
            rule_id=alert.rule_id,
            account_id=alert.account_id,
            alert_bytes=len(value),
            topic=topic,
            error=type(exc).__name__,
        )

    async def send_forwards(self, forwards: Sequence[ForwardOutput]) -> list[Awaitable[Any]]:
        """``forwards`` back to the events topic, each on its account's partition, keyed by
        ``account_id``, with its value and headers unchanged (plus ``preempt.forwarded.from``:
        ``partition/offset`` of the original); returns their delivery futures."""
        if not forwards:
            return []
        if self._events is None:
            raise RuntimeError("OutputWriter built without the events topic cannot forward events")
        pending: list[Awaitable[Any]] = []
        for forward in forwards:
            record = forward.record
            headers = [(k, v) for k, v in record.headers if k != FORWARDED_FROM]
            if (
                sum(len(k.encode("utf-8", "surrogatepass")) + len(v or b"") for k, v in headers)
                > MAX_FORWARDED_HEADER_BYTES
            ):
                headers = list(JSON_HEADERS)  # huge headers would make the record too large to send
            headers.append((FORWARDED_FROM, f"{record.partition}/{record.offset}".encode()))
            pending.append(
                await publish(
                    self._events,
                    key=forward.account_id.encode(),
                    value=record.value,
                    partition=forward.partition,
                    headers=headers,
                )
            )
        return pending

    async def send_dead_letters(self, letters: Sequence[DeadLetterOutput]) -> list[Awaitable[Any]]:
        """``letters`` to the DLQ (original key/value/headers + reason headers); returns their delivery futures.

        A dead letter Kafka refuses as too large for the dead-letter topic is written cut to fit
        (:meth:`_dead_letter_too_large`).
        """
        now = time.time()
        pending: list[Awaitable[Any]] = []
        for letter in letters:
            dlq = dead_letter(letter, now)
            try:
                sent = await publish(self._dlq, key=dlq.key, value=dlq.value, headers=dlq.headers)
            except _TOO_LARGE as exc:  # over the producer's max_request_size: refused before sending
                pending.append(asyncio.ensure_future(self._dead_letter_too_large(dlq, exc)))
                continue
            pending.append(asyncio.ensure_future(self._dead_letter_delivered(dlq, sent)))
        return pending

    async def _dead_letter_delivered(self, letter: DeadLetterRecord, sent: Awaitable[Any]) -> None:
        """Await ``letter``'s delivery; one the broker refuses as too large is sent alone, then cut to fit."""
        try:
            await sent
        except _TOO_LARGE:
            # The limit is on a record batch: a dead letter that fits may have shared a refused batch.
            async with self._resend_lock:
                try:
                    await (await publish(self._dlq, key=letter.key, value=letter.value, headers=letter.headers))
                except _TOO_LARGE as again:
                    await self._dead_letter_too_large(letter, again)

    async def _dead_letter_too_large(self, letter: DeadLetterRecord, exc: BaseException) -> None:
        """Write ``letter`` cut to fit a dead-letter topic whose ``max.message.bytes`` is below it.

        Without this the batch failed and the worker stopped, and stopped again on the same record
        after every restart: one rejected record stopped the partition for good. The verdict headers
        (reason, source topic, partition, offset) always stay, so the original can be found in the
        source topic while it is retained. Raises when even the verdict alone is refused.
        """
        topic = self._dlq.get_topic_name()
        original = len(letter.value or b"")
        for max_bytes in CUT_DEAD_LETTER_BYTES:
            smaller = cut_dead_letter(letter, max_bytes)
            try:
                await (await publish(self._dlq, key=smaller.key, value=smaller.value, headers=smaller.headers))
            except _TOO_LARGE as again:
                exc = again
                continue
            headers = dict(letter.headers)
            log.warning(
                "dead letter too large for the dead-letter topic; written cut",
                topic=topic,
                reason=headers.get(REASON, b"").decode("utf-8", "replace"),
                source_partition=headers.get(SOURCE_PARTITION, b"").decode("utf-8", "replace"),
                source_offset=headers.get(SOURCE_OFFSET, b"").decode("utf-8", "replace"),
                value_bytes=original,
                kept_bytes=len(smaller.value or b""),
                error=type(exc).__name__,
                remedy=f"raise max.message.bytes of {topic} to keep whole records",
            )
            return
        raise exc
