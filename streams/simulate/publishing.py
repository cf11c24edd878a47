"""Publishing a simulation to Kafka: account records to the compacted ``preempt.accounts`` topic and
events to ``preempt.events``, both keyed by ``account_id`` (kafka-python, batched)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kafka import KafkaProducer

from schemas.event import Event
from streams.runtime.delivery_tally import DeliveryTally, close_producer
from streams.runtime.kafka_clients import kafka_python_bootstrap, kafka_python_config, metadata_max_age_ms
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames, ensure_topics
from streams.simulate.accounts import SimAccount
from streams.simulate.files import account_line, event_line

_HEADERS = [("content-type", b"application/json")]
log = get_logger(__name__)


class KafkaSink:
    """A batched producer for one deployment's accounts and events topics."""

    def __init__(self, settings: Settings, producer: Any | None = None) -> None:
        ensure_topics(settings)
        self.topics = TopicNames.from_settings(settings)
        self.producer = producer or KafkaProducer(
            bootstrap_servers=kafka_python_bootstrap(settings),
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
            client_id="preempt-simulate",
            metadata_max_age_ms=metadata_max_age_ms(settings),
            **kafka_python_config(settings),
        )
        self.tally = DeliveryTally()

    def _send(self, topic: str, key: str, value: bytes) -> None:
        future = self.producer.send(topic, key=key.encode(), value=value.rstrip(b"\n"), headers=_HEADERS)
        self.tally.watch(future)
        future.add_errback(_log_failure)

    def publish_accounts(self, accounts: Iterable[SimAccount]) -> int:
        """Send every account record (the compacted topic keeps the latest per account)."""
        count = 0
        for acc in accounts:
            self._send(self.topics.accounts, acc.account_id, account_line(acc))
            count += 1
        return count

    def publish_event(self, event: Event) -> int:
        """Send one event keyed by its account; returns its size in bytes."""
        line = event_line(event)
        self._send(self.topics.events, event.account_id, line)
        return len(line)

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush what is buffered and close; failures were counted in ``tally`` and logged, and what
        Kafka did not acknowledge within ``timeout_s`` (a broker gone for good) is left in
        ``tally.unacknowledged``, for the command's one line: never raised."""
        if not close_producer(self.producer, timeout_s):
            log.error("simulate: Kafka did not acknowledge every record in time", seconds=timeout_s)


def _log_failure(exc: BaseException) -> None:
    log.error("simulate_publish_failed", error=str(exc))


def paced_now(
    events: Iterable[Event],
    rate: float,
    duration_s: float | None,
    wall_clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Event]:
    """Live mode: yield the events at ``rate`` per second, each stamped with the current time,
    until ``duration_s`` has passed (or forever). Ids and content keep their deterministic order."""
    started = monotonic()
    for sent, event in enumerate(events):
        due = started + sent / rate
        now = monotonic()
        if duration_s is not None and max(now, due) - started >= duration_s:
            return
        if due > now:
            sleep(due - now)
        stamped = round(wall_clock() * 1000) / 1000
        yield dataclasses.replace(event, ts=stamped)
