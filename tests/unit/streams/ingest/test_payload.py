"""Ingest bodies: shapes, Segment mapping, per-item verdicts and the size limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.rfc3339 import parse_rfc3339
from streams.ingest.payload import BodyError, TooManyItems, parse_body

NOW = parse_rfc3339("2026-11-23T06:00:00Z")
LIMITS: dict[str, Any] = {"max_items": 1000, "max_shared_context_bytes": 2048}


@pytest.fixture
def canonical() -> Callable[..., dict[str, Any]]:
    """Factory: a valid canonical event; overrides replace fields."""

    def factory(**overrides: Any) -> dict[str, Any]:
        return {
            "event_id": "e1",
            "event": "Login",
            "account_id": "acme",
            "timestamp": "2026-11-23T05:00:00Z",
        } | overrides

    return factory


@pytest.fixture
def segment() -> Callable[..., dict[str, Any]]:
    """Factory: a valid Segment Track call; overrides replace fields."""

    def factory(**overrides: Any) -> dict[str, Any]:
        return {
            "type": "track",
            "messageId": "m1",
            "userId": "u-42",
            "event": "Report Exported",
            "timestamp": "2026-11-23T05:00:00.000Z",
            "properties": {"format": "csv"},
            "context": {"groupId": "acme", "library": {"name": "analytics-node"}},
            "integrations": {},
        } | overrides

    return factory


def parse(doc: Any, max_event_bytes: int = 32768) -> Any:
    return parse_body(orjson.dumps(doc), max_event_bytes=max_event_bytes, max_future_skew=300, now=NOW, **LIMITS)


def test_single_canonical_event_becomes_one_record(canonical: Callable[..., dict[str, Any]]) -> None:
    """One canonical object yields one record keyed by account with the event as its value."""
    parsed = parse(canonical())
    assert parsed.records == [(b"acme", orjson.dumps(canonical()))]
    assert [r.to_json() for r in parsed.results] == [{"index": 0, "status": "accepted", "event_id": "e1"}]


def test_segment_track_is_mapped_to_the_canonical_shape(segment: Callable[..., dict[str, Any]]) -> None:
    """messageId, userId, event, timestamp, properties and context.groupId map to the canonical fields."""
    [(key, value)] = parse(segment()).records
    assert key == b"acme"
    assert orjson.loads(value) == {
        "event_id": "m1",
        "event": "Report Exported",
        "account_id": "acme",
        "user_id": "u-42",
        "timestamp": "2026-11-23T05:00:00.000Z",
        "properties": {"format": "csv"},
        "context": {"groupId": "acme", "library": {"name": "analytics-node"}},
    }


def test_segment_anonymous_id_is_the_user_when_there_is_no_user_id(segment: Callable[..., dict[str, Any]]) -> None:
    """On /v1/events as on the tracking API, a Segment call with only anonymousId keeps it as user_id;
    userId wins when both are there."""
    anonymous = segment(anonymousId="anon-ü-1")
    del anonymous["userId"]
    (_, value), (_, both) = parse([anonymous, segment(messageId="m2", anonymousId="anon-2")]).records
    assert orjson.loads(value)["user_id"] == "anon-ü-1"
    assert orjson.loads(both)["user_id"] == "u-42"


def test_an_empty_user_id_beside_an_anonymous_id_is_the_anonymous_visitor(
    segment: Callable[..., dict[str, Any]],
) -> None:
    """userId "" (a visitor not yet identified) with an anonymousId is that visitor, not a refused empty id."""
    [(_, value)] = parse(segment(userId="", anonymousId="anon-3")).records
    assert orjson.loads(value)["user_id"] == "anon-3"


def test_numeric_segment_ids_become_strings_as_on_the_tracking_api(segment: Callable[..., dict[str, Any]]) -> None:
    """userId 42 and context.groupId 7 (numbers, as some senders write them) were refused on /v1/events
    ("account_id must be a string, got a number") while /v1/track took the same call: both take them now."""
    numeric_user = segment(messageId="m2", userId="", anonymousId=99)
    [(key, value), (_, anonymous)] = parse([segment(userId=42, context={"groupId": 7}), numeric_user]).records
    assert key == b"7"
    event = orjson.loads(value)
    assert (event["account_id"], event["user_id"], event["context"]["groupId"]) == ("7", "42", 7)
    assert orjson.loads(anonymous)["user_id"] == "99"
    rejected = parse([segment(userId=True), segment(messageId="m3", context={"groupId": 1.5})]).rejected
    assert [(item.rejection.reason, item.rejection.field) for item in rejected] == [
        ("invalid_field", "userId"),
        ("invalid_field", "context.groupId"),
    ]


def test_segment_without_timestamp_gets_the_receive_time(segment: Callable[..., dict[str, Any]]) -> None:
    """A Segment call without timestamp is stamped with the time the request arrived."""
    item = segment()
    del item["timestamp"]
    [(_, value)] = parse(item).records
    assert orjson.loads(value)["timestamp"] == "2026-11-23T06:00:00.000Z"


@pytest.mark.parametrize(
    "nulls",
    [
        {"timestamp": None},
        {"properties": None},
        {"userId": None},
        {"integrations": None},
        {"event": "E", "sentAt": None},
    ],
)
def test_a_segment_field_sent_as_null_counts_as_not_sent(
    segment: Callable[..., dict[str, Any]], nulls: dict[str, Any]
) -> None:
    """Serialisers write null for an optional field they do not have, and the tracking routes (/v1/track…)
    read such a field as not sent; the same Segment Track call posted to /v1/events was rejected ("timestamp
    must be an RFC 3339 string with an offset, got null", "properties must be a JSON object, got null")."""
    parsed = parse(segment(**nulls))
    assert [r.to_json().get("reason") for r in parsed.results] == [None]
    [(key, value)] = parsed.records
    event = orjson.loads(value)
    assert key == b"acme"
    assert event["timestamp"] == ("2026-11-23T06:00:00.000Z" if "timestamp" in nulls else "2026-11-23T05:00:00.000Z")
    assert None not in event.values()


def test_a_null_segment_context_and_group_id_fall_back_to_the_batch_context(
    segment: Callable[..., dict[str, Any]],
) -> None:
    """``"context": null`` and ``"context": {"groupId": null}`` leave the batch's shared context (and its
    groupId) in place, as on the tracking routes; they were "context must be a JSON object" / account_id null."""
    items = [segment(messageId="m1", context=None), segment(messageId="m2", context={"groupId": None, "app": "w"})]
    parsed = parse({"batch": items, "context": {"groupId": "shared"}})
    assert [r.to_json().get("reason") for r in parsed.results] == [None, None]
    assert [key for key, _ in parsed.records] == [b"shared", b"shared"]
    assert orjson.loads(parsed.records[1][1])["context"] == {"groupId": "shared", "app": "w"}


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"type": "identify"}, "invalid_field", "type"),
        ({"messageId": ""}, "invalid_field", "messageId"),
        ({"context": {"library": {}}}, "missing_field", "context.groupId"),
        ({"context": "web"}, "invalid_field", "context"),
        ({"userId": 4.2}, "invalid_field", "userId"),  # 42 is taken, as "42" (as on the tracking API)
        ({"traits": {}}, "unknown_field", "traits"),
        ({"timestamp": "yesterday"}, "invalid_field", "timestamp"),
    ],
)
def test_bad_segment_items_name_the_segment_field(
    segment: Callable[..., dict[str, Any]], change: dict[str, Any], reason: str, field: str
) -> None:
    """A bad Segment item is rejected with the field named as Segment spells it."""
    [result] = parse(segment(**change)).results
    assert (result.to_json()["reason"], result.to_json()["field"]) == (reason, field)


