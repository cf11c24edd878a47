"""The tracking API over HTTP: SDK-style answers, and every abuse case → the right status, nothing produced."""

from __future__ import annotations

import gzip
import time
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from streams.ingest.app import create_ingest_app
from streams.ingest.auth import key_digest, sign
from streams.runtime.settings import Settings
from tests.unit.streams.ingest.conftest import (
    BASIC,
    KEY,
    NOW,
    ClientFactory,
    MemorySink,
    counter,
    dead_letters_done,
    track,
)

EVENTS_DOC = Path(__file__).resolve().parents[4] / "docs" / "events.md"


async def test_a_batch_with_basic_auth_is_answered_200_success(client_factory: ClientFactory) -> None:
    """The SDKs' request (Basic auth with the write key, /v1/batch) gets 200 {"success": true} and lands in the sink."""
    client, sink = await client_factory()
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": [track()]}), headers=BASIC)
    assert response.status == 200
    body = await response.json()
    assert body["success"] is True
    assert (body["accepted"], body["rejected"], body["ignored"]) == (1, 0, 0)
    assert [key for key, _ in sink.records] == [b"acme"]


async def test_a_mixed_batch_is_200_with_bad_items_dropped_and_counted(client_factory: ClientFactory) -> None:
    """Good, account-less and alias items: 200 (so the SDK never retries), the good one sent, the others counted."""
    client, sink = await client_factory()
    before = counter("preempt_ingest_tracking_calls_total", type="track", outcome="rejected")
    ignored = counter("preempt_ingest_tracking_calls_total", type="alias", outcome="ignored")
    items = [track("ok"), track("no-account", context={}), {"type": "alias", "messageId": "a", "previousId": "x"}]
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": items}), headers=BASIC)
    assert response.status == 200
    body = await response.json()
    assert (body["accepted"], body["rejected"], body["ignored"]) == (1, 1, 1)
    assert body["rejections"][0]["messageId"] == "no-account"
    assert body["rejections"][0]["field"] == "context.groupId"
    assert [orjson.loads(v)["event_id"] for _, v in sink.records] == ["ok"]
    assert counter("preempt_ingest_tracking_calls_total", type="track", outcome="rejected") == before + 1
    assert counter("preempt_ingest_tracking_calls_total", type="alias", outcome="ignored") == ignored + 1


async def test_anonymous_page_screen_and_identify_calls_are_skipped_counted_and_not_dead_lettered(
    client_factory: ClientFactory,
) -> None:
    """A batch of an anonymous visitor's page, screen and identify calls (no account) and a track call without one:
    200; the three are skipped (answer, preempt_ingest_tracking_calls_skipped_total{reason="no_account"}), only
    the track call is rejected and dead-lettered."""
    client, sink = await client_factory()
    anonymous = {"userId": None, "anonymousId": "anon-1", "timestamp": "2026-11-23T05:00:00Z", "context": {}}
    items = [
        {"type": "page", "messageId": "p", "name": "Pricing"} | anonymous,
        {"type": "screen", "messageId": "s", "name": "Home"} | anonymous,
        {"type": "identify", "messageId": "i", "traits": {"locale": "en"}} | anonymous,
        track("t", context={}),
    ]
    kinds = ("page", "screen", "identify")
    skipped = {
        kind: counter("preempt_ingest_tracking_calls_skipped_total", type=kind, reason="no_account") for kind in kinds
    }
    outcome = counter("preempt_ingest_tracking_calls_total", type="page", outcome="skipped")
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": items}), headers=BASIC)
    assert response.status == 200
    body = await response.json()
    assert (body["accepted"], body["skipped"], body["rejected"]) == (0, 3, 1)
    assert [r["messageId"] for r in body["rejections"]] == ["t"]
    await dead_letters_done(client)
    assert [orjson.loads(letter.value or b"")["messageId"] for letter in sink.dead_letters] == ["t"]
    for kind in kinds:
        assert (
            counter("preempt_ingest_tracking_calls_skipped_total", type=kind, reason="no_account") == skipped[kind] + 1
        )
    assert counter("preempt_ingest_tracking_calls_total", type="page", outcome="skipped") == outcome + 1


