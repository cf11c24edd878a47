"""One definition of the edge bounds: the SDK, the CLI's file path, HTTP ingest and the worker's decoder
refuse each poison class with the same reason code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.decoder import Rejection, decode_event
from schemas.errors import EventRejectedError
from schemas.event import format_ts
from streams.cli.publish import parse_prop
from streams.ingest.group_traits import trait_map
from streams.ingest.payload import parse_body
from streams.ingest.tracking import TrackingConfig, parse_tracking
from streams.sdk.publisher import Publisher
from tests.unit.streams.fake_producer import FakeProducer

NOW = 1_795_420_800.0


def _deep(levels: int) -> Any:
    node: Any = 1
    for _ in range(levels):
        node = [node]
    return node


POISON: dict[str, dict[str, Any]] = {
    "too_deep": {"properties": {"x": _deep(300)}},
    "too_many_properties": {"properties": {f"k{i}": i for i in range(1001)}},
    "string_too_long": {"properties": {"note": "x" * 8193}},
    "control_character": {"account_id": "acme\x1b[31m"},
    "number_out_of_range": {"properties": {"n": 2**53}},
}


def _payload(**overrides: Any) -> dict[str, Any]:
    return {"event_id": "e-1", "event": "Login", "account_id": "acme", "timestamp": format_ts(NOW)} | overrides


@pytest.mark.parametrize("reason", sorted(POISON))
def test_every_entry_point_refuses_the_poison_with_the_same_reason(reason: str) -> None:
    """decode_event (worker), Publisher.publish and publish_json (SDK, `preempt publish --file`) and
    parse_body (HTTP ingest) all reject the event with ``reason``; nothing is sent."""
    payload = _payload(**POISON[reason])
    raw = json.dumps(payload).encode()
    decoded = decode_event(raw, max_bytes=1 << 20, max_future_skew=300.0, now=NOW)
    assert isinstance(decoded, Rejection)
    assert str(decoded.reason) == reason

    producer = FakeProducer()
    publisher = Publisher(topic="t.events", producer=producer, clock=lambda: NOW, max_event_bytes=1 << 20)
    with pytest.raises(EventRejectedError) as from_dict:
        publisher.publish(payload)
    with pytest.raises(EventRejectedError) as from_line:
        publisher.publish_json(raw)
    assert (from_dict.value.reason, from_line.value.reason) == (reason, reason)
    assert producer.sent == []

    parsed = parse_body(
        raw, max_event_bytes=1 << 20, max_future_skew=300.0, now=NOW, max_items=1000, max_shared_context_bytes=8192
    )
    assert parsed.accepted == 0
    assert [r.to_json()["reason"] for r in parsed.results] == [reason]


def test_every_entry_point_refuses_an_integer_literal_past_64_bits() -> None:
    """An integer written in JSON text beyond 64 bits (which orjson reads as a float) is number_out_of_range at the
    worker's decoder, `preempt publish --file`, HTTP ingest (both APIs) and `--prop`, never accepted as a float."""
    huge = "123456789012345678901234567890"
    raw = json.dumps(_payload(properties={"n": 0})).replace('"n": 0', f'"n": {huge}').encode()
    decoded = decode_event(raw, max_bytes=1 << 20, max_future_skew=300.0, now=NOW)
    assert isinstance(decoded, Rejection)
    assert str(decoded.reason) == "number_out_of_range"

    producer = FakeProducer()
    publisher = Publisher(topic="t.events", producer=producer, clock=lambda: NOW, max_event_bytes=1 << 20)
    with pytest.raises(EventRejectedError) as from_line:
        publisher.publish_json(raw)
    assert from_line.value.reason == "number_out_of_range"
    assert producer.sent == []

    parsed = parse_body(
        raw, max_event_bytes=1 << 20, max_future_skew=300.0, now=NOW, max_items=1000, max_shared_context_bytes=8192
    )
    assert [r.to_json()["reason"] for r in parsed.results] == ["number_out_of_range"]

    call = json.dumps({"type": "track", "messageId": "m-1", "event": "Login", "context": {"groupId": "acme"}})
    call = call[:-1] + f', "properties": {{"n": {huge}}}}}'
    config = TrackingConfig(
        account_id_paths=TrackingConfig.paths(("context.groupId",)),
        trait_map=trait_map({}),
        max_event_bytes=32768,
        max_future_skew=300,
        max_items=100,
        max_shared_context_bytes=2048,
    )
    tracked = parse_tracking(f'{{"batch": [{call}]}}'.encode(), None, config, NOW)
    assert tracked.events == []
    assert [str(r.rejection.reason) for r in tracked.rejections] == ["number_out_of_range"]

    key, value = parse_prop(f"n={huge}")
    assert (key, value) == ("n", int(huge))
    with pytest.raises(EventRejectedError) as from_prop:
        publisher.publish(_payload(properties={key: value}))
    assert from_prop.value.reason == "number_out_of_range"
