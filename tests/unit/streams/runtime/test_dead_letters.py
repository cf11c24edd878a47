"""Dead-letter records: the original bytes and headers survive, the verdict headers are added, and a
record too large to send is cut to fit."""

from __future__ import annotations

from typing import Any

from schemas.decoder import Rejection, decode_event
from schemas.rfc3339 import parse_rfc3339
from streams.runtime.dead_letters import (
    ALERT_TRUNCATED,
    MAX_DEAD_LETTER_BYTES,
    DeadLetterRecord,
    alert_dead_letter_headers,
    bounded,
    cut_dead_letter,
    dead_letter_headers,
    dead_letter_record,
    ingest_dead_letter_record,
)

AT = parse_rfc3339("2026-11-23T06:00:00.250Z")


def test_rejection_becomes_a_record_with_every_verdict_header() -> None:
    """A decoder rejection yields the original key/value/headers plus reason, detail, field, source and time."""
    raw = b'{"event": "x"}'
    rejection = decode_event(raw, max_bytes=1024, max_future_skew=300, now=AT)
    assert isinstance(rejection, Rejection)
    record = dead_letter_record(
        key=b"acme",
        value=raw,
        headers=[("content-type", b"application/json")],
        reason=str(rejection.reason),
        detail=rejection.detail,
        field=rejection.field,
        source_topic="preempt.events",
        partition=3,
        offset=1234,
        at=AT,
    )
    assert record.key == b"acme"
    assert record.value == raw
    assert record.headers[0] == ("content-type", b"application/json")
    assert dead_letter_headers(record.headers) == {
        "preempt.dlq.reason": "missing_field",
        "preempt.dlq.detail": "event_id is required",
        "preempt.dlq.field": "event_id",
        "preempt.dlq.source.topic": "preempt.events",
        "preempt.dlq.source.partition": "3",
        "preempt.dlq.source.offset": "1234",
        "preempt.dlq.at": "2026-11-23T06:00:00.250Z",
    }


def test_record_is_a_plain_tuple_for_unpacking() -> None:
    """The result unpacks as (key, value, headers), which is what producers take."""
    key, value, headers = dead_letter_record(
        key=None,
        value=None,
        headers=None,
        reason="empty",
        detail="the record value is empty",
        field=None,
        source_topic="preempt.events",
        partition=0,
        offset=0,
        at=AT,
    )
    assert (key, value) == (None, None)
    assert dict(headers)["preempt.dlq.field"] == b""


def test_earlier_verdict_headers_are_replaced_not_duplicated() -> None:
    """A record that was dead-lettered before carries only the latest preempt.dlq.* headers."""
    first = dead_letter_record(
        key=b"k",
        value=b"{",
        headers={"trace": "abc"},
        reason="invalid_json",
        detail="not valid JSON",
        field=None,
        source_topic="preempt.events",
        partition=1,
        offset=7,
        at=AT,
    )
    second = dead_letter_record(
        key=first.key,
        value=first.value,
        headers=first.headers,
        reason="too_large",
        detail="too big",
        field=None,
        source_topic="preempt.events.replay",
        partition=0,
        offset=2,
        at=AT + 60,
    )
    names = [name for name, _ in second.headers]
    assert names.count("preempt.dlq.reason") == 1
    assert dead_letter_headers(second.headers)["preempt.dlq.reason"] == "too_large"
    assert ("trace", b"abc") in second.headers


def test_long_details_are_truncated() -> None:
    """The detail header is capped at 1,000 characters so a huge message cannot bloat the record."""
    record = dead_letter_record(
        key=b"k",
        value=b"v",
        headers=[("h", None), ("s", "text")],
        reason="processing_error",
        detail="x" * 5000,
        field=None,
        source_topic="t",
        partition=0,
        offset=0,
        at=AT,
    )
    detail = dead_letter_headers(record.headers)["preempt.dlq.detail"]
    assert len(detail) == 1000
    assert ("h", b"") in record.headers
    assert ("s", b"text") in record.headers


def test_alert_delivery_dead_letter_headers_name_target_receiver_and_reason() -> None:
    """A failed delivery's alert dead letter says where it was going, which receiver, and why."""
    headers = alert_dead_letter_headers(
        "permanent", "channel_not_found", target="cs-team/slack/0", receiver_type="slack"
    )
    assert headers == [
        ("target", b"cs-team/slack/0"),
        ("receiver", b"cs-team"),
        ("receiver_type", b"slack"),
        ("reason", b"permanent"),
        ("error", b"channel_not_found"),
    ]


def test_undecodable_alert_dead_letter_headers_carry_only_reason_and_error() -> None:
    """A record that is not an alert has no target: only the reason and the error are sent."""
    headers = alert_dead_letter_headers("invalid_alert", "alert_id: Field required")
    assert headers == [("reason", b"invalid_alert"), ("error", b"alert_id: Field required")]


def _letter(value: bytes, headers: list[tuple[str, bytes]] | None = None, key: bytes | None = b"acme") -> Any:
    return dead_letter_record(
        key=key,
        value=value,
        headers=headers or [("content-type", b"application/json")],
        reason="too_large",
        detail="the event is too large",
        field=None,
        source_topic="preempt.events",
        partition=0,
        offset=7,
        at=AT,
    )


def _size(record: Any) -> int:
    return len(record.key or b"") + len(record.value or b"") + sum(len(n) + len(v) for n, v in record.headers)


