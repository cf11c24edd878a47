"""The tracking API's HTTP routes: ``POST /v1/batch`` and ``/v1/<call>``, answered as the SDKs expect.

The Segment and RudderStack SDKs retry on 429 and 5xx (honouring ``Retry-After``) and drop a
batch on any other 4xx; they treat only 2xx (RudderStack's Python SDK: only 200) as delivered.
So, as Segment's own API does, a batch that could be read is answered **200** even when some
(or all) of its items were rejected — retrying those would never succeed — and the rejections
are counted (``preempt_ingest_tracking_calls_total{outcome="rejected"}``), logged, listed in
the body for people who look, and sent to the events dead-letter topic (``preempt events
dead-letters`` shows them to the sender, whose SDK ignores the body). Calls skipped as normal
traffic (an anonymous visitor's page, screen or identify without an account) are counted by
reason (``preempt_ingest_tracking_calls_skipped_total``) and in the body's ``skipped``, not
dead-lettered. Error bodies carry ``code`` and ``message``, which the SDKs log.

``/v1/import`` is Segment's older name for ``/v1/batch``: analytics-java (at ``/v1/import/``),
rudder-sdk-java and Analytics.NET still post their batches there; every path also takes a trailing
slash. analytics.js (the browser) posts the single-letter paths (``/v1/t`` track, ``/v1/i``
identify, ``/v1/g`` group, ``/v1/p`` page, ``/v1/a`` alias, ``/v1/b`` batch) with the key in the
body; browsers may call only from ``PREEMPT_INGEST_CORS_ORIGINS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web

from streams.ingest.gate import (
    CONFIG,
    Admitted,
    IngestConfig,
    admit,
    error_response,
    json_response,
    queue_dead_letters,
    store,
)
from streams.ingest.parse_lanes import PARSE_LANES, ParseUnavailable
from streams.ingest.payload import BodyError, TooManyItems
from streams.ingest.rejected import first_rejection
from streams.ingest.tracking import parse_tracking
from streams.runtime.logs import get_logger
from streams.runtime.metrics import (
    INGEST_ACCOUNT_UPDATES_REFUSED,
    INGEST_EVENTS,
    INGEST_TRACKING_CALLS,
    INGEST_TRACKING_CALLS_SKIPPED,
)

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROUTES: dict[str, str | None] = {
    "batch": None,
    # Segment's older name for /v1/batch, still where analytics-java, rudder-sdk-java and
    # Analytics.NET post their batches.
    "import": None,
    "track": "track",
    "identify": "identify",
    "group": "group",
    "page": "page",
    "screen": "screen",
    "alias": "alias",
    # analytics.js (browser) paths
    "b": None,
    "t": "track",
    "i": "identify",
    "g": "group",
    "p": "page",
    "s": "screen",
    "a": "alias",
}
MAX_LISTED_REJECTIONS = 100
# What the browser SDKs send besides the safelisted headers: RudderStack's JS SDK (v1.1 and v3) puts
# the write key in Authorization and the visitor's id, base64, in AnonymousId on every call, with
# Content-Type application/json. A preflight that does not allow one of them makes the browser send
# nothing at all.
CORS_ALLOWED_HEADERS = "Authorization, Content-Type, AnonymousId"


def tracking_error(status: int, code: str, message: str) -> web.Response:
    """An error in the shape the SDKs read (``code``, ``message``); ``Retry-After`` on 429/503."""
    return error_response(status, {"success": False, "code": code, "message": message}, code, message)


def tracking_handler(call: str | None) -> Handler:
    """The handler for one tracking route (``call`` None = a batch of any calls)."""

    async def handle(request: web.Request) -> web.Response:
        admitted = await admit(request, tracking_error, body_key=True, batch=call is None)
        if not isinstance(admitted, Admitted):
            return admitted
        try:
            return await answer(request, admitted)
        finally:
            admitted.release()

    async def answer(request: web.Request, admitted: Admitted) -> web.Response:
        config = request.app[CONFIG]
        parse = partial(parse_tracking, admitted.body, call, config.tracking, admitted.received_at)
        try:
            parsed = await request.app[PARSE_LANES].run(parse, slot=admitted.slot)
        except TooManyItems as exc:
            return tracking_error(413, "too_many_items", str(exc))
        except BodyError as exc:
            return tracking_error(400, "invalid_request", str(exc))
        except ParseUnavailable as exc:
            return tracking_error(503, "parse_failed", str(exc))
        account_updates, refused = parsed.account_updates, 0
        if admitted.source in config.event_only_sources and account_updates:
            account_updates, refused = [], len(account_updates)  # a public key changes no account (owner, plan…)
        problem = await store(request, tracking_error, admitted.source, parsed.events, account_updates)
        if problem is not None:
            return problem
        for (call_type, outcome), n in parsed.counts.items():
            INGEST_TRACKING_CALLS.labels(type=call_type, outcome=outcome).inc(n)
        for (call_type, reason), n in parsed.skips.items():
            INGEST_TRACKING_CALLS_SKIPPED.labels(type=call_type, reason=str(reason)).inc(n)
        if parsed.events:
            INGEST_EVENTS.labels(outcome="accepted").inc(len(parsed.events))
        if refused:
            _account_updates_refused(config, admitted.source, refused)
        if parsed.rejections:
            INGEST_EVENTS.labels(outcome="rejected").inc(len(parsed.rejections))
            log.warning(
                "tracking calls rejected",
                source=admitted.source,
                rejected=len(parsed.rejections),
                **first_rejection(parsed.rejections[0].rejection),
            )
        log.info(
            "tracking calls accepted",
            source=admitted.source,
            events=len(parsed.events),
            account_updates=len(account_updates),
            account_updates_refused=refused,
            ignored=parsed.ignored,
            skipped=parsed.skipped,
            rejected=len(parsed.rejections),
        )
        queue_dead_letters(request, admitted, parsed.rejected)
        return json_response(
            200,
            {
                "success": True,
                "accepted": len(parsed.events),
                "ignored": parsed.ignored,
                "skipped": parsed.skipped,
                "rejected": len(parsed.rejections),
                "rejections": [r.to_json() for r in parsed.rejections[:MAX_LISTED_REJECTIONS]],
                **({"account_updates_refused": refused} if refused else {}),
            },
        )

    return handle


def _account_updates_refused(config: IngestConfig, source: str, refused: int) -> None:
    """Count the group calls of an event-only key whose account patch was not written; WARN once per source."""
    INGEST_ACCOUNT_UPDATES_REFUSED.labels(source=source).inc(refused)
    if source not in config.event_only_warned:
        config.event_only_warned.add(source)
        log.warning(
            "account updates refused: the key's source is in PREEMPT_INGEST_EVENT_ONLY_SOURCES, so its group calls "
            "change no account record (their traits stay on the 'Group Identified' events); send account traits "
            "from a server with a private key",
            source=source,
        )


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for the tracking routes, for the origins in ``PREEMPT_INGEST_CORS_ORIGINS`` only."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in request.app[CONFIG].cors_origins and _is_tracking(request.path)
    if request.method == "OPTIONS" and allowed:
        response: web.StreamResponse = web.Response(status=204)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
            if not allowed:
                raise
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = origin or ""
        response.headers["Vary"] = "Origin"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = CORS_ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
    return response


def _is_tracking(path: str) -> bool:
    return path.startswith("/v1/") and path[4:].removesuffix("/") in ROUTES


def add_tracking_routes(app: web.Application) -> None:
    """Register ``POST /v1/batch``, ``/v1/<call>`` and the analytics.js paths on ``app``, each also with a
    trailing slash: analytics-java 3.5.1 posts to ``/v1/import/`` (a redirect would not do: a client
    need not resend a POST body to it)."""
    for path, call in ROUTES.items():
        handler = tracking_handler(call)
        app.router.add_post(f"/v1/{path}", handler)
        app.router.add_post(f"/v1/{path}/", handler)
