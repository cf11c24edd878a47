"""What every ingest POST goes through before its items are looked at, and the write to Kafka after.

``admit`` checks, in this order, each step bounded before the next one costs anything:
API key (401) → declared and actual body size (413), the body arriving within
``PREEMPT_INGEST_BODY_READ_TIMEOUT_SECONDS`` (408) → signature over the bytes as sent, when
signing is on, and replay (401; 429 when the replay guard is full) → ``Content-Encoding`` (gzip
inflated only now, within a size and a ratio limit: 413; corrupt or unknown: 400/415).
``store`` writes the accepted records within ``PREEMPT_INGEST_KAFKA_TIMEOUT_SECONDS``: a slow
Kafka gets 429 with ``Retry-After``, a failing one 503 with ``Retry-After``. ``queue_dead_letters``
then hands the request's rejected items to ``dead_letter_writer``, which writes them to the events
dead-letter topic in the background: the answer (which already lists the rejections) neither
waits for nor changes with that write; its failure is logged and counted. Error answers are built
by ``error_response``, which keeps their code and message on the response (``REFUSAL``) for the
app's refusal log; ``admit`` names the good key's source on the request (``SOURCE``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from streams.ingest.auth import (
    SIGNATURE_HEADER,
    ApiKey,
    authenticate,
    parse_api_keys,
    verify_signature,
)
from streams.ingest.body import BodyTooLarge, CorruptBody, UnsupportedEncoding, decode_content
from streams.ingest.dead_letter_writer import DeadLetterWriter
from streams.ingest.group_traits import trait_map
from streams.ingest.parse_lanes import LargeBodySlot
from streams.ingest.payload import GZIP_MAGIC, BodyError, read_json_body
from streams.ingest.rejected import RejectedItem
from streams.ingest.sink import EventSink
from streams.ingest.tracking import TrackingConfig
from streams.ingest.write_health import WRITE_ACCOUNT_UPDATES, WRITE_EVENTS, IngestWriteHealth
from streams.runtime.dead_letters import ingest_dead_letter_record
from streams.runtime.logs import get_logger
from streams.runtime.replay_guard import ReplayGuard, ReplayGuardFull
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames

log = get_logger(__name__)

RETRY_AFTER_S = 5
# analytics.js in a browser cannot set an Authorization header on its simple (no preflight)
# requests, so it puts the write key in the body. Finding it means parsing JSON before the key is
# checked, so that is allowed only for small, uncompressed bodies (one call is ≤ 32 KiB).
BODY_KEY_MAX_BYTES = 64 * 1024
# analytics.js's batching mode posts {"writeKey":"…","batch":[…],"sentAt":"…"} to /v1/b and flushes
# only near Segment's 500 KB limit (or every 10 calls, so 10 large calls pass 64 KiB too). Its
# JSON.stringify writes the key first: a longer body is admitted on the key at its very start,
# found without parsing the body, before anything past the first 64 KiB is read.
LEADING_WRITE_KEY = re.compile(rb'\s*\{\s*"writeKey"\s*:\s*"([^"\\]{1,256})"')


class LargeBodies:
    """Slots for the batch bodies larger than ``PREEMPT_INGEST_MAX_BODY_BYTES`` being handled at once.

    Reading and parsing a body costs up to ~9 times its size in memory (a batch of small values);
    bodies up to ``PREEMPT_INGEST_MAX_BATCH_BODY_BYTES`` are allowed for rudder-sdk-python's batches,
    so how many are handled at once is bounded: one more is answered 429, which the SDKs retry.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.taken = 0

    def take(self) -> LargeBodySlot | None:
        """Take a slot (the caller holds it: ``LargeBodySlot.let_go`` once done with it); None when none is free."""
        if self.taken >= self.slots:
            return None
        self.taken += 1
        return LargeBodySlot(self._give_back)

    def _give_back(self) -> None:
        self.taken -= 1