def test_a_record_at_kafkas_size_limit_is_cut_to_fit_with_a_header_saying_so() -> None:
    """A 1 MB source record's dead letter keeps its first bytes, key and headers, within the bound."""
    raw = b"x" * 999_800
    record = _letter(raw)
    assert _size(record) <= MAX_DEAD_LETTER_BYTES
    assert record.value is not None
    assert raw.startswith(record.value)
    assert len(record.value) > MAX_DEAD_LETTER_BYTES - 2048  # only what the headers need is given up
    assert record.key == b"acme"
    assert record.headers[0] == ("content-type", b"application/json")
    verdict = dead_letter_headers(record.headers)
    assert verdict["preempt.dlq.reason"] == "too_large"
    assert verdict["preempt.dlq.truncated"] == f"value cut from 999800 to {len(record.value)} bytes"


def test_records_that_fit_are_sent_whole_with_no_truncation_header() -> None:
    """Any dead letter within the bound is the original bytes exactly, without a ``truncated`` header."""
    raw = b"y" * (MAX_DEAD_LETTER_BYTES - 2048)
    record = _letter(raw)
    assert record.value == raw
    assert "preempt.dlq.truncated" not in dead_letter_headers(record.headers)


def test_huge_original_headers_and_key_are_dropped_before_the_verdict() -> None:
    """Original headers, then the key, go when they alone take half the bound; the verdict stays."""
    headers = [(f"h{i}", b"z" * 100_000) for i in range(6)]
    record = _letter(b"v" * 10, headers=headers, key=b"k" * 600_000)
    assert _size(record) <= MAX_DEAD_LETTER_BYTES
    assert record.key is None
    assert record.value == b"v" * 10
    assert [name for name, _ in record.headers if not name.startswith("preempt.dlq.")] == []
    assert dead_letter_headers(record.headers)["preempt.dlq.truncated"] == (
        "6 original headers dropped; key of 600000 bytes dropped"
    )


def test_a_dead_letter_cut_again_keeps_its_verdict_and_one_truncation_note() -> None:
    """Cut for a dead-letter topic with a small max.message.bytes: the value keeps its first bytes, the
    verdict stays, and the earlier ``truncated`` note is replaced (one note, naming the original size)."""
    raw = b"x" * 999_800
    record = _letter(raw)
    cut = cut_dead_letter(record, 8 * 1024)
    assert _size(cut) <= 8 * 1024
    assert cut.value
    assert raw.startswith(cut.value)
    assert [name for name, _ in cut.headers].count("preempt.dlq.truncated") == 1
    verdict = dead_letter_headers(cut.headers)
    assert verdict["preempt.dlq.reason"] == "too_large"
    assert verdict["preempt.dlq.truncated"].startswith(f"value cut from {len(record.value or b'')} to ")
    bare = cut_dead_letter(record, 0)
    assert bare.value == b""
    assert bare.key is None
    assert dead_letter_headers(bare.headers)["preempt.dlq.reason"] == "too_large"


def test_the_notifiers_dead_letters_are_bounded_with_their_own_marker() -> None:
    """``bounded`` cuts a notifier dead letter (an oversized invalid alert) and marks it ``truncated``."""
    headers = alert_dead_letter_headers("invalid_alert", "not JSON")
    letter = bounded(DeadLetterRecord(b"acme", b"{" * 999_000, headers), ALERT_TRUNCATED, keep=lambda _name: True)
    assert _size(letter) <= MAX_DEAD_LETTER_BYTES
    assert dict(letter.headers)["reason"] == b"invalid_alert"
    assert dict(letter.headers)["truncated"].startswith(b"value cut from 999000 to ")


def test_an_ingest_item_gets_the_verdict_with_its_route_no_position_and_its_api_key_name() -> None:
    """A record from no topic: source http:<route>, partition and offset -1, the key's name, content-type kept."""
    record = ingest_dead_letter_record(
        key=b"acme",
        value=b'{"event": "x"}',
        content_type="application/json",
        reason="missing_field",
        detail="event_id is required",
        field="event_id",
        route="/v1/batch",
        api_key_source="web",
        at=AT,
    )
    assert (record.key, record.value) == (b"acme", b'{"event": "x"}')
    assert record.headers[0] == ("content-type", b"application/json")
    assert dead_letter_headers(record.headers) == {
        "preempt.dlq.reason": "missing_field",
        "preempt.dlq.detail": "event_id is required",
        "preempt.dlq.field": "event_id",
        "preempt.dlq.source.topic": "http:/v1/batch",
        "preempt.dlq.source.partition": "-1",
        "preempt.dlq.source.offset": "-1",
        "preempt.dlq.at": "2026-11-23T06:00:00.250Z",
        "preempt.dlq.source.api_key": "web",
    }


def test_an_oversized_ingest_item_is_cut_to_fit_keeping_every_verdict_header() -> None:
    """A body as large as ingest accepts is cut to fit, with the API key's name still on it."""
    record = ingest_dead_letter_record(
        key=None,
        value=b"x" * (MAX_DEAD_LETTER_BYTES + 10),
        content_type="application/json",
        reason="too_large",
        detail="too large",
        field=None,
        route="/v1/events",
        api_key_source="web",
        at=AT,
    )
    headers = dead_letter_headers(record.headers)
    assert headers["preempt.dlq.source.api_key"] == "web"
    assert headers["preempt.dlq.truncated"].startswith("value cut from")
    assert len(record.value or b"") < MAX_DEAD_LETTER_BYTES
