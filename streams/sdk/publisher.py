"""The Python SDK for product engineers: validate an event locally, then send it to Kafka.

::

    from streams.sdk.publisher import Publisher

    with Publisher(bootstrap_servers="127.0.0.1:9092") as events:
        events.track("acme", "Report Exported", user_id="u-42", properties={"format": "csv"})

``track`` checks the event against the contract (the same rules as the stream's decoder) and
raises ``schemas.errors.EventRejectedError`` at once for a bad one, so mistakes surface in the
product's own code and tests rather than in a dead-letter topic. Sending is asynchronous and
batched by kafka-python (``linger_ms``); ``flush()`` waits for everything sent so far and raises
``schemas.errors.PublishError`` if Kafka refused any of it. One ``Publisher`` may be shared by
many threads.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from schemas.decoder import Reason, Rejection, decode_event, validate_event_dict
from schemas.errors import BrokerUnavailableError, EventRejectedError, PublishError
from schemas.event import MAX_EVENT_BYTES
from schemas.formatting import plural
from streams.runtime.broker_probe import probe_broker
from streams.runtime.delivery_tally import DeliveryTally, close_producer
from streams.runtime.kafka_clients import (
    check_kafka_python_access,
    kafka_python_bootstrap,
    kafka_python_config,
    metadata_max_age_ms,
)
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames, ensure_topics

log = get_logger(__name__)

CONTENT_TYPE_HEADER = ("content-type", b"application/json")
TimestampIn = datetime | str | float | int | None


def format_timestamp(value: TimestampIn, now: float) -> str:
    """An RFC 3339 string for ``track(timestamp=…)``: aware datetime, RFC 3339 text, epoch seconds or now.

    Raises ``EventRejectedError`` for a naive datetime: its offset would be a guess.
    """
    if value is None:
        value = now
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise EventRejectedError(
                str(Reason.INVALID_FIELD), "timestamp is a naive datetime; give it a tzinfo", "timestamp"
            )
        return value.isoformat(timespec="microseconds")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventRejectedError(
            str(Reason.INVALID_FIELD),
            f"timestamp must be a datetime, an RFC 3339 string or epoch seconds, got {type(value).__name__}",
            "timestamp",
        )
    try:
        moment = datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise EventRejectedError(
            str(Reason.INVALID_FIELD), f"timestamp {value!r} is out of range", "timestamp"
        ) from exc
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_event_id() -> str:
    """A random version-4 UUID in hex.

    Not ``uuid.uuid4()``: it reads ``os.urandom`` per call, which costs tens of µs on some VMs.
    128 bits from the ``random`` module (seeded from the OS, reseeded in forked children) are
    just as unique for de-duplication, which is all an event id is for.
    """
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


def _reject(rejection: Rejection) -> EventRejectedError:
    return EventRejectedError(str(rejection.reason), rejection.detail, rejection.field)


def encode_event(
    payload: Mapping[str, Any], *, max_bytes: int, max_future_skew: float, now: float
) -> tuple[bytes, bytes]:
    """Validate a canonical event dict and return its Kafka (key, value); raise ``EventRejectedError``.

    Shared by the SDK and ``preempt publish``: exactly the checks the stream applies, so an event
    that passes here is never dead-lettered for its content.
    """
    payload = {name: _plain(value) for name, value in payload.items()}
    result = validate_event_dict(payload, max_future_skew=max_future_skew, now=now)
    if isinstance(result, Rejection):
        raise _reject(result)
    try:
        value = orjson.dumps(payload)
    except TypeError as exc:  # a set, bytes, Decimal…, or a lone surrogate ("\ud83d") in any string
        field = next((name for name, value in payload.items() if not _json_ok(value)), None)
        raise EventRejectedError(
            str(Reason.INVALID_FIELD), f"{field or 'event'} is not JSON-serialisable: {exc}", field
        ) from exc
    if len(value) > max_bytes:
        raise EventRejectedError(
            str(Reason.TOO_LARGE), f"the event is {len(value)} bytes encoded; the limit is {max_bytes}"
        )
    return result.account_id.encode("utf-8"), value


def _json_ok(value: object) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def _plain(value: object) -> object:
    # What a top-level field holds, as the contract's checks look for it (exact ``str`` and ``dict``):
    # a StrEnum member was refused "event must be a string, got a string", an OrderedDict or other
    # Mapping as properties "must be a JSON object, got an object". Nested values need no copy.
    if isinstance(value, Mapping) and type(value) is not dict:
        return dict(value)
    return _as_text(value)


def _as_text(value: object) -> object:
    # StrEnum members and other str subclasses are strings to the product engineer; the
    # contract's checks look for exact ``str``.
    return str(value) if isinstance(value, str) else value


class Publisher:
    """Publishes usage events to ``preempt.events``, keyed by account, batched by kafka-python.

    ``bootstrap_servers`` and ``topic`` say where; ``linger_ms`` how long to wait to fill a batch
    (higher = fewer, larger requests); ``acks="all"`` waits for the in-sync replicas.
    ``max_event_bytes`` and ``max_future_skew`` should match the stream's settings (the defaults
    do). Extra keyword arguments go to ``kafka.KafkaProducer`` (security settings and the like): with TLS
    or SASL (``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``, ``sasl_plain_password``,
    ``ssl_cafile``…) one connection checks them first, so a refused login or an untrusted certificate is a
    ``KafkaAccessError`` (a ``ConfigError``) at once, naming the argument to fix (``access_check=False``
    skips it). ``producer`` replaces the KafkaProducer altogether (tests).
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] = "127.0.0.1:9092",
        topic: str = "preempt.events",
        *,
        linger_ms: int = 5,
        batch_size: int = 64 * 1024,
        acks: int | str = "all",
        client_id: str = "preempt-publisher",
        max_event_bytes: int = MAX_EVENT_BYTES,
        max_future_skew: float = 300.0,
        clock: Callable[[], float] = time.time,
        producer: Any = None,
        access_check: bool = True,
        **producer_config: Any,
    ) -> None:
        self.topic = topic
        self.max_event_bytes = max_event_bytes
        self.max_future_skew = max_future_skew
        self._clock = clock
        if producer is None:
            if access_check:
                # A refused login or certificate is a KafkaAccessError naming the argument to fix, at once: kafka-python
                # only retries until bootstrap_timeout_ms and reports a broker it "cannot reach".
                timeout_ms = producer_config.get("bootstrap_timeout_ms") or 15_000
                check_kafka_python_access(bootstrap_servers, producer_config, timeout_s=min(15.0, timeout_ms / 1000))
            try:
                producer = KafkaProducer(
                    bootstrap_servers=bootstrap_servers,
                    client_id=client_id,
                    acks=acks,
                    linger_ms=linger_ms,
                    batch_size=batch_size,
                    # The broker must hold a record of max_event_bytes plus framing in one request.
                    max_request_size=max(1024 * 1024, max_event_bytes * 4),
                    **producer_config,
                )
            except (KafkaTimeoutError, KafkaConnectionError) as exc:
                # kafka-python's own error type leaked out of the SDK (after its 30 s bootstrap_timeout_ms):
                # a caller catching the SDK's errors (schemas.errors.PreemptError) missed it.
                where = bootstrap_servers if isinstance(bootstrap_servers, str) else ", ".join(bootstrap_servers)
                raise BrokerUnavailableError(
                    f"cannot reach Kafka at {where} ({type(exc).__name__}: {exc}); is the broker running, "
                    "and are bootstrap_servers (and the security settings) right?"
                ) from exc
        self._producer = producer
        self._lock = threading.Lock()
        self._closed = False
        self.tally = DeliveryTally()
        """Events sent, acknowledged and refused so far (a command's count when the broker goes away)."""
        self._failed = 0
        self._first_error: BaseException | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Publisher:
        """A publisher for a Preempt deployment's settings; creates the topics when missing.

        Raises ``BrokerUnavailableError`` within ``PREEMPT_BROKER_PROBE_SECONDS`` (5 s) when no broker
        answers (it was kafka-python's ``KafkaTimeoutError``, after 30 s).
        """
        probe_broker(settings)
        ensure_topics(settings)
        return cls(
            bootstrap_servers=kafka_python_bootstrap(settings),
            topic=TopicNames.from_settings(settings).events,
            max_event_bytes=settings.max_event_bytes,
            max_future_skew=settings.max_future_skew_seconds,
            access_check=False,  # probe_broker checked it
            **(kafka_python_config(settings) | {"metadata_max_age_ms": metadata_max_age_ms(settings)} | kwargs),
        )

    # -- sending -------------------------------------------------------------------------------

    def track(
        self,
        account_id: str,
        event: str,
        user_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: TimestampIn = None,
        event_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> str:
        """Validate and send one event; returns its ``event_id`` (a new UUID unless given).

        ``timestamp`` may be an aware datetime, an RFC 3339 string or epoch seconds; default now.
        Raises ``EventRejectedError`` (with ``reason`` and ``field``) before anything is sent
        if the event breaks the contract.
        """
        now = self._clock()
        payload: dict[str, Any] = {
            "event_id": _as_text(event_id) if event_id is not None else new_event_id(),
            "event": _as_text(event),
            "account_id": _as_text(account_id),
            "timestamp": format_timestamp(timestamp, now),
        }
        if user_id is not None:
            payload["user_id"] = _as_text(user_id)
        if properties is not None:
            payload["properties"] = properties
        if context is not None:
            payload["context"] = context
        self.publish(payload, now=now)
        return str(payload["event_id"])

    def publish(self, payload: Mapping[str, Any], *, now: float | None = None) -> None:
        """Validate and send one event already in the canonical shape, as a dict."""
        key, value = encode_event(
            payload,
            max_bytes=self.max_event_bytes,
            max_future_skew=self.max_future_skew,
            now=self._clock() if now is None else now,
        )
        self._send(key, value)

    def publish_json(self, raw: bytes) -> str:
        """Validate one JSON-encoded canonical event (a line of a JSONL file) and send those exact bytes.

        The check is the stream's own decoder, so what passes here is never dead-lettered for
        its content. Returns the event's ``account_id``; raises ``EventRejectedError``.
        """
        result = decode_event(
            raw, max_bytes=self.max_event_bytes, max_future_skew=self.max_future_skew, now=self._clock()
        )
        if isinstance(result, Rejection):
            raise _reject(result)
        self._send(result.account_id.encode("utf-8"), bytes(raw))
        return result.account_id

    def _send(self, key: bytes, value: bytes) -> None:
        with self._lock:
            if self._closed:
                raise PublishError("the publisher is closed", failed=0)
        try:
            future = self._producer.send(self.topic, key=key, value=value, headers=[CONTENT_TYPE_HEADER])
        except KafkaTimeoutError as exc:  # no metadata within max_block_ms: the caller must know now
            raise PublishError(
                f"could not send to {self.topic}: {exc}. Does the topic exist? The broker does not create "
                "topics: Preempt does (a running `preempt worker`, `Publisher.from_settings`); or is the "
                "broker unreachable?",
                failed=1,
            ) from exc
        except KafkaError as exc:
            raise PublishError(f"could not send to {self.topic}: {exc}", failed=1) from exc
        future.add_errback(self._on_error)
        with self._lock:
            self.tally.watch(future)

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self._failed += 1
            if self._first_error is None:
                self._first_error = exc
        log.error("event not delivered", topic=self.topic, error=str(exc))

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def sent(self) -> int:
        """Events handed to Kafka so far (accepted locally)."""
        return self.tally.sent

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event sent so far is acknowledged; ``PublishError`` if any failed."""
        self._flush_producer(timeout)
        self._raise_failures()

    def _flush_producer(self, timeout: float | None) -> None:
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:  # e.g. not everything acknowledged within the timeout
            with self._lock:
                pending = self._failed
            raise PublishError(f"flush of {self.topic} did not complete: {exc}", failed=pending) from exc

    def _raise_failures(self) -> None:
        with self._lock:
            failed, first = self._failed, self._first_error
            self._failed, self._first_error = 0, None
        if failed:
            raise PublishError(f"{plural(failed, 'event')} not delivered to {self.topic}: {first}", failed=failed)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, then release the connection. Idempotent; ``PublishError`` if events were lost."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if not close_producer(self._producer, timeout):
            # not the producer's own close: it would wait ``timeout`` a second time, then raise KafkaTimeoutError
            raise PublishError(
                f"Kafka did not acknowledge {self.tally.unacknowledged} of the {plural(self.tally.sent, 'event')} "
                f"sent to {self.topic} within {timeout} s",
                failed=self.tally.unacknowledged,
            )
        self._raise_failures()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
