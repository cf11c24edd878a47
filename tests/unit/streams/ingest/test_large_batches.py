"""Batch bodies over PREEMPT_INGEST_MAX_BODY_BYTES on the tracking API's batch routes (rudder-sdk-python's 4 MB)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from streams.ingest.gate import CONFIG
from tests.unit.streams.ingest.conftest import AUTH, BASIC, NOW, ClientFactory, event, track


def large_batch(calls: int = 5, chars: int = 6000, prefix: str = "m") -> bytes:
    """``calls`` track calls of ~``chars`` bytes each, as one /v1/batch body."""
    return orjson.dumps({"batch": [track(f"{prefix}{i}", properties={"text": "x" * chars}) for i in range(calls)]})


async def test_a_batch_over_the_body_limit_is_read_on_the_batch_routes(client_factory: ClientFactory) -> None:
    """A 30 KB batch with a 16 KiB body limit: stored whole on /v1/batch (it was 413, which the SDK drops);
    /v1/events keeps the body limit."""
    client, sink = await client_factory(clock=lambda: NOW, ingest_max_body_bytes=16 * 1024)
    body = large_batch()
    response = await client.post("/v1/batch", data=body, headers=BASIC)
    assert response.status == 200, await response.text()
    assert (await response.json())["accepted"] == 5
    assert len(sink.records) == 5
    events = orjson.dumps([event(f"e{i}", properties={"text": "x" * 6000}) for i in range(5)])
    assert (await client.post("/v1/events", data=events, headers=AUTH)).status == 413


async def test_the_per_event_limit_still_applies_inside_a_large_batch(client_factory: ClientFactory) -> None:
    """A call over PREEMPT_MAX_EVENT_BYTES in a large batch is rejected alone (too_large); the others are stored."""
    client, sink = await client_factory(clock=lambda: NOW, ingest_max_body_bytes=16 * 1024, max_event_bytes=8 * 1024)
    calls = [track("small-1"), track("big", properties={"a": "x" * 8000, "b": "y" * 8000}), track("small-2")]
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": calls}), headers=BASIC)
    assert response.status == 200
    answer = await response.json()
    assert (answer["accepted"], [r["reason"] for r in answer["rejections"]]) == (2, ["too_large"])
    assert len(sink.records) == 2


async def test_one_large_body_at_a_time_the_next_is_429_and_the_slot_comes_back(client_factory: ClientFactory) -> None:
    """With one slot, a large batch arriving while another is being stored gets 429 (retried by the SDKs, unlike
    413); once the first is answered the slot is free again. Small batches never wait for a slot."""
    client, sink = await client_factory(
        clock=lambda: NOW, ingest_max_body_bytes=16 * 1024, ingest_large_bodies_in_flight=1
    )
    sink.delay_s = 0.3
    first = asyncio.ensure_future(client.post("/v1/batch", data=large_batch(prefix="a"), headers=BASIC))
    await asyncio.sleep(0.1)
    second = await client.post("/v1/batch", data=large_batch(prefix="b"), headers=BASIC)
    assert second.status == 429
    assert second.headers["Retry-After"] == "5"
    assert (await second.json())["code"] == "busy"
    small = await client.post("/v1/batch", data=orjson.dumps({"batch": [track("s")]}), headers=BASIC)
    assert small.status == 200
    assert (await first).status == 200
    assert (await client.post("/v1/batch", data=large_batch(prefix="c"), headers=BASIC)).status == 200


async def test_a_large_body_takes_its_slot_before_it_is_read_and_gives_it_back_when_refused(
    client_factory: ClientFactory,
) -> None:
    """A batch whose Content-Length is over the body limit takes the one slot before its body is read: a second
    large batch sent meanwhile is 429 at once, unread (before, both were read into memory first, and the slot was
    taken only once a body was whole). A large body refused after the slot was taken (415) gives it back."""
    client, sink = await client_factory(
        clock=lambda: NOW, ingest_max_body_bytes=16 * 1024, ingest_large_bodies_in_flight=1
    )
    body = large_batch(prefix="a")
    rest_sent = asyncio.Event()

    async def slowly() -> Any:
        yield body[:1000]
        await rest_sent.wait()
        yield body[1000:]

    length = {"Content-Length": str(len(body))}
    first = asyncio.ensure_future(client.post("/v1/batch", data=slowly(), headers={**BASIC, **length}))
    slots = client.server.app[CONFIG].large_bodies
    for _ in range(200):  # bounded: until the first request's head reached the server (the old code: never)
        if slots.taken:
            break
        await asyncio.sleep(0.05)
    assert slots.taken == 1, "the first large body did not take its slot while its body was still being sent"
    second = await client.post("/v1/batch", data=large_batch(prefix="b"), headers=BASIC)
    assert second.status == 429, await second.text()
    assert (await second.json())["code"] == "busy"
    assert not first.done()
    rest_sent.set()
    assert (await first).status == 200
    refused = await client.post("/v1/batch", data=body, headers={**BASIC, "Content-Encoding": "br"})
    assert refused.status == 415
    assert (await client.post("/v1/batch", data=large_batch(prefix="c"), headers=BASIC)).status == 200
    assert len(sink.records) == 10  # a and c; b was refused unread


async def test_a_body_that_stops_arriving_is_answered_408_and_gives_its_large_slot_back(
    client_factory: ClientFactory,
) -> None:
    """A sender that declares a large body and then stalls (a dropped mobile link, an SDK that gave up
    after its own 15 s timeout, or anyone with a key) held the one large-body slot for as long as it kept the
    connection open: every other sender's large batch got 429 "busy" meanwhile (seen for 80 s on a live
    ``preempt ingest``: rudder-sdk-python retries a 429 a few times, then drops the batch). Now the body must
    arrive within PREEMPT_INGEST_BODY_READ_TIMEOUT_SECONDS: the stalled request is answered 408, counted and
    logged, and the slot is free again."""
    client, sink = await client_factory(
        clock=lambda: NOW,
        ingest_max_body_bytes=16 * 1024,
        ingest_large_bodies_in_flight=1,
        ingest_body_read_timeout_seconds=0.5,
    )
    body = large_batch(prefix="a")
    never = asyncio.Event()

    async def stalls() -> Any:
        yield body[:1000]
        await never.wait()
        yield body[1000:]

    length = {"Content-Length": str(len(body))}
    stalled = asyncio.ensure_future(client.post("/v1/batch", data=stalls(), headers={**BASIC, **length}))
    slots = client.server.app[CONFIG].large_bodies
    for _ in range(200):  # bounded: until the stalled request's head reached the server
        if slots.taken:
            break
        await asyncio.sleep(0.05)
    assert slots.taken == 1
    answered = await asyncio.wait_for(stalled, timeout=10)
    assert answered.status == 408, await answered.text()
    assert (await answered.json())["code"] == "body_timeout"
    assert slots.taken == 0
    after = await client.post("/v1/batch", data=large_batch(prefix="b"), headers=BASIC)
    assert after.status == 200, await after.text()
    assert len(sink.records) == 5  # only b: nothing of the stalled body was stored
    never.set()


async def test_a_small_body_that_stops_arriving_is_answered_408_on_every_route(client_factory: ClientFactory) -> None:
    """The read deadline is not only for large bodies: /v1/events and a writeKey body (analytics.js) too."""
    client, sink = await client_factory(clock=lambda: NOW, ingest_body_read_timeout_seconds=0.3)
    never = asyncio.Event()

    def stalls(head: bytes) -> Any:
        async def body() -> Any:
            yield head
            await never.wait()

        return body()

    events = await asyncio.wait_for(
        client.post("/v1/events", data=stalls(b'{"event_id"'), headers={**AUTH, "Content-Length": "500"}), timeout=10
    )
    assert events.status == 408, await events.text()
    assert "did not arrive" in (await events.json())["error"]
    keyed = await asyncio.wait_for(
        client.post("/v1/t", data=stalls(b'{"writeKey":'), headers={"Content-Length": "500"}), timeout=10
    )
    assert keyed.status == 408, await keyed.text()
    assert sink.records == []
    never.set()