class IngestConfig:
    """What the handlers need from the settings, parsed once at start."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.keys: list[ApiKey] = parse_api_keys(k.get_secret_value() for k in settings.ingest_api_keys)
        secret = settings.ingest_hmac_secret
        self.hmac_secret = secret.get_secret_value().encode() if secret is not None else None
        self.max_body_bytes = settings.ingest_max_body_bytes
        self.max_batch_body_bytes = max(settings.ingest_max_batch_body_bytes, settings.ingest_max_body_bytes)
        self.large_bodies = LargeBodies(settings.ingest_large_bodies_in_flight)
        self.max_event_bytes = settings.max_event_bytes
        self.max_future_skew = settings.max_future_skew_seconds
        self.max_items = settings.ingest_max_items
        self.max_shared_context_bytes = settings.ingest_max_shared_context_bytes
        self.max_gzip_ratio = settings.ingest_max_gzip_ratio
        self.kafka_timeout_s = settings.ingest_kafka_timeout_seconds
        self.body_read_timeout_s = settings.ingest_body_read_timeout_seconds
        self.topics = TopicNames.from_settings(settings)
        self.cors_origins = frozenset(settings.ingest_cors_origins)
        # A browser's key is public (anyone can read it from the page): its group calls must not change an
        # account's owner, and so where that account's alerts go. Its events are taken as any key's.
        self.event_only_sources = frozenset(source.strip() for source in settings.ingest_event_only_sources)
        self.event_only_warned: set[str] = set()  # the sources whose refused account updates were logged
        unknown = sorted(self.event_only_sources - {key.source for key in self.keys})
        if unknown:
            raise ValueError(
                f"PREEMPT_INGEST_EVENT_ONLY_SOURCES names {', '.join(map(repr, unknown))}, which no key in "
                'PREEMPT_INGEST_API_KEYS has: name the key there ("browser=<digest>") and list that name'
            )
        self.replays = ReplayGuard(capacity=settings.ingest_replay_cache_size)
        self.tracking = TrackingConfig(
            account_id_paths=TrackingConfig.paths(settings.ingest_account_id_paths),
            trait_map=trait_map(settings.ingest_group_traits),
            max_event_bytes=settings.max_event_bytes,
            max_future_skew=settings.max_future_skew_seconds,
            max_items=settings.ingest_max_items,
            max_shared_context_bytes=settings.ingest_max_shared_context_bytes,
        )
        self.clock = clock


CONFIG = web.AppKey("config", IngestConfig)
SINK: web.AppKey[EventSink] = web.AppKey("sink", EventSink)  # type: ignore[type-abstract]
DEAD_LETTERS = web.AppKey("dead_letters", DeadLetterWriter)
WRITES = web.AppKey("writes", IngestWriteHealth)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was refused: the code and message of its error answer, kept for the refusal log."""

    code: str
    message: str


REFUSAL = web.ResponseKey("refusal", Refusal)  # on an error answer built by ``error_response``
SOURCE = web.RequestKey("source", str)  # on a request whose API key was good: the key's name


@dataclass(frozen=True, slots=True)
class Admitted:
    """An authenticated request: the key's source, the decoded body, and when it was received."""

    source: str
    body: bytes
    received_at: float
    slot: LargeBodySlot | None = None  # one of ``LargeBodies``' slots: ``release`` it once the request is answered

    @property
    def large(self) -> bool:
        """Whether the body is over ``PREEMPT_INGEST_MAX_BODY_BYTES`` (it holds a large-body slot)."""
        return self.slot is not None

    def release(self) -> None:
        """The handler lets go of the large-body slot this request holds, if any (call once, when it is answered
        or cancelled); a parse of its body still running keeps it until that ends (``ParseLanes.run``)."""
        if self.slot is not None:
            self.slot.let_go()


