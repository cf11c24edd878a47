"""Rejected ingest items go to the events dead-letter topic: their bytes, their account, headers naming why."""

from __future__ import annotations

import orjson
from structlog.testing import capture_logs

from schemas.decoder import Reason
from streams.ingest.rejected import account_id_at, item_bytes
from streams.runtime.dead_letter_reader import StoredDeadLetter
from streams.runtime.dead_letters import (
    AT,
    DETAIL,
    FIELD,
    REASON,
    SOURCE_API_KEY,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
    DeadLetterRecord,
    dead_letter_headers,
)
from tests.unit.streams.ingest.conftest import (
    AUTH,
    BASIC,
    KEY,
    ClientFactory,
    counter,
    dead_letters_done,
    event,
    track,
)


def verdict(letter: DeadLetterRecord) -> dict[str, str]:
    return dead_letter_headers(letter.headers)


def test_a_single_item_body_is_kept_as_sent() -> None:
    """The body that was the one item is dead-lettered byte for byte (spacing and key order kept)."""
    body = b'{ "event": "x",  "account_id": "acme" }'
    assert item_bytes(orjson.loads(body), body) == body


def test_a_batch_item_is_re_serialized_and_a_write_key_is_never_kept() -> None:
    """A batch item is written back with orjson; writeKey (analytics.js's API key) is left out, even of a whole body."""
    assert item_bytes({"event": "x", "n": 1}, None) == b'{"event":"x","n":1}'
    body = b'{"type": "track", "writeKey": "pk_live_web"}'
    assert item_bytes(orjson.loads(body), body) == b'{"type":"track"}'


def test_items_orjson_cannot_write_fall_back_to_the_standard_library() -> None:
    """An integer past 64 bits (a number_out_of_range rejection) is still written back exactly."""
    assert item_bytes({"n": 2**70}, None) == b'{"n":1180591620717411303424}'


def test_the_account_id_is_the_first_non_empty_one_found() -> None:
    """Canonical account_id, else context.groupId; an integer id is read as text; none gives None."""
    paths = (("account_id",), ("context", "groupId"))
    assert account_id_at({"account_id": "acme", "context": {"groupId": "g"}}, paths) == "acme"
    assert account_id_at({"account_id": "", "context": {"groupId": 42}}, paths) == "42"
    assert account_id_at({"context": "not an object"}, paths) is None
    assert account_id_at(["not an object"], paths) is None


async def test_rejected_items_of_a_batch_are_dead_lettered_after_the_accepted_ones(
    client_factory: ClientFactory,
) -> None:
    """/v1/events: the good item is stored first, then each bad one as a dead letter keyed by its account or none."""
    client, sink = await client_factory()
    before = counter("preempt_ingest_dead_letters_total", outcome="written")
    bad = event("b", extra=1)
    response = await client.post("/v1/events", data=orjson.dumps([event("a"), bad, {"event": "no ids"}]), headers=AUTH)
    assert response.status == 202
    await dead_letters_done(client)
    assert sink.calls == ["events", "dead_letters"]
    keyed, unkeyed = sink.dead_letters
    assert (keyed.key, keyed.value) == (b"acme", orjson.dumps(bad))
    assert (unkeyed.key, unkeyed.value) == (None, b'{"event":"no ids"}')
    assert ("content-type", b"application/json") in keyed.headers
    headers = verdict(keyed)
    assert headers == {
        REASON: str(Reason.UNKNOWN_FIELD),
        DETAIL: headers[DETAIL],
        FIELD: "extra",
        SOURCE_TOPIC: "http:/v1/events",
        SOURCE_PARTITION: "-1",
        SOURCE_OFFSET: "-1",
        AT: "2026-11-23T06:00:00.000Z",
        SOURCE_API_KEY: "web",
    }
    assert "extra" in headers[DETAIL]
    assert verdict(unkeyed)[REASON] == str(Reason.MISSING_FIELD)
    assert counter("preempt_ingest_dead_letters_total", outcome="written") == before + 2


