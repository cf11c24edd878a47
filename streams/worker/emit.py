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

import time
from collections.abc import Awaitable, MutableMapping, Sequence
from typing import Any

import faust

from schemas.alert import Alert
from streams.runtime.dead_letters import DeadLetterRecord, dead_letter_record
from streams.runtime.metrics import ALERTS, CHANGELOG_WRITES
from streams.worker.partition_scope import PartitionEvents
from streams.worker.processor import FORWARDED_FROM, BatchOutput, DeadLetterOutput, ForwardOutput

JSON_HEADERS = [("content-type", b"application/json")]
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
        # send() only enqueues in the producer (force=True: now, not attached to an offset).
        pending: list[Awaitable[Any]] = []
        for alert in alerts:
            pending.append(
                await self._alerts.send(
                    key=alert.account_id.encode(),
                    value=alert.model_dump_json().encode(),
                    headers=list(JSON_HEADERS),
                    force=True,
                )
            )
            ALERTS.labels(rule=alert.rule_id, severity=alert.severity).inc()
        return pending

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
                await self._events.send(
                    key=forward.account_id.encode(),
                    value=record.value,
                    partition=forward.partition,
                    headers=headers,
                    force=True,
                )
            )
        return pending

    async def send_dead_letters(self, letters: Sequence[DeadLetterOutput]) -> list[Awaitable[Any]]:
        """``letters`` to the DLQ (original key/value/headers + reason headers); returns their delivery futures."""
        now = time.time()
        pending: list[Awaitable[Any]] = []
        for letter in letters:
            dlq = dead_letter(letter, now)
            pending.append(await self._dlq.send(key=dlq.key, value=dlq.value, headers=dlq.headers, force=True))
        return pending