def test_a_segment_item_without_message_id_gets_a_generated_one(segment: Callable[..., dict[str, Any]]) -> None:
    """Segment's own HTTP API examples send no messageId: the item is accepted with a ``gen-`` id from its
    content (a retry of a timed call has the same id), not rejected."""
    item = segment()
    del item["messageId"]
    first, again = parse(item), parse(item)
    [record] = first.records
    event_id = orjson.loads(record[1])["event_id"]
    assert event_id.startswith("gen-")
    assert len(event_id) == 36
    assert orjson.loads(again.records[0][1])["event_id"] == event_id
    other = parse(segment(messageId=None, timestamp="2026-11-23T05:00:01.000Z"))
    assert orjson.loads(other.records[0][1])["event_id"] not in (event_id, None)


def test_array_batch_gives_a_verdict_per_item_in_order(
    canonical: Callable[..., dict[str, Any]], segment: Callable[..., dict[str, Any]]
) -> None:
    """A JSON array mixes shapes; each item gets its own verdict at its own index."""
    parsed = parse([canonical(), canonical(event=""), segment(), "nope"])
    assert [(r.index, r.to_json()["status"]) for r in parsed.results] == [
        (0, "accepted"),
        (1, "rejected"),
        (2, "accepted"),
        (3, "rejected"),
    ]
    assert parsed.results[3].to_json()["reason"] == "not_an_object"
    assert parsed.accepted == 2


