"""Reading the dead-letter topic back: to the end it had, however slowly the broker answers; never part of it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition

import streams.runtime.dead_letter_reader as reader
from schemas.errors import BrokerUnavailableError
from streams.runtime.dead_letters import dead_letter_headers, dead_letter_record, ingest_dead_letter_record
from streams.runtime.settings import Settings

TOPIC = "ut.events.dlq"


@dataclass
class Record:
    """The fields of a kafka-python ConsumerRecord the reader uses."""

    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass
class SlowConsumer:
    """A consumer over one partition whose fetches return nothing for ``silent_s`` seconds first (a busy broker)."""

    records: list[Record]
    silent_s: float
    position_at: int = 0
    started: float = field(default_factory=time.monotonic)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0} if topic == TOPIC else set()

    def assign(self, tps: list[TopicPartition]) -> None:
        pass

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.position_at = 0

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.records) for tp in tps}

    def position(self, tp: TopicPartition) -> int:
        return self.position_at

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Record]]:
        time.sleep(timeout_ms / 1000)
        if time.monotonic() - self.started < self.silent_s or self.position_at >= len(self.records):
            return {}
        batch = self.records[self.position_at :]
        self.position_at = len(self.records)
        return {TopicPartition(TOPIC, 0): batch}

    def close(self) -> None:
        pass


def _letters(count: int) -> list[Record]:
    out = []
    for offset in range(count):
        letter = dead_letter_record(
            key=b"acme",
            value=b'{"event": "x"}',
            headers=[],
            reason="missing_field",
            detail="event_id is required",
            field="event_id",
            source_topic="ut.events",
            partition=0,
            offset=offset,
            at=1_790_000_000.0 + offset,
        )
        out.append(Record(0, offset, 1_790_000_000_000 + offset, letter.key, letter.value, list(letter.headers)))
    return out


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for the topic above; the access and permission checks (real connections) are not part of
    these tests."""
    monkeypatch.setattr(reader, "check_access", lambda settings: None)
    monkeypatch.setattr(reader, "check_topic_readable", lambda settings, topic: None)
    return Settings(topic_prefix="ut", broker="kafka://127.0.0.1:1")


