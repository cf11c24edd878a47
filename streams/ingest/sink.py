"""Where accepted ingest records go: a small protocol, and its Kafka implementation on aiokafka.

Events go to ``preempt.events``; account patches from group calls go to
``preempt.accounts.updates``, which ``streams.ingest.account_merger`` folds into ``preempt.accounts``;
rejected items go to ``preempt.events.dlq`` as dead letters (``streams.runtime.dead_letters``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

from streams.runtime.dead_letters import DeadLetterRecord

CONTENT_TYPE_HEADER = ("content-type", b"application/json")


class EventSink(Protocol):
    """Receives the validated (key, value) records of one request.

    ``send_many`` returns once every record is durably written (acks=all), or raises; the ingest
    app answers 202 only after it returns, so a 202 means the events are in Kafka.
    """

    async def start(self) -> None:
        """Connect; called once when the app starts."""

    async def stop(self) -> None:
        """Flush and disconnect; called once when the app stops."""

    async def send_many(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Write ``records`` to the events topic, keyed by account."""

    async def send_account_updates(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Write account patches (group calls) to the account-updates topic, keyed by account."""

    async def send_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> None:
        """Write the dead letters of rejected items to the events dead-letter topic, with their headers.

        Called after the request's accepted records are written (and for a request with none);
        returns once every letter is acknowledged, or raises.
        """


class KafkaEventSink:
    """Sends records to ``topic`` with aiokafka, waiting for every acknowledgement."""

    def __init__(
        self,
        bootstrap_servers: list[str],
        topic: str,
        *,
        max_event_bytes: int,
        linger_ms: int = 5,
        account_updates_topic: str | None = None,
        dead_letter_topic: str | None = None,
        security: Mapping[str, Any] | None = None,
        metadata_max_age_ms: int = 300_000,
    ) -> None:
        self.topic = topic
        self.account_updates_topic = account_updates_topic
        self.dead_letter_topic = dead_letter_topic
        self._config: dict[str, Any] = {
            **(security or {}),  # streams.runtime.kafka_clients.aiokafka_config(settings)
            "bootstrap_servers": bootstrap_servers,
            "client_id": "preempt-ingest",
            "acks": "all",
            "linger_ms": linger_ms,
            "max_request_size": max(1024 * 1024, max_event_bytes * 4),
            # streams.runtime.kafka_clients.metadata_max_age_ms: partitions added, a topic made again
            "metadata_max_age_ms": metadata_max_age_ms,
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect to the cluster (the producer must be built inside the running event loop)."""
        self._producer = AIOKafkaProducer(**self._config)
        await self._producer.start()

    async def stop(self) -> None:
        """Flush what is pending and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send_many(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Queue every record, then wait for all acknowledgements (one batch round trip, not one per record)."""
        await self._send(self.topic, records)

    async def send_account_updates(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Like ``send_many``, to the account-updates topic."""
        if self.account_updates_topic is None:
            raise RuntimeError("the Kafka sink has no account-updates topic")
        await self._send(self.account_updates_topic, records)

    async def send_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> None:
        """Like ``send_many``, to the dead-letter topic, each letter with its own headers."""
        if self.dead_letter_topic is None:
            raise RuntimeError("the Kafka sink has no dead-letter topic")
        await self._send(self.dead_letter_topic, letters)

    async def _send(self, topic: str, records: Sequence[tuple[bytes, bytes]] | Sequence[DeadLetterRecord]) -> None:
        if self._producer is None:
            raise RuntimeError("the Kafka sink is not started")
        producer = self._producer
        futures = []
        for record in records:
            if isinstance(record, DeadLetterRecord):
                key, value, headers = record.key, record.value, record.headers
            else:
                (key, value), headers = record, [CONTENT_TYPE_HEADER]
            futures.append(await producer.send(topic, key=key, value=value, headers=headers))
        await asyncio.gather(*futures)