def test_segment_batch_context_is_a_default_under_each_item(segment: Callable[..., dict[str, Any]]) -> None:
    """{"batch": [...], "context": {...}} merges the shared context under each item's own."""
    item = segment(context={"library": {"name": "x"}})
    parsed = parse({"batch": [item], "context": {"groupId": "globex"}, "sentAt": "2026-11-23T05:00:01Z"})
    [(key, _)] = parsed.records
    assert key == b"globex"


def test_oversize_item_is_rejected_as_too_large(canonical: Callable[..., dict[str, Any]]) -> None:
    """An item whose encoding exceeds the per-event limit is too_large; its neighbours still pass."""
    parsed = parse([canonical(properties={"blob": "x" * 2000}), canonical()], max_event_bytes=1024)
    assert parsed.results[0].to_json()["reason"] == "too_large"
    assert parsed.accepted == 1


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'"event"', b'{"batch": []}', b'{"batch": {}}', b'{"batch": [{}], "extra": 1}'],
    ids=["not-json", "empty-array", "string", "empty-batch", "batch-not-array", "batch-extra-field"],
)
def test_unusable_bodies_raise_body_error(body: bytes) -> None:
    """A body that is not JSON or not an event, array or batch is a BodyError (HTTP 400)."""
    with pytest.raises(BodyError):
        parse_body(body, max_event_bytes=32768, max_future_skew=300, now=NOW, **LIMITS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "messageId", "event", "context", "groupId", "batch", "event_id", "x"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=15,
)


@settings(max_examples=400)
@given(json_values)
def test_any_json_body_is_a_body_error_or_a_verdict_per_item(doc: Any) -> None:
    """Whatever JSON arrives, parse_body either refuses the body or gives one verdict per item, never a crash."""
    try:
        parsed = parse_body(orjson.dumps(doc), max_event_bytes=32768, max_future_skew=300, now=NOW, **LIMITS)
    except BodyError:
        return
    assert [r.index for r in parsed.results] == list(range(len(parsed.results)))
    assert parsed.accepted == sum(1 for r in parsed.results if r.rejection is None)


def test_more_items_than_the_limit_refuse_the_whole_body() -> None:
    """A request with more items than max_items is refused as a whole (TooManyItems → 413), in both shapes."""
    item = {"event_id": "e", "event": "Login", "account_id": "acme", "timestamp": "2026-11-23T05:00:00Z"}
    for doc in ([item] * 11, {"batch": [item] * 11}):
        with pytest.raises(TooManyItems, match="limit is 10"):
            parse_body(
                orjson.dumps(doc),
                max_event_bytes=32768,
                max_future_skew=300,
                now=NOW,
                max_items=10,
                max_shared_context_bytes=2048,
            )


def test_a_large_shared_context_is_refused_not_copied_into_every_item() -> None:
    """A batch whose shared context is over the limit gets BodyError (400) instead of N copies in Kafka."""
    item = {"event_id": "e", "event": "Login", "account_id": "acme", "timestamp": "2026-11-23T05:00:00Z"}
    doc = {"batch": [item] * 500, "context": {"blob": "x" * 4000}}
    with pytest.raises(BodyError, match="shared context is larger than 2048 bytes"):
        parse_body(orjson.dumps(doc), max_event_bytes=32768, max_future_skew=300, now=NOW, **LIMITS)
