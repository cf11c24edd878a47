"""Reading ``preempt.events.dlq`` back for people: ``preempt events dead-letters``."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from schemas.bounds import visible_controls
from schemas.errors import BrokerUnavailableError
from schemas.formatting import plural
from streams.runtime.dead_letters import (
    AT,
    DETAIL,
    FIELD,
    NO_POSITION,
    REASON,
    SOURCE_API_KEY,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
)
from streams.runtime.dead_letters import dead_letter_headers as verdict_headers
from streams.runtime.kafka_clients import check_access, kafka_python_bootstrap, kafka_python_config
from streams.runtime.kafka_permissions import check_topic_readable
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames

MAX_VALUE_CHARS = 300


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """One dead letter as stored on the dead-letter topic and read back: the verdict headers and the
    original key and value (``streams.runtime.dead_letters.DeadLetterRecord`` is the one sent)."""

    key: str | None
    value: bytes | None
    verdict: dict[str, str]
    timestamp_ms: int | None = None  # the record's timestamp: when it was dead-lettered (epoch ms)

    def describe(self) -> str:
        """Two lines for a terminal: the verdict and where from, then the original value (clipped).

        Where from is ``topic[partition]@offset`` for a record read from a topic, or the route and the
        API key's name for an item HTTP ingest rejected (``http:/v1/batch (api key web)``).
        """
        v = self.verdict
        field = f" ({v[FIELD]})" if v.get(FIELD) else ""
        origin = v.get(SOURCE_TOPIC, "?")
        position = (v.get(SOURCE_PARTITION), v.get(SOURCE_OFFSET))
        if position != (str(NO_POSITION), str(NO_POSITION)):
            origin += f"[{position[0] or '?'}]@{position[1] or '?'}"
        if SOURCE_API_KEY in v:
            origin += f" (api key {v[SOURCE_API_KEY]})"
        text = "<none>" if self.value is None else self.value.decode("utf-8", "replace")
        if len(text) > MAX_VALUE_CHARS:
            text = text[:MAX_VALUE_CHARS] + "…"
        # a record without a key shows <none>, as a value does: "key=None" read as an account named None
        key = "<none>" if self.key is None else self.key
        head = f"{v.get(AT, '?')} {origin} key={key}: {v.get(REASON, '?')}{field}: {v.get(DETAIL, '')}"
        return f"{visible_controls(head)}\n    {visible_controls(text)}"

    def to_json(self) -> str:
        """One JSON line: key, value (as text), and the verdict headers."""
        value = None if self.value is None else self.value.decode("utf-8", "replace")
        return orjson.dumps({"key": self.key, "value": value, **self.verdict}).decode()


def read_dead_letters(
    settings: Settings,
    *,
    account_id: str | None = None,
    reason: str | None = None,
    limit: int = 50,
    timeout_s: float = 30.0,
    reasons_seen: Counter[str] | None = None,
    topic: str | None = None,
    verdict_of: Callable[[Any], dict[str, str]] = verdict_headers,
    reason_header: str = REASON,
    missing: set[str] | None = None,
) -> list[StoredDeadLetter]:
    """The newest ``limit`` dead letters matching the filters, oldest first (bounded in time).

    Newest across all partitions of the topic, by the time each was dead-lettered (the record's
    timestamp): each partition's newest ``limit`` are kept while reading, then merged. A letter
    matches ``account_id`` by its key or, when the record was keyed otherwise (or not at all), by
    the ``account_id`` in its value.

    The topic is read up to the end it had when the read began. Not there within ``timeout_s``
    raises ``BrokerUnavailableError``: "the newest" of part of the topic would be wrong. (A second
    of silence used to end the read: on a busy machine the first fetch took longer, and the command
    showed no dead letters, or old ones, with exit 0.)

    ``reasons_seen``, when given, counts the reason of every letter read, matching or not (so a
    caller can say what the topic holds when a filter matched nothing).

    ``missing``, when given, gets the topic's name when the topic does not exist: no process of this
    PREEMPT_TOPIC_PREFIX ever ran on these brokers, which the caller says (``missing_topic_note``)
    rather than showing "0 dead letters" as if the deployment had none.

    ``topic`` (default ``preempt.events.dlq``), ``verdict_of`` and ``reason_header`` read another
    dead-letter topic whose headers are named otherwise: the notifier's ``preempt.alerts.dlq``
    (``preempt alerts dead-letters``).
    """
    topic = topic or TopicNames.from_settings(settings).events_dlq
    check_access(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_python_bootstrap(settings),
        enable_auto_commit=False,
        client_id="preempt-dead-letters",
        **kafka_python_config(settings),
    )
    kept: dict[int, deque[tuple[int, int, int, StoredDeadLetter]]] = {}
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            check_topic_readable(settings, topic)  # a topic this user may not see looks absent too
            if missing is not None:
                missing.add(topic)
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while not all(consumer.position(tp) >= end[tp] for tp in tps):
            if time.monotonic() >= deadline:
                left = sum(max(0, end[tp] - consumer.position(tp)) for tp in tps)
                raise BrokerUnavailableError(
                    f"could not read {topic} to its end within {timeout_s:g} s ({plural(left, 'record')} left); "
                    "Kafka is slow or went away: try again"
                )
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    key = None if record.key is None else record.key.decode("utf-8", "replace")
                    verdict = verdict_of(record.headers)
                    if reasons_seen is not None:
                        reasons_seen[verdict.get(reason_header, "?")] += 1
                    if account_id is not None and key != account_id and _value_account(record.value) != account_id:
                        continue
                    if reason is not None and verdict.get(reason_header) != reason:
                        continue
                    letter = StoredDeadLetter(key, record.value, verdict, record.timestamp)
                    newest = kept.setdefault(record.partition, deque(maxlen=max(1, limit)))
                    newest.append((record.timestamp, record.partition, record.offset, letter))
    finally:
        consumer.close()
    if limit <= 0:
        return []
    merged = sorted((entry for newest in kept.values() for entry in newest), key=lambda entry: entry[:3])
    return [letter for *_, letter in merged[-limit:]]


def missing_topic_note(settings: Settings, topic: str) -> str:
    """The note for a dead-letter topic that does not exist: most likely the wrong prefix or brokers."""
    return (
        f"note: {topic} does not exist on {', '.join(settings.bootstrap_servers)}: no worker, notifier or ingest "
        f"has run there with PREEMPT_TOPIC_PREFIX={settings.topic_prefix}; check PREEMPT_TOPIC_PREFIX and "
        "PREEMPT_BROKER"
    )


def _value_account(value: bytes | None) -> object:
    """The ``account_id`` in a dead letter's value when it is a JSON object, else None."""
    if not value:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return doc.get("account_id") if isinstance(doc, dict) else None
