"""The ingest web app through aiohttp's test client: status codes, per-item results, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from streams.ingest.app import create_ingest_app
from streams.ingest.auth import key_digest, sign
from streams.runtime.settings import Settings
from tests.unit.streams.ingest.conftest import (
    AUTH,
    BASIC,
    KEY,
    NOW,
    ClientFactory,
    MemorySink,
    counter,
    event,
    track,
)


async def test_valid_event_is_accepted_with_202_and_sent(client_factory: ClientFactory) -> None:
    """One valid event with a good key is answered 202 and handed to the sink keyed by account."""
    client, sink = await client_factory()
    before = counter("preempt_ingest_events_total", outcome="accepted")
    response = await client.post("/v1/events", data=orjson.dumps(event()), headers=AUTH)
    assert response.status == 202
    assert await response.json() == {
        "accepted": 1,
        "rejected": 0,
        "results": [{"index": 0, "status": "accepted", "event_id": "e1"}],
    }
    assert sink.records == [(b"acme", orjson.dumps(event()))]
    assert counter("preempt_ingest_events_total", outcome="accepted") == before + 1


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}])
async def test_missing_or_invalid_keys_get_401(client_factory: ClientFactory, headers: dict[str, str]) -> None:
    """Without a stored key the answer is 401 and nothing is sent."""
    client, sink = await client_factory()
    before = counter("preempt_ingest_requests_total", status="401")
    response = await client.post("/v1/events", data=orjson.dumps(event()), headers=headers)
    assert response.status == 401
    assert sink.records == []
    assert counter("preempt_ingest_requests_total", status="401") == before + 1


async def test_partly_valid_batch_is_accepted_with_per_item_results(client_factory: ClientFactory) -> None:
    """A batch with good and bad items answers 202, sends the good ones and names each bad one."""
    client, sink = await client_factory()
    batch = [event("a"), event("b", account_id=""), event("c", extra=1)]
    response = await client.post("/v1/events", data=orjson.dumps(batch), headers=AUTH)
    assert response.status == 202
    body = await response.json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert [(r["index"], r.get("reason"), r.get("field")) for r in body["results"]] == [
        (0, None, None),
        (1, "invalid_field", "account_id"),
        (2, "unknown_field", "extra"),
    ]
    assert len(sink.records) == 1


async def test_batch_with_nothing_valid_gets_422_and_sends_nothing(client_factory: ClientFactory) -> None:
    """When no item is valid the answer is 422 with the reasons, and the sink sees nothing."""
    client, sink = await client_factory()
    response = await client.post("/v1/events", data=orjson.dumps({"batch": [event(event=""), 5]}), headers=AUTH)
    assert response.status == 422
    assert [r["reason"] for r in (await response.json())["results"]] == ["invalid_field", "not_an_object"]
    assert sink.records == []


@pytest.mark.parametrize("good", [0, 1])
async def test_rejected_items_are_logged_with_why(client_factory: ClientFactory, good: int) -> None:
    """/v1/events logged only how many items it rejected, at INFO ("ingest request rejected", rejected=2), and
    the 422's refusal line said "Unprocessable Entity": a WARNING now names the first reason, field and detail,
    as the tracking API's "tracking calls rejected" does."""
    client, _sink = await client_factory()
    batch = [event("a")] * good + [event("b", account_id=""), 5]
    with capture_logs() as logs:
        response = await client.post("/v1/events", data=orjson.dumps(batch), headers=AUTH)
    assert response.status == (202 if good else 422)
    [line] = [entry for entry in logs if entry["event"] == "ingest items rejected"]
    assert line["log_level"] == "warning"
    assert (line["rejected"], line["accepted"], line["first_reason"], line["first_field"]) == (
        2,
        good,
        "invalid_field",
        "account_id",
    )
    assert "1 to 256 characters" in line["first_detail"]


async def test_segment_batch_is_accepted(client_factory: ClientFactory) -> None:
    """A Segment batch of track calls is mapped and sent keyed by context.groupId."""
    client, sink = await client_factory()
    track = {
        "type": "track",
        "messageId": "m-1",
        "userId": "u-1",
        "event": "Invoice Paid",
        "timestamp": "2026-11-23T05:59:00Z",
        "properties": {"amount": 99},
        "context": {"groupId": "globex"},
    }
    response = await client.post(
        "/v1/events", data=orjson.dumps({"batch": [track, track | {"messageId": "m-2"}]}), headers=AUTH
    )
    assert response.status == 202
    assert [key for key, _ in sink.records] == [b"globex", b"globex"]
    assert [orjson.loads(v)["event_id"] for _, v in sink.records] == ["m-1", "m-2"]


async def test_oversize_body_gets_413(client_factory: ClientFactory) -> None:
    """A body above PREEMPT_INGEST_MAX_BODY_BYTES is refused with 413 before it is parsed."""
    client, sink = await client_factory(ingest_max_body_bytes=2048)
    big = orjson.dumps([event(str(i)) for i in range(40)])
    assert len(big) > 2048
    response = await client.post("/v1/events", data=big, headers=AUTH)
    assert response.status == 413
    assert sink.records == []