Answer = Callable[[int, str, str], web.Response]  # (status, code, message) → response


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response."""
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def error_response(status: int, body: dict[str, Any], code: str, message: str) -> web.Response:
    """An error answer: ``body`` as JSON, ``Retry-After`` on 429/503, and the ``Refusal`` for the log."""
    response = json_response(status, body, retry_after_headers(status))
    response[REFUSAL] = Refusal(code, message)
    return response


async def admit(
    request: web.Request, answer: Answer, *, body_key: bool = False, batch: bool = False
) -> Admitted | web.Response:
    """The authenticated, decoded request, or the error response (see the module docstring).

    With ``body_key`` (the tracking API), a request without ``Authorization`` may carry the key as
    ``writeKey`` in a small uncompressed JSON body, as analytics.js does. With ``batch`` (the tracking
    API's batch routes) the body may hold up to ``PREEMPT_INGEST_MAX_BATCH_BODY_BYTES``; one over
    ``PREEMPT_INGEST_MAX_BODY_BYTES`` needs a ``LargeBodies`` slot (429 when none is free), which the
    caller lets go of with ``Admitted.release``. A body still arriving after
    ``PREEMPT_INGEST_BODY_READ_TIMEOUT_SECONDS`` is answered 408 (its slot, if any, is free again).
    """
    config = request.app[CONFIG]
    try:
        # Only the body reads wait inside: a stalled sender must not hold its connection, and a large
        # body's slot, for as long as it likes. A read cut off here lets go of the slot (_read_and_decode).
        async with asyncio.timeout(config.body_read_timeout_s):
            return await _admit(request, answer, config, body_key=body_key, batch=batch)
    except TimeoutError:
        return answer(
            408,
            "body_timeout",
            f"the request body did not arrive within {config.body_read_timeout_s:g} s "
            "(PREEMPT_INGEST_BODY_READ_TIMEOUT_SECONDS); send it again",
        )


async def _admit(
    request: web.Request, answer: Answer, config: IngestConfig, *, body_key: bool, batch: bool
) -> Admitted | web.Response:
    limit = config.max_batch_body_bytes if batch else config.max_body_bytes
    authorization = request.headers.get("Authorization")
    if authorization is None and body_key:
        return await _admit_body_key(request, answer, config, limit)
    source = authenticate(authorization, config.keys)
    if source is None:
        return answer(401, "unauthorized", "missing or unknown API key (Bearer <key>, or Basic auth <key>:)")
    request[SOURCE] = source
    return await _read_and_decode(request, answer, config, source, limit)


async def _admit_body_key(
    request: web.Request, answer: Answer, config: IngestConfig, limit: int
) -> Admitted | web.Response:
    if request.headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
        return answer(401, "unauthorized", "a compressed body needs the key in the Authorization header")
    if request.content_length is not None and request.content_length > limit:
        return answer(401, "unauthorized", "missing API key (Authorization header; writeKey only in small bodies)")
    head, whole = await _read_head(request, BODY_KEY_MAX_BYTES)
    if not whole:
        return await _admit_leading_key(request, answer, config, head, limit)
    body = head
    try:
        # Read as the tracking routes read it (a lone surrogate as U+FFFD…): analytics.js is the
        # sender whose JSON.stringify writes half an emoji, and it puts its key here.
        doc = read_json_body(body)
    except BodyError:
        doc = None
    key = doc.get("writeKey") if isinstance(doc, dict) else None
    source = authenticate(f"Bearer {key}", config.keys) if isinstance(key, str) and key else None
    if source is None:
        return answer(401, "unauthorized", "missing or unknown API key (Authorization header or writeKey)")
    request[SOURCE] = source
    return _decode(request, answer, config, source, body, limit)


async def _admit_leading_key(
    request: web.Request, answer: Answer, config: IngestConfig, head: bytes, limit: int
) -> Admitted | web.Response:
    """A body over ``BODY_KEY_MAX_BYTES`` without ``Authorization``: admitted on a ``writeKey`` at its start
    (analytics.js's batches), and only then read on, up to ``PREEMPT_INGEST_MAX_BODY_BYTES``."""
    match = LEADING_WRITE_KEY.match(head)
    source = authenticate(f"Bearer {match.group(1).decode('ascii', 'replace')}", config.keys) if match else None
    if source is None:
        return answer(
            401,
            "unauthorized",
            f"missing or unknown API key (Authorization header; a body over {BODY_KEY_MAX_BYTES} bytes "
            'must start with {"writeKey": "<key>", as analytics.js writes it)',
        )
    request[SOURCE] = source
    return await _read_and_decode(request, answer, config, source, limit, head)


async def _read_and_decode(
    request: web.Request, answer: Answer, config: IngestConfig, source: str, limit: int, head: bytes = b""
) -> Admitted | web.Response:
    """Read the body (after ``head``) and decode it. A body whose ``Content-Length`` is over
    ``PREEMPT_INGEST_MAX_BODY_BYTES`` takes its ``LargeBodies`` slot *before* it is read, and gets 429 at once
    when none is free: otherwise every one of N concurrent large uploads was read into memory (and inflated)
    before all but one were refused. A body without ``Content-Length`` (chunked) is checked once read."""
    length = request.content_length
    slot: LargeBodySlot | None = None
    if length is not None and config.max_body_bytes < length <= limit:
        slot = config.large_bodies.take()
        if slot is None:
            return _no_large_slot(answer, config, source, length)
    result: Admitted | web.Response | None = None
    try:
        body = await _read(request, limit, head)
        if isinstance(body, str):
            result = answer(413, "payload_too_large", body)
        else:
            result = _decode(request, answer, config, source, body, limit, slot=slot)
        return result
    finally:
        if slot is not None and not (isinstance(result, Admitted) and result.slot is slot):
            slot.let_go()  # refused, failed or not large after all: the slot is free again


def _decode(
    request: web.Request,
    answer: Answer,
    config: IngestConfig,
    source: str,
    body: bytes,
    limit: int,
    *,
    slot: LargeBodySlot | None = None,
) -> Admitted | web.Response:
    """Check the signature and inflate ``body``; a body over ``PREEMPT_INGEST_MAX_BODY_BYTES`` (as sent or
    inflated) needs a ``LargeBodies`` slot (``slot``: the one the caller took before reading, and still holds)."""
    now = config.clock()
    if config.hmac_secret is not None:
        try:
            problem = verify_signature(
                request.headers.get(SIGNATURE_HEADER), body, config.hmac_secret, now, replays=config.replays
            )
        except ReplayGuardFull as exc:
            log.error(
                "ingest replay guard is full; signed requests are refused until signatures expire", error=str(exc)
            )
            return answer(429, "replay_guard_full", "too many signed requests in the tolerance window; retry later")
        if problem is not None:
            return answer(401, "unauthorized", problem)  # logged with the other refusals (app.log_refusal)
    try:
        decoded = decode_content(
            body,
            request.headers.get("Content-Encoding"),
            max_bytes=limit,
            max_ratio=config.max_gzip_ratio,
        )
    except BodyTooLarge as exc:
        return answer(413, "payload_too_large", str(exc))
    except UnsupportedEncoding as exc:
        return answer(415, "unsupported_encoding", str(exc))
    except CorruptBody as exc:
        return answer(400, "invalid_body", str(exc))
    if decoded is not body and decoded.startswith(GZIP_MAGIC):
        # Else the parser's message blamed a missing Content-Encoding header that was sent.
        return answer(
            400,
            "invalid_body",
            "the body is gzip-compressed twice: inflated once for Content-Encoding: gzip, it is still gzip; "
            "compress it once",
        )
    if max(len(body), len(decoded)) <= config.max_body_bytes:
        return Admitted(source=source, body=decoded, received_at=now)
    if slot is None:
        slot = config.large_bodies.take()
        if slot is None:
            return _no_large_slot(answer, config, source, len(decoded))
    return Admitted(source=source, body=decoded, received_at=now, slot=slot)


def _no_large_slot(answer: Answer, config: IngestConfig, source: str, size: int) -> web.Response:
    log.warning(
        "ingest: a large batch body is already being handled; answered 429",
        source=source,
        bytes=size,
        slots=config.large_bodies.slots,
    )
    return answer(429, "busy", "another large batch is being handled; retry after Retry-After seconds")


async def _read_head(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` + 1 bytes of the raw body, and whether that is all of it."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


async def _read(request: web.Request, limit: int, head: bytes = b"") -> bytes | str:
    """The raw body (after ``head``, its part already read), or why not (over ``limit``, declared or actual)."""
    too_large = f"the body is larger than {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        return too_large
    chunks: list[bytes] = [head] if head else []
    size = len(head)
    try:
        # Read at most limit + 1 bytes, whatever Content-Length said (chunked bodies have none).
        while size <= limit:
            chunk = await request.content.read(min(64 * 1024, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except web.HTTPRequestEntityTooLarge:
        return too_large
    if size > limit:
        return too_large
    return b"".join(chunks)


async def store(
    request: web.Request,
    answer: Answer,
    source: str,
    events: Sequence[tuple[bytes, bytes]],
    account_updates: Sequence[tuple[bytes, bytes]] = (),
) -> web.Response | None:
    """Write the records (events first); None once Kafka acknowledged them all, else the 429/503.

    Each kind of write's outcome goes to the app's ``IngestWriteHealth`` (``/readyz``): not acknowledged
    in time counts as failed, as a refusal does.
    """
    config = request.app[CONFIG]
    sink = request.app[SINK]
    health = request.app[WRITES]
    started = time.monotonic()
    write, topic = WRITE_EVENTS, config.topics.events
    try:
        async with asyncio.timeout(config.kafka_timeout_s):
            if events:
                await sink.send_many(events)
                health.succeeded(topic)
            if account_updates:
                write, topic = WRITE_ACCOUNT_UPDATES, config.topics.account_updates
                await sink.send_account_updates(account_updates)
                health.succeeded(topic)
    except TimeoutError:
        health.write_failed(write, topic, f"not acknowledged within {config.kafka_timeout_s:g} s")
        log.warning(
            "ingest: Kafka did not acknowledge in time; answered 429",
            source=source,
            events=len(events),
            topic=topic,
            seconds=round(time.monotonic() - started, 3),
        )
        return answer(429, "kafka_slow", "the event store is slow; retry after Retry-After seconds")
    except Exception as exc:  # noqa: BLE001 - any producer failure means "not stored": the client must retry
        health.write_failed(write, topic, f"{type(exc).__name__}: {exc}")
        log.error("ingest could not write to Kafka", source=source, error=str(exc), events=len(events), topic=topic)
        return answer(503, "kafka_unavailable", "the event store is unavailable; retry later")
    return None


def queue_dead_letters(request: web.Request, admitted: Admitted, rejected: Sequence[RejectedItem]) -> None:
    """Hand ``rejected`` to the app's ``DeadLetterWriter`` for the events dead-letter topic; never waits.

    Called after the request's accepted records are stored. The answer already lists the
    rejections and does not wait for this write: its outcome is counted in
    ``preempt_ingest_dead_letters_total{outcome}`` and a failure logged (ERROR) by the writer.
    """
    if not rejected:
        return
    config = request.app[CONFIG]
    letters = [
        ingest_dead_letter_record(
            key=None if item.account_id is None else item.account_id.encode("utf-8", "surrogatepass"),
            value=item.value,
            content_type="application/json",
            reason=str(item.rejection.reason),
            detail=item.rejection.detail,
            field=item.rejection.field,
            route=request.path,
            api_key_source=admitted.source,
            at=config.clock(),
        )
        for item in rejected
    ]
    request.app[DEAD_LETTERS].submit(letters, source=admitted.source, route=request.path)


def retry_after_headers(status: int) -> dict[str, str] | None:
    """``Retry-After`` for the statuses a client should retry later (429, 503)."""
    return {"Retry-After": str(RETRY_AFTER_S)} if status in (429, 503) else None
