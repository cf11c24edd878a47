"""The ingest web app: ``POST /v1/events``, the tracking API (``/v1/batch``…), ``/healthz``, ``/readyz``, ``/metrics``.

Every POST first goes through ``gate.admit`` (key, size, signature and replay, gzip). Then, on
``/v1/events``: body shape (400; 413 past ``PREEMPT_INGEST_MAX_ITEMS``) → per-item validation (both in a
worker thread, ``parse_lanes``: the loop keeps answering probes and other requests) →
Kafka → 202 with a result per item, or 422 when no item was valid (no event is sent). Rejected
items then go to the events dead-letter topic in the background (``gate.queue_dead_letters``,
``dead_letter_writer``: no answer waits for that write; cleanup drains it before the sink stops). The
tracking API (``tracking_routes``) answers as the Segment/RudderStack SDKs expect. When Kafka is
slow the answer is 429, when it fails 503, both with ``Retry-After``; a client that retries may
resend events that did get through, which the rules worker drops as duplicates by ``event_id``.
Every answer is counted by status; every other refused request (4xx) is also logged by
``log_refusal`` (at most one line per kind of refusal per 10 s, ``refusal_log``): the SDKs drop a
batch on a 4xx, so its events are lost unless someone looks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from streams.ingest.account_merger import AccountMerger
from streams.ingest.dead_letter_writer import DeadLetterWriter
from streams.ingest.gate import (
    CONFIG,
    DEAD_LETTERS,
    REFUSAL,
    SINK,
    SOURCE,
    WRITES,
    Admitted,
    IngestConfig,
    admit,
    error_response,
    json_response,
    queue_dead_letters,
    store,
)
from streams.ingest.parse_lanes import PARSE_LANES, ParseLanes, ParseUnavailable
from streams.ingest.payload import BodyError, TooManyItems, parse_body
from streams.ingest.readiness import BrokerCheck, IngestReadiness
from streams.ingest.refusal_log import RefusalLog
from streams.ingest.rejected import first_rejection
from streams.ingest.sink import EventSink
from streams.ingest.tracking import ANONYMOUS_CALLS, Skip
from streams.ingest.tracking_routes import add_tracking_routes, cors
from streams.ingest.write_health import IngestWriteHealth
from streams.runtime.logs import get_logger
from streams.runtime.metrics import INGEST_EVENTS, INGEST_REQUESTS, expose_ingest_series
from streams.runtime.settings import Settings

log = get_logger(__name__)

__all__ = ["CONFIG", "READINESS", "SINK", "IngestConfig", "create_ingest_app", "stop_wait_seconds"]

READINESS = web.AppKey("readiness", IngestReadiness)
REFUSALS = web.AppKey("refusals", RefusalLog)


# Refusals logged where they happen, with what Kafka or the replay guard said (gate.store, gate.admit).
LOGGED_WHERE_REFUSED = frozenset({429, 503})
LOGGED_CHARS = 300
# The ops pages: probes and scrapes are not senders' requests (each scrape, counted, was one more "200").
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# A stop waits this much longer than the Kafka timeout for the requests in progress: every request
# whose body is read is answered by then (stored, or 429). What still runs is a client trickling its
# body, and without a bound one such connection held the stop for aiohttp's 60 s — past Kubernetes'
# 30 s grace, so the SIGKILL also took the dead letters still waiting for Kafka.
STOP_GRACE_SECONDS = 2.0


def stop_wait_seconds(settings: Settings) -> float:
    """How long a graceful stop (SIGTERM) waits for requests in progress before cutting them off.

    ``preempt ingest`` passes it to aiohttp as ``shutdown_timeout``. A request cut off was never
    answered, so nothing it carried was acknowledged: its sender retries (docs/events.md, "Stopping").
    """
    return settings.ingest_kafka_timeout_seconds + STOP_GRACE_SECONDS


def _error(status: int, code: str, message: str) -> web.Response:
    return error_response(status, {"error": message}, code, message)


@web.middleware
async def count_responses(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count every answer by status code (``preempt_ingest_requests_total``), errors included, and log
    every refused request (``log_refusal``). A GET of an ops page (probes, scrapes) is neither."""
    if request.method in {"GET", "HEAD"} and request.path in OPS_PATHS:
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        INGEST_REQUESTS.labels(status=str(exc.status)).inc()
        log_refusal(request, exc)
        raise
    except asyncio.CancelledError:
        # Only a stop cancels a handler here (aiohttp leaves handlers running when a client goes away):
        # the request outlived ``stop_wait_seconds``. It gets no answer, so its sender retries it.
        log.warning(
            "ingest stopping: request in progress cut off, not acknowledged (its sender retries)",
            route=request.path[:LOGGED_CHARS],
            source=request.get(SOURCE),
            user_agent=request.headers.get("User-Agent", "")[:LOGGED_CHARS] or None,
        )
        raise
    INGEST_REQUESTS.labels(status=str(response.status)).inc()
    log_refusal(request, response)
    return response


