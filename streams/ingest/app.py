"""The ingest web app: ``POST /v1/events``, ``GET /healthz``, ``GET /metrics``.

Request handling, in order: API key (401) → body size (413) → signature when signing is on
(401) → body shape (400) → per-item validation → Kafka → 202 with a result per item, or 422 when
no item was valid (nothing is sent). When Kafka cannot take the records the answer is 503 with
``Retry-After``; a client that retries may resend events that did get through, which the rules
worker drops as duplicates by ``event_id``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from schemas.logs import get_logger
from schemas.metrics import INGEST_EVENTS, INGEST_REQUESTS
from schemas.settings import Settings
from streams.ingest.auth import SIGNATURE_HEADER, ApiKey, authenticate, parse_api_keys, verify_signature
from streams.ingest.payload import BodyError, parse_body
from streams.ingest.sink import EventSink

log = get_logger(__name__)

SINK: web.AppKey[EventSink] = web.AppKey("sink", EventSink)  # type: ignore[type-abstract]


class IngestConfig:
    """What the handler needs from the settings, parsed once at start."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.keys: list[ApiKey] = parse_api_keys(k.get_secret_value() for k in settings.ingest_api_keys)
        secret = settings.ingest_hmac_secret
        self.hmac_secret = secret.get_secret_value().encode() if secret is not None else None
        self.max_body_bytes = settings.ingest_max_body_bytes
        self.max_event_bytes = settings.max_event_bytes
        self.max_future_skew = settings.max_future_skew_seconds
        self.clock = clock


CONFIG = web.AppKey("config", IngestConfig)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(status, {"error": message}, headers)


@web.middleware
async def count_responses(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count every answer by status code (``preempt_ingest_requests_total``), errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        INGEST_REQUESTS.labels(status=str(exc.status)).inc()
        raise
    INGEST_REQUESTS.labels(status=str(response.status)).inc()
    return response


async def post_events(request: web.Request) -> web.Response:
    """Accept one event or a batch; see the module docstring for the status codes."""
    config = request.app[CONFIG]
    source = authenticate(request.headers.get("Authorization"), config.keys)
    if source is None:
        return _error(401, "missing or unknown API key (Authorization: Bearer <key>)", {"WWW-Authenticate": "Bearer"})
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return _error(413, f"the body is larger than {config.max_body_bytes} bytes")
    try:
        body = await request.read()  # aiohttp stops reading past client_max_size (chunked bodies)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the body is larger than {config.max_body_bytes} bytes")
    if len(body) > config.max_body_bytes:
        return _error(413, f"the body is larger than {config.max_body_bytes} bytes")
    now = config.clock()
    if config.hmac_secret is not None:
        problem = verify_signature(request.headers.get(SIGNATURE_HEADER), body, config.hmac_secret, now)
        if problem is not None:
            log.warning("ingest signature rejected", source=source, problem=problem)
            return _error(401, problem)
    try:
        parsed = parse_body(
            body, max_event_bytes=config.max_event_bytes, max_future_skew=config.max_future_skew, now=now
        )
    except BodyError as exc:
        return _error(400, str(exc))
    rejected = len(parsed.results) - parsed.accepted
    answer = {
        "accepted": parsed.accepted,
        "rejected": rejected,
        "results": [r.to_json() for r in parsed.results],
    }
    if rejected:
        INGEST_EVENTS.labels(outcome="rejected").inc(rejected)
    if not parsed.accepted:
        log.info("ingest request rejected", source=source, rejected=rejected)
        return _json(422, answer)
    try:
        await request.app[SINK].send_many(parsed.records)
    except Exception as exc:  # noqa: BLE001 - any producer failure means "not stored": the client must retry
        log.error("ingest could not write to Kafka", source=source, error=str(exc), events=parsed.accepted)
        return _error(503, "the event store is unavailable; retry later", {"Retry-After": "5"})
    INGEST_EVENTS.labels(outcome="accepted").inc(parsed.accepted)
    log.info("ingest request accepted", source=source, accepted=parsed.accepted, rejected=rejected)
    return _json(202, answer)


async def healthz(_request: web.Request) -> web.Response:
    """200 while the process runs."""
    return _json(200, {"status": "ok"})


async def metrics(_request: web.Request) -> web.Response:
    """The process's Prometheus metrics."""
    return web.Response(body=generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def create_ingest_app(settings: Settings, sink: EventSink, clock: Callable[[], float] = time.time) -> web.Application:
    """The ingest app for ``settings``, writing to ``sink``; the sink is started and stopped with the app.

    Raises ``ValueError`` when no API key is configured (ingest never runs open) or an entry is
    not a sha256 digest.
    """
    config = IngestConfig(settings, clock)
    if not config.keys:
        raise ValueError("HTTP ingest needs at least one API key digest in PREEMPT_INGEST_API_KEYS")
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[count_responses])
    app[CONFIG] = config
    app[SINK] = sink

    async def start_sink(_app: web.Application) -> None:
        await sink.start()

    async def stop_sink(_app: web.Application) -> None:
        await sink.stop()

    app.on_startup.append(start_sink)
    app.on_cleanup.append(stop_sink)
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