async def test_a_422_dead_letters_the_body_itself(client_factory: ClientFactory) -> None:
    """A single invalid event (nothing accepted, 422) is dead-lettered as the exact bytes sent, keyed by account."""
    client, sink = await client_factory()
    body = b'{"event_id": "e1", "event": "Login", "account_id": "acme", "timestamp": "not a time"}'
    response = await client.post("/v1/events", data=body, headers=AUTH)
    assert response.status == 422
    await dead_letters_done(client)
    assert sink.records == []
    [letter] = sink.dead_letters
    assert (letter.key, letter.value) == (b"acme", body)
    assert (verdict(letter)[REASON], verdict(letter)[FIELD]) == (str(Reason.INVALID_FIELD), "timestamp")


async def test_a_segment_item_is_keyed_by_its_group_id(client_factory: ClientFactory) -> None:
    """/v1/events, a Segment track item: its dead letter is keyed by context.groupId and names the field as sent."""
    client, sink = await client_factory()
    item = track() | {"messageId": ""}
    response = await client.post("/v1/events", data=orjson.dumps({"batch": [item, track("m-2")]}), headers=AUTH)
    assert response.status == 202
    await dead_letters_done(client)
    [letter] = sink.dead_letters
    assert letter.key == b"acme"
    assert verdict(letter)[FIELD] == "messageId"


async def test_requests_rejected_whole_write_no_dead_letters(client_factory: ClientFactory) -> None:
    """400, 401 and 413 are about the request, not an event: nothing is dead-lettered."""
    client, sink = await client_factory(ingest_max_items=2)
    assert (await client.post("/v1/events", data=b"not json", headers=AUTH)).status == 400
    assert (await client.post("/v1/events", data=orjson.dumps(event()), headers={})).status == 401
    assert (await client.post("/v1/events", data=orjson.dumps([event()] * 3), headers=AUTH)).status == 413
    assert (await client.post("/v1/batch", data=b"[]", headers=BASIC)).status == 400
    await dead_letters_done(client)
    assert sink.dead_letters == []


async def test_a_tracking_call_without_an_account_is_dead_lettered_unkeyed(client_factory: ClientFactory) -> None:
    """/v1/track: a call with no account is answered 200 and dead-lettered as sent, unkeyed, naming the route."""
    client, sink = await client_factory()
    body = orjson.dumps(track(context={}))
    response = await client.post("/v1/track", data=body, headers=BASIC)
    assert response.status == 200
    await dead_letters_done(client)
    [letter] = sink.dead_letters
    assert (letter.key, letter.value) == (None, body)
    headers = verdict(letter)
    assert (headers[REASON], headers[FIELD]) == (str(Reason.MISSING_FIELD), "context.groupId")
    assert (headers[SOURCE_TOPIC], headers[SOURCE_API_KEY]) == ("http:/v1/track", "web")


async def test_a_tracking_batch_item_carries_the_shared_context_and_its_account(client_factory: ClientFactory) -> None:
    """/v1/batch: a bad item is keyed by the batch's shared groupId and written with that context under its own."""
    client, sink = await client_factory()
    bad = track("m-2", timestamp="yesterday", context={"locale": "en"})
    body = {"batch": [track(context={}), bad], "context": {"groupId": "globex"}}
    response = await client.post("/v1/batch", data=orjson.dumps(body), headers=BASIC)
    assert response.status == 200
    await dead_letters_done(client)
    assert sink.calls == ["events", "dead_letters"]
    [letter] = sink.dead_letters
    assert letter.key == b"globex"
    assert orjson.loads(letter.value or b"") == bad | {"context": {"groupId": "globex", "locale": "en"}}
    assert verdict(letter)[SOURCE_TOPIC] == "http:/v1/batch"


async def test_a_browser_call_never_dead_letters_its_write_key(client_factory: ClientFactory) -> None:
    """analytics.js's key in the body (writeKey) authenticates the call but is not in its dead letter."""
    client, sink = await client_factory()
    body = orjson.dumps(track(context={}) | {"writeKey": KEY})
    response = await client.post("/v1/t", data=body)
    assert response.status == 200
    await dead_letters_done(client)
    [letter] = sink.dead_letters
    assert KEY.encode() not in (letter.value or b"")
    assert KEY.encode() not in b"".join(value for _, value in letter.headers)
    assert orjson.loads(letter.value or b"")["messageId"] == "m-1"