def log_refusal(request: web.Request, response: web.StreamResponse) -> None:
    """One WARNING for a request refused whole (4xx; 429 and 503 are logged where Kafka failed).

    Its events are lost unless the sender retries, and the SDKs drop a batch on any 4xx but 429: the
    count by status alone would not tell the operator which sender, or why. The line names the
    route, status, code and reason, the API key's name when the key was good, and the User-Agent
    (which SDK) — never the body. Throttled per status, code and key name (``refusal_log``): anyone
    who can reach the port can send refused requests, and each one no longer writes a line.
    """
    if response.status < 400 or response.status in LOGGED_WHERE_REFUSED:
        return
    refusal = response.get(REFUSAL)
    if refusal is not None:
        code, reason = refusal.code, refusal.message
    else:  # aiohttp's own answer: no such route or method
        reason = response.reason or str(response.status)
        code = reason.lower().replace(" ", "_")
    request.app[REFUSALS].refused(
        response.status,
        code,
        request.get(SOURCE),
        route=request.path[:LOGGED_CHARS],
        method=request.method,
        reason=reason[:LOGGED_CHARS],
        user_agent=request.headers.get("User-Agent", "")[:LOGGED_CHARS] or None,
    )


async def post_events(request: web.Request) -> web.Response:
    """Accept one event or a batch; see the module docstring for the status codes."""
    admitted = await admit(request, _error)
    if not isinstance(admitted, Admitted):
        return admitted
    config = request.app[CONFIG]
    parse = partial(
        parse_body,
        admitted.body,
        max_event_bytes=config.max_event_bytes,
        max_future_skew=config.max_future_skew,
        now=admitted.received_at,
        max_items=config.max_items,
        max_shared_context_bytes=config.max_shared_context_bytes,
    )
    try:
        parsed = await request.app[PARSE_LANES].run(parse, slot=admitted.slot)
    except TooManyItems as exc:
        return _error(413, "too_many_items", str(exc))
    except BodyError as exc:
        return _error(400, "invalid_request", str(exc))
    except ParseUnavailable as exc:
        return _error(503, "parse_failed", str(exc))
    rejected = len(parsed.results) - parsed.accepted
    answer = {
        "accepted": parsed.accepted,
        "rejected": rejected,
        "results": [r.to_json() for r in parsed.results],
    }
    if rejected:
        # Said why, as the tracking API does (it logged only how many, at INFO; the 422's refusal line
        # says "Unprocessable Entity"). Logged before the write: a 429 or 503 leaves them rejected too.
        log.warning(
            "ingest items rejected",
            source=admitted.source,
            rejected=rejected,
            accepted=parsed.accepted,
            **first_rejection(next(r.rejection for r in parsed.results if r.rejection is not None)),
        )
    if not parsed.accepted:
        INGEST_EVENTS.labels(outcome="rejected").inc(rejected)
        queue_dead_letters(request, admitted, parsed.rejected)
        return json_response(422, answer)
    problem = await store(request, _error, admitted.source, parsed.records)
    if problem is not None:
        return problem
    INGEST_EVENTS.labels(outcome="accepted").inc(parsed.accepted)
    if rejected:
        INGEST_EVENTS.labels(outcome="rejected").inc(rejected)
    log.info("ingest request accepted", source=admitted.source, accepted=parsed.accepted, rejected=rejected)
    queue_dead_letters(request, admitted, parsed.rejected)
    return json_response(202, answer)


async def healthz(_request: web.Request) -> web.Response:
    """200 while the process runs."""
    return json_response(200, {"status": "ok"})