@pytest.mark.parametrize(
    ("path", "body", "event"),
    [
        ("/v1/track", track(), "Report Exported"),
        (
            "/v1/identify",
            {"messageId": "i", "userId": "u", "traits": {"role": "admin"}, "context": {"groupId": "acme"}},
            "User Identified",
        ),
        (
            "/v1/page",
            {"messageId": "p", "userId": "u", "name": "Billing", "context": {"groupId": "acme"}},
            "Page Viewed",
        ),
        (
            "/v1/screen",
            {"messageId": "s", "userId": "u", "name": "Home", "context": {"groupId": "acme"}},
            "Screen Viewed",
        ),
        (
            "/v1/group",
            {"messageId": "g", "userId": "u", "groupId": "acme", "traits": {"plan": "pro"}},
            "Group Identified",
        ),
    ],
)
async def test_single_call_routes(client_factory: ClientFactory, path: str, body: dict[str, Any], event: str) -> None:
    """/v1/track, /identify, /page, /screen and /group each accept one call and produce its event."""
    client, sink = await client_factory()
    response = await client.post(path, data=orjson.dumps(body), headers=BASIC)
    assert response.status == 200, await response.text()
    assert [orjson.loads(v)["event"] for _, v in sink.records] == [event]
    expected_updates = [(b"acme", orjson.dumps({"account_id": "acme", "plan": "pro"}))] if path == "/v1/group" else []
    assert sink.account_updates == expected_updates