def test_a_first_fetch_slower_than_a_second_still_reads_every_letter(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing fetched for 1.5 s (a loaded machine) is not 'no dead letters': all three are read."""
    consumer = SlowConsumer(_letters(3), silent_s=1.5)
    monkeypatch.setattr(reader, "KafkaConsumer", lambda **kwargs: consumer)
    letters = reader.read_dead_letters(settings, timeout_s=30.0)
    assert [letter.verdict["preempt.dlq.source.offset"] for letter in letters] == ["0", "1", "2"]


def test_a_topic_not_read_to_its_end_in_time_is_an_error_not_a_partial_list(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the end is not reached within the bound, the command says so instead of listing part of the topic."""
    consumer = SlowConsumer(_letters(3), silent_s=60.0)
    monkeypatch.setattr(reader, "KafkaConsumer", lambda **kwargs: consumer)
    expected = r"could not read ut\.events\.dlq to its end within 1 s \(3 record"
    with pytest.raises(BrokerUnavailableError, match=expected):
        reader.read_dead_letters(settings, timeout_s=1.0)


def test_a_missing_topic_is_no_letters(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefix whose dead-letter topic was never made has no dead letters (and no wait)."""
    consumer: Any = SlowConsumer([], silent_s=0.0)
    consumer.partitions_for_topic = lambda topic: set()
    monkeypatch.setattr(reader, "KafkaConsumer", lambda **kwargs: consumer)
    assert reader.read_dead_letters(settings) == []


def test_a_missing_topic_is_named_so_that_the_command_can_say_so(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead-letter topic that does not exist is reported to the caller, whose note names the prefix and brokers
    to check: "0 dead letters shown" alone read as a healthy deployment when PREEMPT_TOPIC_PREFIX was wrong."""
    consumer: Any = SlowConsumer([], silent_s=0.0)
    consumer.partitions_for_topic = lambda topic: set()
    monkeypatch.setattr(reader, "KafkaConsumer", lambda **kwargs: consumer)
    missing: set[str] = set()
    assert reader.read_dead_letters(settings, missing=missing) == []
    assert missing == {"ut.events.dlq"}
    assert reader.missing_topic_note(settings, "ut.events.dlq") == (
        "note: ut.events.dlq does not exist on 127.0.0.1:1: no worker, notifier or ingest has run there with "
        "PREEMPT_TOPIC_PREFIX=ut; check PREEMPT_TOPIC_PREFIX and PREEMPT_BROKER"
    )


def test_a_letter_from_a_topic_shows_where_it_was_read() -> None:
    """A worker's dead letter reads topic[partition]@offset."""
    [record] = _letters(1)
    letter = reader.StoredDeadLetter(key="acme", value=record.value, verdict=dead_letter_headers(record.headers))
    assert " ut.events[0]@0 key=acme: missing_field (event_id): event_id is required\n" in letter.describe()


def test_a_letter_from_http_ingest_shows_its_route_and_api_key_not_a_position() -> None:
    """An ingest dead letter (partition and offset -1) reads as its route and the API key's name."""
    letter = ingest_dead_letter_record(
        key=None,
        value=b'{"event": "x"}',
        content_type="application/json",
        reason="missing_field",
        detail="event_id is required",
        field="event_id",
        route="/v1/batch",
        api_key_source="web",
        at=1_790_000_000.0,
    )
    stored = reader.StoredDeadLetter(key=None, value=letter.value, verdict=dead_letter_headers(letter.headers))
    assert " http:/v1/batch (api key web) key=<none>: missing_field (event_id):" in stored.describe()


def test_a_letter_without_source_headers_still_reads() -> None:
    """Missing source, partition or offset headers (another tool's record) show as ?, never fail; a missing
    key shows <none>, never the "None" of an account by that name."""
    stored = reader.StoredDeadLetter(key=None, value=None, verdict={"preempt.dlq.reason": "x"})
    assert stored.describe().startswith("? ?[?]@? key=<none>: x: \n    <none>")
    named = reader.StoredDeadLetter(key="None", value=None, verdict={"preempt.dlq.reason": "x"})
    assert named.describe().startswith("? ?[?]@? key=None: x: ")


def test_a_letter_cannot_write_terminal_control_sequences_to_the_operator() -> None:
    """Key, value, field and detail of a dead letter come from whoever sent the record (an HTTP ingest
    sender with a key, any Kafka producer): `preempt events dead-letters` printed them raw, so a record
    keyed ``esc\\x1b]0;pwned\\x07co`` retitled the operator's terminal, ``\\x1b[2J`` cleared it, and a newline
    in a value forged a dead-letter line of its own. Control characters now show escaped, visibly."""
    hostile = "esc\x1b]0;pwned\x07co\x9b31m"
    stored = reader.StoredDeadLetter(
        key=hostile,
        value=b"\x1b[2Jnot json\r\n2026-01-01T00:00:00Z forged: ok\x00",
        verdict={
            "preempt.dlq.reason": "unknown_field",
            "preempt.dlq.field": "\x1b[31mred",
            "preempt.dlq.detail": "unknown top-level field '\x1b[31mred'",
            "preempt.dlq.source.topic": "preempt.events",
        },
    )
    shown = stored.describe()
    head, sep, value_line = shown.partition("\n    ")
    assert sep, shown
    controls = [c for c in head + value_line if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F]
    assert controls == [], repr(shown)
    assert "key=esc\\x1b]0;pwned\\x07co\\x9b31m:" in head
    assert "(\\x1b[31mred)" in head
    assert value_line.startswith("\\x1b[2Jnot json\\x0d\\x0a2026-01-01T00:00:00Z forged: ok\\x00")