async def test_a_group_call_is_keyed_by_its_group_id(client_factory: ClientFactory) -> None:
    """A group call rejected for its traits is keyed by its groupId."""
    client, sink = await client_factory()
    call = {"type": "group", "messageId": "g-1", "groupId": "acme", "traits": "not an object"}
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": [call]}), headers=BASIC)
    assert response.status == 200
    await dead_letters_done(client)
    [letter] = sink.dead_letters
    assert (letter.key, verdict(letter)[FIELD]) == (b"acme", "traits")


async def test_a_rudderstack_identify_is_keyed_by_the_account_in_its_context_traits(
    client_factory: ClientFactory,
) -> None:
    """/v1/identify with the account only in context.traits (RudderStack), rejected for its timestamp: its dead
    letter is keyed by that account, where the mapping reads it (traits.company.id also looks in context.traits)."""
    client, sink = await client_factory()
    call = {
        "messageId": "i-1",
        "userId": "u-1",
        "timestamp": "yesterday",
        "context": {"traits": {"role": "admin", "company": {"id": "initech"}}},
    }
    response = await client.post("/v1/identify", data=orjson.dumps(call), headers=BASIC)
    assert (await response.json())["rejections"][0]["field"] == "timestamp"
    await dead_letters_done(client)
    [letter] = sink.dead_letters
    assert letter.key == b"initech"


async def test_a_failed_dead_letter_write_keeps_the_answer_and_is_logged_and_counted(
    client_factory: ClientFactory,
) -> None:
    """When the dead letters cannot be written: the valid items stay stored and answered 202/200, one ERROR line
    and preempt_ingest_dead_letters_total{outcome="failed"} say how many were lost."""
    client, sink = await client_factory()
    sink.fail_dead_letters = True
    before = counter("preempt_ingest_dead_letters_total", outcome="failed")
    with capture_logs() as logs:
        events = await client.post("/v1/events", data=orjson.dumps([event("a"), {"event": "x"}]), headers=AUTH)
        tracked = await client.post("/v1/batch", data=orjson.dumps({"batch": [track(context={})]}), headers=BASIC)
        refused = await client.post("/v1/events", data=orjson.dumps({"event": "x"}), headers=AUTH)
        await dead_letters_done(client)
    assert (events.status, tracked.status, refused.status) == (202, 200, 422)
    assert (await events.json())["rejected"] == 1
    assert [key for key, _ in sink.records] == [b"acme"]
    assert counter("preempt_ingest_dead_letters_total", outcome="failed") == before + 3
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert [(e["route"], e["dead_letters"], e["source"]) for e in errors] == [
        ("/v1/events", 1, "web"),
        ("/v1/batch", 1, "web"),
        ("/v1/events", 1, "web"),
    ]
    assert "unreachable" in errors[0]["error"]


async def test_the_dead_letter_series_exist_at_zero_from_the_start(client_factory: ClientFactory) -> None:
    """Both outcomes of preempt_ingest_dead_letters_total are on /metrics before the first dead letter."""
    client, _ = await client_factory()
    text = await (await client.get("/metrics")).text()
    assert 'preempt_ingest_dead_letters_total{outcome="written"}' in text
    assert 'preempt_ingest_dead_letters_total{outcome="failed"}' in text


async def test_the_reader_shows_an_ingest_dead_letter_by_route_and_key_name(client_factory: ClientFactory) -> None:
    """`preempt events dead-letters` prints the route and the API key's name, not a partition and offset of -1."""
    client, sink = await client_factory()
    await client.post("/v1/events", data=orjson.dumps({"event": "x"}), headers=AUTH)
    await dead_letters_done(client)
    [letter] = sink.dead_letters
    stored = StoredDeadLetter(key=None, value=letter.value, verdict=verdict(letter))
    first_line = stored.describe().splitlines()[0]
    assert first_line.startswith("2026-11-23T06:00:00.000Z http:/v1/events (api key web) key=<none>: missing_field")
    assert orjson.loads(stored.to_json())[SOURCE_API_KEY] == "web"