async def test_chunked_oversize_body_gets_413(client_factory: ClientFactory) -> None:
    """A chunked body (no Content-Length) that grows past the limit is also refused with 413."""
    client, sink = await client_factory(ingest_max_body_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post("/v1/events", data=chunks(), headers=AUTH)
    assert response.status == 413
    assert sink.records == []


async def test_malformed_body_gets_400(client_factory: ClientFactory) -> None:
    """A body that is not JSON at all is 400 with the parser's message."""
    client, _ = await client_factory()
    response = await client.post("/v1/events", data=b"{not json", headers=AUTH)
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["error"]


async def test_signed_request_is_accepted_when_signing_is_on(client_factory: ClientFactory) -> None:
    """With a signing secret, a fresh signature over the exact body is accepted."""
    client, sink = await client_factory(ingest_hmac_secret="whsec")
    body = orjson.dumps(event())
    headers = AUTH | {"X-Preempt-Signature": sign(b"whsec", body, int(NOW) - 10)}
    response = await client.post("/v1/events", data=body, headers=headers)
    assert response.status == 202
    assert len(sink.records) == 1


@pytest.mark.parametrize(
    ("make_header", "needle"),
    [
        (lambda body: None, "missing"),
        (lambda body: sign(b"whsec", body, int(NOW) - 600), "more than 300s"),
        (lambda body: sign(b"not-the-secret", body, int(NOW)), "does not match"),
        (lambda body: sign(b"whsec", body.replace(b"acme", b"evil"), int(NOW)), "does not match"),
    ],
    ids=["unsigned", "stale", "forged", "signed-other-body"],
)
async def test_bad_signatures_get_401(
    client_factory: ClientFactory, make_header: Callable[[bytes], str | None], needle: str
) -> None:
    """Unsigned, stale, forged or mismatched signatures are refused with 401 and the reason."""
    client, sink = await client_factory(ingest_hmac_secret="whsec")
    body = orjson.dumps(event())
    header = make_header(body)
    headers = AUTH | ({"X-Preempt-Signature": header} if header else {})
    response = await client.post("/v1/events", data=body, headers=headers)
    assert response.status == 401
    assert needle in (await response.json())["error"]
    assert sink.records == []


async def test_kafka_failure_gets_503_with_retry_after(client_factory: ClientFactory) -> None:
    """When the sink cannot store the records the answer is 503 with Retry-After, never 202."""
    client, sink = await client_factory()
    sink.fail = True
    response = await client.post("/v1/events", data=orjson.dumps(event()), headers=AUTH)
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"


REFUSED_LOG = "ingest request refused"


@pytest.mark.parametrize(
    ("path", "headers", "data", "settings", "status", "code", "source"),
    [
        (
            "/v1/batch",
            {"Authorization": "Basic d3Jvbmc6"},
            orjson.dumps({"batch": [track()]}),
            {},
            401,
            "unauthorized",
            None,
        ),
        ("/v1/batch", BASIC, b"{not json", {}, 400, "invalid_request", "web"),
        ("/v1/events", AUTH, b"x" * 3000, {"ingest_max_body_bytes": 2048}, 413, "payload_too_large", "web"),
        ("/v1/events", AUTH, b"[]", {}, 400, "invalid_request", "web"),
        ("/v1/events", AUTH, orjson.dumps(event()), {"ingest_hmac_secret": "whsec"}, 401, "unauthorized", "web"),
        ("/v1/nope", BASIC, orjson.dumps({"batch": [track()]}), {}, 404, "not_found", None),
    ],
    ids=[
        "unknown-key",
        "not-json",
        "oversize",
        "empty-batch",
        "unsigned",
        "no-such-route",
    ],
)
async def test_a_refused_request_is_logged_with_its_reason_and_counted(
    client_factory: ClientFactory,
    path: str,
    headers: dict[str, str],
    data: bytes,
    settings: dict[str, object],
    status: int,
    code: str,
    source: str | None,
) -> None:
    """A request refused whole (its events are lost: the SDKs drop a batch on a 4xx) is counted by status and
    logged once, at WARNING, with the route, status, code, reason, the key's name when the key was good and the
    User-Agent (every tracking-API refusal: test_tracking_routes.test_abuse_gets_the_right_status…)."""
    client, sink = await client_factory(**settings)
    before = counter("preempt_ingest_requests_total", status=str(status))
    with capture_logs() as logs:
        response = await client.post(path, data=data, headers=headers | {"User-Agent": "analytics-java/3.5.1"})
    assert response.status == status
    assert counter("preempt_ingest_requests_total", status=str(status)) == before + 1
    [line] = [entry for entry in logs if entry["event"] == REFUSED_LOG]
    assert line["log_level"] == "warning"
    assert (line["route"], line["status"], line["code"], line["source"]) == (path, status, code, source)
    assert line["reason"]
    assert line["user_agent"] == "analytics-java/3.5.1"
    assert sink.records == []


async def test_refusals_repeated_by_anyone_do_not_flood_the_log(client_factory: ClientFactory) -> None:
    """Anyone who can reach the port can send requests ingest refuses (a wrong key, a made-up path): 50 of them
    wrote 50 WARNING lines. Each kind of refusal (status, code, key name) is logged once per interval; every one
    is still counted, and a different kind still gets its own line at once."""
    client, _ = await client_factory()
    before = counter("preempt_ingest_requests_total", status="401")
    wrong = {"Authorization": "Bearer nope"}
    with capture_logs() as logs:
        for index in range(50):
            response = await client.post(f"/v1/batch?n={index}", data=b"{}", headers=wrong)
            assert response.status == 401
        for index in range(20):
            assert (await client.post(f"/v1/made-up-{index}", data=b"{}", headers=wrong)).status == 404
        assert (await client.post("/v1/batch", data=b"{not json", headers=BASIC)).status == 400
    assert counter("preempt_ingest_requests_total", status="401") == before + 50
    lines = [(entry["status"], entry["code"], entry["source"]) for entry in logs if entry["event"] == REFUSED_LOG]
    assert lines == [(401, "unauthorized", None), (404, "not_found", None), (400, "invalid_request", "web")]


async def test_accepted_requests_and_kafka_refusals_are_not_logged_as_refused(client_factory: ClientFactory) -> None:
    """A 200/202 is no refusal, and a 429/503 is logged where Kafka failed (with what it said), not twice."""
    client, sink = await client_factory()
    with capture_logs() as logs:
        assert (await client.post("/v1/batch", data=orjson.dumps({"batch": [track()]}), headers=BASIC)).status == 200
        assert (await client.post("/v1/events", data=orjson.dumps(event()), headers=AUTH)).status == 202
        sink.fail = True
        assert (await client.post("/v1/events", data=orjson.dumps(event()), headers=AUTH)).status == 503
    assert [entry for entry in logs if entry["event"] == REFUSED_LOG] == []
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == ["ingest could not write to Kafka"]


async def test_health_and_metrics_need_no_key(client_factory: ClientFactory) -> None:
    """/healthz answers 200 and /metrics exposes the ingest counters."""
    client, _ = await client_factory()
    assert (await client.get("/healthz")).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert "preempt_ingest_requests_total" in metrics


def _requests_counted() -> float:
    """Every ``preempt_ingest_requests_total`` series summed, whatever the status."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "preempt_ingest_requests"
        for sample in metric.samples
        if sample.name == "preempt_ingest_requests_total"
    )


async def test_probes_and_scrapes_are_not_counted_as_ingest_requests(client_factory: ClientFactory) -> None:
    """The kubelet's /healthz and /readyz and Prometheus's /metrics are not requests of senders: counted, a
    scrape every 15 s swelled the request rate, and /readyz's 503s while the broker was away read as senders
    refused. A request to the API still counts."""
    client, _ = await client_factory()
    before = _requests_counted()
    for path in ("/healthz", "/readyz", "/metrics", "/healthz"):
        assert (await client.get(path)).status == 200
    assert _requests_counted() == before
    assert (await client.post("/v1/events", data=orjson.dumps(event()), headers=AUTH)).status == 202
    assert _requests_counted() == before + 1


def test_app_refuses_to_start_without_keys() -> None:
    """Ingest never runs open: no configured key is a ValueError at build time."""
    with pytest.raises(ValueError, match="PREEMPT_INGEST_API_KEYS"):
        create_ingest_app(Settings(), MemorySink())


def test_the_skipped_tracking_calls_are_exposed_at_zero_from_the_start() -> None:
    """Every (type, reason) of preempt_ingest_tracking_calls_skipped_total exists once the app is built, so
    that increase() and rate() see the first skipped call (Prometheus cannot tell 0 → 1 from a new series)."""
    from prometheus_client import REGISTRY

    create_ingest_app(Settings(ingest_api_keys=(f"web={key_digest(KEY)}",)), MemorySink())  # type: ignore[arg-type]
    for kind in ("identify", "page", "screen"):
        labels = {"type": kind, "reason": "no_account"}
        assert REGISTRY.get_sample_value("preempt_ingest_tracking_calls_skipped_total", labels) is not None


async def test_a_stop_while_starting_still_disconnects_what_started() -> None:
    """A SIGTERM during the start (aiohttp cancels the startup hook and skips the cleanup) left the Kafka
    clients open: "Unclosed AIOKafkaProducer/Consumer" ERRORs at exit and the merger's group not left."""
    import asyncio

    class SlowSink(MemorySink):
        entered = asyncio.Event()

        async def start(self) -> None:
            self.entered.set()
            await asyncio.Event().wait()  # a broker slow to answer

    sink = SlowSink()
    settings = Settings(ingest_api_keys=(f"web={key_digest(KEY)}",), ingest_parse_large_bodies_in_processes=False)
    app = create_ingest_app(settings, sink)
    app.freeze()
    starting = asyncio.create_task(app.startup())
    await asyncio.wait_for(sink.entered.wait(), timeout=10)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert sink.stopped