@pytest.mark.parametrize("path", ["/v1/import", "/v1/import/", "/v1/batch/"])
async def test_the_java_and_dotnet_sdks_batch_path_v1_import_is_a_batch(
    client_factory: ClientFactory, path: str
) -> None:
    """/v1/import, where analytics-java (3.5.1 posts to /v1/import/, with the slash), rudder-sdk-java and
    Analytics.NET post their batches (gzip, Basic auth), is /v1/batch: 200 and the events produced, not a 404
    the SDK drops the batch on. A trailing slash is the same route."""
    client, sink = await client_factory()
    body = {"batch": [track("j-1"), track("j-2")], "sentAt": "2026-11-23T05:00:00Z", "context": {"library": {}}}
    response = await client.post(
        path, data=gzip.compress(orjson.dumps(body)), headers=BASIC | {"Content-Encoding": "gzip"}
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["accepted"] == 2
    assert [orjson.loads(v)["event_id"] for _, v in sink.records] == ["j-1", "j-2"]


async def test_alias_is_accepted_and_produces_nothing(client_factory: ClientFactory) -> None:
    """/v1/alias answers 200 and sends nothing."""
    client, sink = await client_factory()
    response = await client.post("/v1/alias", data=orjson.dumps({"previousId": "a", "userId": "b"}), headers=BASIC)
    assert response.status == 200
    assert (await response.json())["ignored"] == 1
    assert sink.records == sink.account_updates == []


async def test_gzip_bodies_are_accepted(client_factory: ClientFactory) -> None:
    """Content-Encoding: gzip (RudderStack's default) is inflated after authentication."""
    client, sink = await client_factory()
    data = gzip.compress(orjson.dumps({"batch": [track()]}))
    response = await client.post("/v1/batch", data=data, headers=BASIC | {"Content-Encoding": "gzip"})
    assert response.status == 200
    assert len(sink.records) == 1


BOMB = gzip.compress(orjson.dumps({"batch": [track(context={"groupId": "acme", "pad": "0" * 20_000_000})]}))


@pytest.mark.parametrize(
    ("headers", "data", "settings", "status", "code"),
    [
        ({}, orjson.dumps({"batch": [track()]}), {}, 401, "unauthorized"),
        ({"Authorization": "Bearer wrong"}, orjson.dumps({"batch": [track()]}), {}, 401, "unauthorized"),
        (BASIC | {"Content-Encoding": "gzip"}, BOMB, {}, 413, "payload_too_large"),
        (BASIC | {"Content-Encoding": "gzip"}, b"\x1f\x8b garbage", {}, 400, "invalid_body"),
        (BASIC | {"Content-Encoding": "br"}, b"x", {}, 415, "unsupported_encoding"),
        (
            BASIC,
            orjson.dumps({"batch": [track(str(i)) for i in range(11)]}),
            {"ingest_max_items": 10},
            413,
            "too_many_items",
        ),
        (
            BASIC,
            orjson.dumps({"batch": [track()], "context": {"traits": {"x": "y" * 9000}}}),
            {},
            400,
            "invalid_request",
        ),
        (BASIC, b"[1, 2]", {}, 400, "invalid_request"),
        (BASIC, b"{nope", {}, 400, "invalid_request"),
        (BASIC, orjson.dumps({"batch": "x"}), {}, 400, "invalid_request"),
        (
            BASIC,
            b"x" * 70_000,
            {"ingest_max_body_bytes": 2048, "ingest_max_batch_body_bytes": 65_536},
            413,
            "payload_too_large",
        ),
    ],
    ids=[
        "no-key",
        "wrong-key",
        "gzip-bomb",
        "corrupt-gzip",
        "unknown-encoding",
        "too-many-items",
        "huge-shared-context",
        "not-an-object",
        "not-json",
        "batch-not-array",
        "oversize",
    ],
)
async def test_abuse_gets_the_right_status_and_produces_nothing(
    client_factory: ClientFactory,
    headers: dict[str, str],
    data: bytes,
    settings: dict[str, Any],
    status: int,
    code: str,
) -> None:
    """Each abuse case is answered with its status and an SDK-readable code/message, and logged once with them;
    0 records are produced."""
    client, sink = await client_factory(**settings)
    with capture_logs() as logs:
        response = await client.post("/v1/batch", data=data, headers=headers)
    assert response.status == status
    body = await response.json()
    assert (body["success"], body["code"]) == (False, code)
    assert body["message"]
    assert sink.records == sink.account_updates == []
    refused = [(e["status"], e["code"], e["reason"]) for e in logs if e["event"] == "ingest request refused"]
    assert refused == [(status, code, body["message"])]


LATIN_1 = orjson.dumps({"batch": [track(event="Café")]}).replace("é".encode(), b"\xe9")
LATIN_1_AT = LATIN_1.index(b"\xe9")


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/events"])
@pytest.mark.parametrize(
    ("data", "says"),
    [
        (LATIN_1, f"not UTF-8 (invalid byte at {LATIN_1_AT})"),
        (gzip.compress(orjson.dumps({"batch": [track()]})), "gzip-compressed but has no Content-Encoding"),
        (b" \r\n ", "empty"),
    ],
    ids=["latin-1", "gzip-without-header", "blank"],
)
async def test_a_body_that_is_not_utf8_json_says_what_it_is(
    client_factory: ClientFactory, path: str, data: bytes, says: str
) -> None:
    """A Latin-1 body, a gzip body without its header and a blank body get a 400 that says which (orjson said
    "str is not valid UTF-8: surrogates not allowed" for the first two)."""
    client, sink = await client_factory()
    response = await client.post(path, data=data, headers=BASIC)
    assert response.status == 400
    body = await response.json()
    assert says in body.get("message", body.get("error", ""))
    assert sink.records == []


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/events"])
async def test_a_body_compressed_twice_is_not_told_to_send_the_header_it_sent(
    client_factory: ClientFactory, path: str
) -> None:
    """A body gzipped twice (a proxy or middleware compressing an SDK's already-gzipped batch) with
    ``Content-Encoding: gzip`` was answered "gzip-compressed but has no Content-Encoding: gzip header; send the
    header" — the header was sent, and the sender was sent looking for the wrong problem."""
    client, sink = await client_factory()
    twice = gzip.compress(gzip.compress(orjson.dumps({"batch": [track()]})))
    response = await client.post(path, data=twice, headers={**BASIC, "Content-Encoding": "gzip"})
    assert response.status == 400
    body = await response.json()
    message = body.get("message", body.get("error", ""))
    assert "compressed twice" in message, message
    assert "has no Content-Encoding" not in message
    assert sink.records == []


@pytest.mark.parametrize(("path", "status"), [("/v1/batch", 200), ("/v1/events", 202)])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_a_non_finite_number_rejects_its_item_not_the_whole_batch(
    client_factory: ClientFactory, path: str, status: int, literal: str
) -> None:
    """Python's json.dumps — what segment-analytics-python and rudder-sdk-python send — writes float("nan") as
    NaN, which JSON has not: the batch was a 400 and the SDK dropped every call in it. Now only the item holding
    it is rejected (number_out_of_range, dead-lettered with the number as sent); the others are stored."""
    client, sink = await client_factory()
    items = [track("good-1"), track("bad", properties={"score": 0.0}), track("good-2")]
    data = orjson.dumps({"batch": items}).replace(b'"score":0.0', f'"score":{literal}'.encode())
    assert literal.encode() in data
    response = await client.post(path, data=data, headers=BASIC)
    assert response.status == status, await response.text()
    body = await response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert [orjson.loads(v)["event_id"] for _, v in sink.records] == ["good-1", "good-2"]
    await dead_letters_done(client)
    [letter] = sink.dead_letters
    assert dict(letter.headers)["preempt.dlq.reason"] == b"number_out_of_range"
    assert f'"score":{literal}'.encode() in (letter.value or b"")


@pytest.mark.parametrize(("path", "status"), [("/v1/batch", 200), ("/v1/events", 202)])
async def test_a_lone_surrogate_escape_becomes_the_replacement_character(
    client_factory: ClientFactory, path: str, status: int
) -> None:
    """JavaScript's "Great report 👍".slice(0, 14) cuts the emoji in half, and JSON.stringify writes the half as
    \\ud83d (analytics-node, analytics.js): the batch was a 400 and the SDK dropped every call in it. As Segment's
    and RudderStack's servers do, a lone surrogate is read as U+FFFD; every item is stored."""
    client, sink = await client_factory()
    items = [track("a"), track("lone", event="Titled X", properties={"title": "Great Q report"}), track("b")]
    data = orjson.dumps({"batch": items}).replace(b" X", b" \\ud83d").replace(b" Q", b" \\udc4d")
    response = await client.post(path, data=data, headers=BASIC)
    assert response.status == status, await response.text()
    assert (await response.json())["accepted"] == 3
    stored = {e["event_id"]: e for e in (orjson.loads(v) for _, v in sink.records)}
    assert sorted(stored) == ["a", "b", "lone"]
    assert stored["lone"]["event"] == "Titled \ufffd"
    assert stored["lone"]["properties"] == {"title": "Great \ufffd report"}


async def test_a_non_finite_number_next_to_broken_json_is_still_a_400(client_factory: ClientFactory) -> None:
    """The lenient reading is only for NaN and ±Infinity: a body that is not JSON otherwise stays a 400."""
    client, sink = await client_factory()
    response = await client.post("/v1/batch", data=b'{"batch": [{"x": NaN}, {"y": 1,}]}', headers=BASIC)
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["message"]
    assert sink.records == []


@pytest.mark.parametrize(("path", "status"), [("/v1/batch", 200), ("/v1/events", 202)])
async def test_a_utf8_byte_order_mark_before_the_json_is_ignored(
    client_factory: ClientFactory, path: str, status: int
) -> None:
    """A body starting with a UTF-8 BOM (Windows tools write one; RFC 8259 lets a reader ignore it) is read,
    as preempt publish reads such a file."""
    client, sink = await client_factory()
    response = await client.post(path, data=b"\xef\xbb\xbf" + orjson.dumps({"batch": [track()]}), headers=BASIC)
    assert response.status == status, await response.text()
    assert len(sink.records) == 1


async def test_gzip_is_not_inflated_before_the_key_is_checked(client_factory: ClientFactory) -> None:
    """A gzip body with a wrong key is refused with 401 without ever reaching the decompressor."""
    client, sink = await client_factory()
    with mock.patch("streams.ingest.gate.decode_content", side_effect=AssertionError("inflated")) as inflate:
        response = await client.post(
            "/v1/batch", data=BOMB, headers={"Authorization": "Bearer wrong", "Content-Encoding": "gzip"}
        )
    assert response.status == 401
    inflate.assert_not_called()
    assert sink.records == []


async def test_the_server_itself_never_inflates_bodies(client_factory: ClientFactory) -> None:
    """aiohttp's own decompression is off: with ours replaced by identity, a gzip body stays compressed bytes."""
    client, sink = await client_factory()
    data = gzip.compress(orjson.dumps({"batch": [track()]}))
    with mock.patch("streams.ingest.gate.decode_content", side_effect=lambda body, *_a, **_k: body):
        response = await client.post("/v1/batch", data=data, headers=BASIC | {"Content-Encoding": "gzip"})
    assert response.status == 400
    assert "gzip-compressed" in (await response.json())["message"]  # it reached the parser still compressed
    assert sink.records == []


async def test_a_slow_kafka_gets_429_and_a_failing_one_503_both_with_retry_after(client_factory: ClientFactory) -> None:
    """Past PREEMPT_INGEST_KAFKA_TIMEOUT_SECONDS the answer is 429; a producer error is 503; both say Retry-After."""
    client, sink = await client_factory(ingest_kafka_timeout_seconds=0.05)
    sink.delay_s = 1.0
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": [track()]}), headers=BASIC)
    assert (response.status, response.headers["Retry-After"]) == (429, "5")
    assert (await response.json())["code"] == "kafka_slow"
    sink.delay_s, sink.fail = 0.0, True
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": [track()]}), headers=BASIC)
    assert (response.status, response.headers["Retry-After"]) == (503, "5")


async def test_by_default_a_slow_kafka_is_answered_before_the_sdks_give_up_on_the_request(
    client_factory: ClientFactory,
) -> None:
    """@segment/analytics-node aborts a request after 10 s (httpRequestTimeout), Analytics.NET after 5 s; ingest
    waited exactly 10 s for Kafka, so with the broker down the SDK never saw the 429 and its Retry-After (measured
    with analytics-node: three AbortErrors, then the batch dropped as a delivery failure). With the default settings
    the 429 comes before 5 s."""
    client, sink = await client_factory()
    sink.delay_s = 30.0
    started = time.monotonic()
    response = await client.post(
        "/v1/batch",
        data=orjson.dumps({"batch": [track()]}),
        headers=BASIC,
        timeout=aiohttp.ClientTimeout(total=10.0),
    )
    assert (response.status, response.headers["Retry-After"]) == (429, "5")
    assert time.monotonic() - started < 4.8


@pytest.mark.parametrize(
    ("stamp", "reason"),
    [("nan", "malformed"), ("9" * 5000, "malformed"), ("99999999999", "more than 300s"), ("-5", "malformed")],
    ids=["nan", "5000-digits", "year-5138", "negative"],
)
async def test_absurd_signature_timestamps_get_401_never_500(
    client_factory: ClientFactory, stamp: str, reason: str
) -> None:
    """A signature header with t=nan, a huge or negative t is a 401 with the reason, nothing produced."""
    client, sink = await client_factory(ingest_hmac_secret="whsec")
    response = await client.post(
        "/v1/batch",
        data=orjson.dumps({"batch": [track()]}),
        headers=BASIC | {"X-Preempt-Signature": f"t={stamp},v1=00"},
    )
    assert response.status == 401
    assert reason in (await response.json())["message"]
    assert sink.records == []


async def test_a_replayed_signed_request_is_refused(client_factory: ClientFactory) -> None:
    """The same signed request sent twice within the window: 200, then 401; one record only."""
    client, sink = await client_factory(ingest_hmac_secret="whsec")
    data = orjson.dumps({"batch": [track()]})
    headers = BASIC | {"X-Preempt-Signature": sign(b"whsec", data, int(NOW))}
    assert (await client.post("/v1/batch", data=data, headers=headers)).status == 200
    replay = await client.post("/v1/batch", data=data, headers=headers)
    assert replay.status == 401
    assert "replay" in (await replay.json())["message"]
    assert len(sink.records) == 1


async def test_a_full_replay_guard_answers_429(client_factory: ClientFactory) -> None:
    """When the replay guard holds its capacity of live signatures, new signed requests get 429 with Retry-After."""
    client, sink = await client_factory(ingest_hmac_secret="whsec", ingest_replay_cache_size=1)
    for n, status in ((1, 200), (2, 429)):
        data = orjson.dumps({"batch": [track(f"m-{n}")]})
        headers = BASIC | {"X-Preempt-Signature": sign(b"whsec", data, int(NOW))}
        response = await client.post("/v1/batch", data=data, headers=headers)
        assert response.status == status
    assert response.headers["Retry-After"] == "5"
    assert len(sink.records) == 1


async def test_analytics_js_puts_the_key_in_the_body_and_gets_cors_for_allowed_origins(
    client_factory: ClientFactory,
) -> None:
    """/v1/t with writeKey in a text/plain body is accepted; only a configured Origin gets CORS headers."""
    client, sink = await client_factory(ingest_cors_origins=("https://app.example.test",))
    data = orjson.dumps(track() | {"writeKey": KEY})
    plain = {"Content-Type": "text/plain"}
    response = await client.post("/v1/t", data=data, headers=plain | {"Origin": "https://app.example.test"})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.test"
    other = await client.post("/v1/t", data=data, headers=plain | {"Origin": "https://evil.test"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = await client.options("/v1/b", headers={"Origin": "https://app.example.test"})
    assert preflight.status == 204
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    wrong = await client.post("/v1/t", data=orjson.dumps(track() | {"writeKey": "nope"}), headers=plain)
    assert wrong.status == 401
    big = await client.post("/v1/t", data=orjson.dumps(track(pad="x" * 70_000) | {"writeKey": KEY}), headers=plain)
    assert big.status == 401
    assert len(sink.records) == 2


@pytest.mark.parametrize(
    "configured", ["https://app.example.test/", "HTTPS://App.Example.test:443", " https://app.example.test"]
)
async def test_an_origin_written_as_a_url_still_matches_what_browsers_send(
    client_factory: ClientFactory, configured: str
) -> None:
    """Browsers send Origin "https://app.example.test"; a setting copied as a URL (trailing slash, upper case,
    the default port) never matched it, so the browser refused every analytics.js call and the server said
    nothing. The setting is read as the origin browsers send."""
    client, _ = await client_factory(ingest_cors_origins=(configured,))
    data = orjson.dumps(track() | {"writeKey": KEY})
    response = await client.post(
        "/v1/t", data=data, headers={"Content-Type": "text/plain", "Origin": "https://app.example.test"}
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.test"


async def test_an_analytics_js_batch_over_64_kib_is_admitted_on_the_write_key_it_starts_with(
    client_factory: ClientFactory,
) -> None:
    """analytics.js's batching mode posts {"writeKey", "batch", "sentAt"} (key first) to /v1/b and flushes near
    Segment's 500 KB limit: a 150 KB batch was refused 401 (the key was looked for only in bodies up to 64 KiB),
    which analytics.js takes as delivered. The key at the body's start admits it; a wrong key there, or a key
    that is not at the start of a large body, is still a 401 and nothing is stored."""
    client, sink = await client_factory()
    batch = [track(f"b-{i}", properties={"pad": "x" * 7_000}) for i in range(20)]
    plain = {"Content-Type": "text/plain"}

    def body(key: str) -> bytes:
        return orjson.dumps({"writeKey": key, "batch": batch, "sentAt": "2026-11-23T05:00:01.000Z"})

    assert len(body(KEY)) > 140_000
    response = await client.post("/v1/b", data=body(KEY), headers=plain)
    assert response.status == 200, await response.text()
    assert (await response.json())["accepted"] == 20
    assert len(sink.records) == 20
    wrong = await client.post("/v1/b", data=body("pk_wrong"), headers=plain)
    assert wrong.status == 401
    key_last = orjson.dumps({"batch": batch, "writeKey": KEY})
    assert (await client.post("/v1/b", data=key_last, headers=plain)).status == 401
    assert len(sink.records) == 20


async def test_the_preflight_allows_every_header_the_rudderstack_js_sdk_sends(client_factory: ClientFactory) -> None:
    """RudderStack's browser SDK sends Authorization (Basic write key), Content-Type and AnonymousId on every call:
    the preflight must allow all three (a browser compares them case-insensitively), or the browser sends nothing."""
    client, _ = await client_factory(ingest_cors_origins=("https://app.example.test",))
    preflight = await client.options(
        "/v1/track",
        headers={
            "Origin": "https://app.example.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "anonymousid,authorization,content-type",
        },
    )
    assert preflight.status == 204
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"anonymousid", "authorization", "content-type"} <= allowed


async def test_the_documented_rejection_answer_is_what_ingest_says(client_factory: ClientFactory) -> None:
    """docs/events.md's example answer for a batch with an account-less call matches the real response."""
    text = EVENTS_DOC.read_text()
    after = text[text.index("listed in the response for anyone who looks:") :]
    start = after.index("```json\n") + len("```json\n")
    documented = orjson.loads(after[start : after.index("```", start)])
    client, _ = await client_factory()
    items = [track("m-1"), track("m-2", context={})]
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": items}), headers=BASIC)
    answer = await response.json()
    doc_detail = documented["rejections"][0].pop("detail")
    assert answer["rejections"][0].pop("detail").startswith(doc_detail.removesuffix(" (…)"))
    assert answer == documented


async def test_analytics_js_with_the_key_in_the_body_gets_the_lenient_reading_too(
    client_factory: ClientFactory,
) -> None:
    """analytics.js — the browser SDK whose JSON.stringify writes half an emoji as \\ud83d — puts the key in the
    body: that body was read with orjson alone to find the key, so the call got a 401 ("unknown API key") where the
    same call with the key in a header is stored with U+FFFD."""
    client, sink = await client_factory()
    data = orjson.dumps(track(event="Titled X") | {"writeKey": KEY}).replace(b" X", b" \\ud83d")
    response = await client.post("/v1/t", data=data, headers={"Content-Type": "text/plain"})
    assert response.status == 200, await response.text()
    [(_, value)] = sink.records
    assert orjson.loads(value)["event"] == "Titled \ufffd"


async def test_a_batch_item_whose_type_is_not_a_string_rejects_only_that_item(client_factory: ClientFactory) -> None:
    """``"type": {}`` or ``[]`` (an unhashable value) raised TypeError looking it up among the calls: the whole
    batch was a 500, which the SDKs retry for ever. It is rejected on its own, like any other bad type."""
    client, sink = await client_factory()
    items = [track("good-1"), track("object", type={}), track("array", type=[]), track("good-2")]
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": items}), headers=BASIC)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert {(r["index"], r["field"]) for r in body["rejections"]} == {(1, "type"), (2, "type")}
    assert [orjson.loads(v)["event_id"] for _, v in sink.records] == ["good-1", "good-2"]


async def test_an_event_only_keys_group_call_changes_no_account_but_its_event_goes_on(
    client_factory: ClientFactory,
) -> None:
    """A browser's key is public: with its source event-only, a group call naming another CSM as the owner
    writes no account patch (counted, one WARN per source, said in the answer); its event is taken."""
    client, sink = await client_factory(ingest_event_only_sources=("web",))
    before = counter("preempt_ingest_account_updates_refused_total", source="web")
    call = {"messageId": "g", "userId": "u", "groupId": "acme", "traits": {"csm_email": "attacker@example.com"}}
    with capture_logs() as logs:
        for message_id in ("g1", "g2"):
            response = await client.post(
                "/v1/group", data=orjson.dumps({**call, "messageId": message_id}), headers=BASIC
            )
            assert response.status == 200, await response.text()
            assert (await response.json())["account_updates_refused"] == 1
    assert sink.account_updates == []
    assert [orjson.loads(v)["event"] for _, v in sink.records] == ["Group Identified"] * 2
    assert counter("preempt_ingest_account_updates_refused_total", source="web") == before + 2
    warnings = [r for r in logs if r["log_level"] == "warning" and r["event"].startswith("account updates refused")]
    assert [w["source"] for w in warnings] == ["web"]


def test_an_event_only_source_without_a_key_is_one_line() -> None:
    """A listed source that no key is named by (a typo) would protect nothing: ingest does not start."""
    settings = Settings(ingest_api_keys=(f"web={key_digest(KEY)}",), ingest_event_only_sources=("browser",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"PREEMPT_INGEST_EVENT_ONLY_SOURCES names 'browser', which no key"):
        create_ingest_app(settings, MemorySink())


def test_browser_origins_without_an_event_only_key_are_warned_of() -> None:
    """CORS on (browser calls) and no event-only source: one WARNING at start saying what to set."""
    keys = (f"web={key_digest(KEY)}",)
    with capture_logs() as logs:
        create_ingest_app(
            Settings(ingest_api_keys=keys, ingest_cors_origins=("https://app.example.com",)), MemorySink()
        )  # type: ignore[arg-type]
        create_ingest_app(
            Settings(
                ingest_api_keys=keys,  # type: ignore[arg-type]
                ingest_cors_origins=("https://app.example.com",),
                ingest_event_only_sources=("web",),
            ),
            MemorySink(),
        )
    warned = [r for r in logs if "no key is event-only" in r["event"]]
    assert [r["log_level"] for r in warned] == ["warning"]