async def metrics(_request: web.Request) -> web.Response:
    """The process's Prometheus metrics."""
    return web.Response(body=generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def create_ingest_app(
    settings: Settings,
    sink: EventSink,
    clock: Callable[[], float] = time.time,
    merger: AccountMerger | None = None,
    broker_check: BrokerCheck | None = None,
) -> web.Application:
    """The ingest app for ``settings``, writing to ``sink``; the sink (and ``merger``) start and stop with the app.

    ``broker_check`` (the process passes ``kafka_clients.unreachable_reason``) and the outcome of every
    write (``write_health``: the requests', the merger's) drive ``/readyz`` (``streams.ingest.readiness``).

    Raises ``ValueError`` when no API key is configured (ingest never runs open), an entry is not a
    sha256 digest, the signing secret is set but empty, or a tracking-API setting is invalid.
    """
    config = IngestConfig(settings, clock)
    if not config.keys:
        raise ValueError("HTTP ingest needs at least one API key digest in PREEMPT_INGEST_API_KEYS")
    if config.hmac_secret is not None and not config.hmac_secret.strip():
        # An empty key signs as well as any (e.g. compose's ${SECRET} of an unset variable): signing
        # would look on and protect nothing.
        raise ValueError(
            "PREEMPT_INGEST_HMAC_SECRET is set but empty: give the signing secret, or unset it to turn signing off"
        )
    if config.cors_origins and not config.event_only_sources:
        log.warning(
            "browser calls are allowed (PREEMPT_INGEST_CORS_ORIGINS) but no key is event-only: a browser's key is "
            "public, and with it anyone can change an account's owner, and so where its alerts go, by a group "
            'call; name the browser\'s key in PREEMPT_INGEST_API_KEYS ("browser=<digest>") and list that name '
            "in PREEMPT_INGEST_EVENT_ONLY_SOURCES"
        )
    app = web.Application(
        client_max_size=config.max_batch_body_bytes,
        middlewares=[count_responses, cors],
        # aiohttp would otherwise inflate gzip/deflate/br bodies while reading them, before any
        # handler ran: before authentication and without a ratio limit. gate.admit does it after.
        handler_args={"auto_decompress": False},
    )
    app[CONFIG] = config
    app[SINK] = sink
    writes = app[WRITES] = IngestWriteHealth(settings.ingest_writes_failing_seconds, time.monotonic)
    dead_letters = DeadLetterWriter(sink, config.kafka_timeout_s, health=writes, topic=config.topics.events_dlq)
    app[DEAD_LETTERS] = dead_letters
    app[REFUSALS] = RefusalLog()
    parse_lanes = app[PARSE_LANES] = ParseLanes(
        config.large_bodies.slots, large_in_processes=settings.ingest_parse_large_bodies_in_processes
    )
    if merger is not None:
        merger.health = writes
    readiness = app[READINESS] = IngestReadiness(
        broker_check, settings.broker_unreachable_seconds, writes=writes, app_name=f"{settings.topic_prefix}-ingest"
    )
    expose_ingest_series((call, reason.value) for call in sorted(ANONYMOUS_CALLS) for reason in Skip)
    stop_wait = stop_wait_seconds(settings)

    async def start(app: web.Application) -> None:
        try:
            await parse_lanes.start()
            await sink.start()
            if merger is not None:
                await merger.start()
            await readiness.start()
        except BaseException:
            # A SIGTERM while starting (connecting takes a second or two): aiohttp's run_app cancels this hook
            # and never runs the cleanup (its runner.setup() is outside its try/finally), so every Kafka
            # client was left open — four "Unclosed AIOKafka…" ERRORs at exit, the merger's consumer group
            # not left (its partitions unassigned until the session times out). Nothing was accepted yet.
            with contextlib.suppress(Exception):
                await stop(app)
            raise

    async def stopping(_app: web.Application) -> None:
        log.info("ingest stopping: no new connections; waiting for requests in progress", at_most_s=stop_wait)

    async def stop(_app: web.Application) -> None:
        # Cleanup runs once every request is answered: the last dead letters go out (or are
        # counted failed) while the sink is still up.
        await readiness.stop()
        await dead_letters.drain()
        if merger is not None:
            await merger.stop()
        await sink.stop()
        await parse_lanes.shutdown()

    app.on_startup.append(start)
    app.on_shutdown.append(stopping)
    app.on_cleanup.append(stop)
    app.router.add_post("/v1/events", post_events)
    add_tracking_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readiness.readyz)
    app.router.add_get("/metrics", metrics)
    return app
