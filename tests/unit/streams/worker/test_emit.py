"""streams/worker/emit.py: how a forwarded event is re-sent to its account's partition."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.worker.emit import FORWARDED_FROM, JSON_HEADERS, OutputWriter
from streams.worker.processor import ForwardOutput, Record


class FakeTopic:
    """Records each published record and takes it at once (a Faust topic's ``as_future_message`` +
    ``publish_message``, the two calls ``faust_compat.publish`` makes)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def as_future_message(self, **record: Any) -> asyncio.Future[None]:
        message: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        message.record = {k: v for k, v in record.items() if v is not None}  # type: ignore[attr-defined]
        return message

    async def publish_message(self, message: asyncio.Future[None]) -> asyncio.Future[None]:
        self.sent.append(message.record)  # type: ignore[attr-defined]
        message.set_result(None)
        return message


def _writer(events: FakeTopic) -> OutputWriter:
    return OutputWriter(None, {}, {}, FakeTopic(), FakeTopic(), events)  # type: ignore[arg-type]


async def test_a_forwarded_event_keeps_its_value_and_headers_and_says_where_it_was_read() -> None:
    """The event goes to its account's partition keyed by account id, value and headers unchanged,
    plus ``preempt.forwarded.from`` = partition/offset of the original."""
    events = FakeTopic()
    record = Record(3, 41, None, b'{"x": 1}', [("content-type", b"application/json"), ("trace", b"t-1")], "ev")
    delivered = await _writer(events).send_forwards([ForwardOutput(record, "acme", 1)])
    await asyncio.gather(*delivered)
    assert events.sent == [
        {
            "key": b"acme",
            "value": b'{"x": 1}',
            "partition": 1,
            "headers": [("content-type", b"application/json"), ("trace", b"t-1"), (FORWARDED_FROM, b"3/41")],
        }
    ]


async def test_a_forwarded_events_huge_headers_are_not_copied() -> None:
    """Headers of hundreds of KB (the broker accepts them) would make the re-sent record too large for the
    producer and stop the worker on it after every restart: they are replaced by the content type."""
    events = FakeTopic()
    huge = [(f"h{i}", b"x" * 1000) for i in range(900)]
    await _writer(events).send_forwards([ForwardOutput(Record(0, 7, b"k", b"{}", huge, "ev"), "acme", 1)])
    assert events.sent[0]["headers"] == [*JSON_HEADERS, (FORWARDED_FROM, b"0/7")]


async def test_a_forwarded_events_header_size_counts_the_bytes_of_its_keys_not_their_characters() -> None:
    """Header keys of multi-byte characters are measured in UTF-8 bytes: 1,000 headers whose keys are
    30 euro signs (30 characters, 90 bytes) pass the limit (100,000 bytes) and are not copied."""
    events = FakeTopic()
    wide = [("€" * 29 + chr(0x4E00 + i), b"x" * 10) for i in range(1000)]
    await _writer(events).send_forwards([ForwardOutput(Record(0, 8, b"k", b"{}", wide, "ev"), "acme", 1)])
    assert events.sent[0]["headers"] == [*JSON_HEADERS, (FORWARDED_FROM, b"0/8")]
