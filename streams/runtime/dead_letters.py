"""Dead letters for ``preempt.events.dlq``: the original record plus headers saying why.

Who calls it: the rules worker, for every record it cannot accept (a decoder ``Rejection`` or a
failure while processing), and HTTP ingest, for every item it rejects (:func:`ingest_dead_letter_record`:
a record that came from no topic). It is pure — no I/O, no clock: the caller passes the time and
sends the returned record itself, keyed like the original so the dead letter lands next to its
account's other dead letters.

Headers added (values UTF-8):

=============================  ===============================================================
``preempt.dlq.reason``         stable code: a ``schemas.decoder.Reason`` or the caller's own
``preempt.dlq.detail``         a sentence for people (at most 1,000 characters)
``preempt.dlq.field``          the offending top-level field, or empty
``preempt.dlq.source.topic``   where the record came from …
``preempt.dlq.source.partition``
``preempt.dlq.source.offset``  … (decimal)
``preempt.dlq.at``             when it was dead-lettered, RFC 3339 UTC
``preempt.dlq.source.api_key`` only from HTTP ingest: the name (``source``) of the API key used
``preempt.dlq.truncated``      only on a dead letter cut to fit: what was left out
=============================  ===============================================================

A record from HTTP ingest came from no topic: its source topic is ``http:<route>`` (e.g.
``http:/v1/batch``) and its partition and offset are ``-1`` (:data:`NO_POSITION`).

The original headers come first, minus any earlier ``preempt.dlq.*`` ones (a record replayed
from the dead-letter topic and rejected again carries only its latest verdict).

A dead letter is at most :data:`MAX_DEAD_LETTER_BYTES` (key, value and headers): a source record
can be as large as the broker accepts (1 MB by default), and sent whole with the verdict added it
would be refused by the producer (Faust's refuses records over 1,000,000 bytes) — the worker could
not get past it, and would stop on it again after every restart. Such a record's value is cut to
fit (its first bytes are kept), its original headers are dropped when they alone take half the
limit, and ``preempt.dlq.truncated`` says what was left out. :func:`bounded` does the same for the
notifier's dead letters (header ``truncated``).

The notifier's dead letters on ``preempt.alerts.dlq`` carry the alert itself (or the undecodable
record's bytes) and the header set of docs/notifier-operations.md, built by
:func:`alert_dead_letter_headers`: ``target``, ``receiver``, ``receiver_type`` (a delivery that
failed), then ``reason`` and ``error``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from schemas.event import format_ts

DLQ_HEADER_PREFIX = "preempt.dlq."
REASON = "preempt.dlq.reason"
DETAIL = "preempt.dlq.detail"
FIELD = "preempt.dlq.field"
SOURCE_TOPIC = "preempt.dlq.source.topic"
SOURCE_PARTITION = "preempt.dlq.source.partition"
SOURCE_OFFSET = "preempt.dlq.source.offset"
AT = "preempt.dlq.at"
SOURCE_API_KEY = "preempt.dlq.source.api_key"
HTTP_SOURCE_PREFIX = "http:"
NO_POSITION = -1
"""Partition and offset of a dead letter whose record came from no topic (HTTP ingest)."""
TRUNCATED = "preempt.dlq.truncated"
MAX_DETAIL_CHARS = 1000
MAX_DEAD_LETTER_BYTES = 900 * 1024
"""Largest dead letter, key + value + headers (Faust's producer refuses records over 1,000,000 bytes;
the rest is left for the record's own framing)."""
_HEADER_OVERHEAD = 16  # bytes of framing counted per header (varints, generously)

ALERT_TARGET = "target"
ALERT_RECEIVER = "receiver"
ALERT_RECEIVER_TYPE = "receiver_type"
ALERT_REASON = "reason"
ALERT_ERROR = "error"
ALERT_TRUNCATED = "truncated"  # only on a dead letter cut to fit (see bounded)
INVALID_ALERT = "invalid_alert"  # the reason of a record on preempt.alerts the notifier could not take as an alert
REKEY_FAILED = "rekey_failed"  # an alert not keyed by its account_id whose copy keyed by it the broker refused

HeaderValue = bytes | bytearray | memoryview | str | None
HeadersIn = Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]] | None


class DeadLetterRecord(NamedTuple):
    """A record ready to send: ``producer.send(dlq_topic, key=r.key, value=r.value, headers=r.headers)``."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _as_bytes(value: HeaderValue) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return bytes(value)


def _pairs(headers: HeadersIn) -> Iterable[tuple[str, HeaderValue]]:
    if headers is None:
        return ()
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def dead_letter_record(
    *,
    key: bytes | None,
    value: bytes | None,
    headers: HeadersIn,
    reason: str,
    detail: str,
    field: str | None,
    source_topic: str,
    partition: int,
    offset: int,
    at: float,
) -> DeadLetterRecord:
    """The dead letter for one source record: original key, value and headers plus the verdict.

    ``at`` is the wall-clock time in epoch seconds. Never raises for any header shape that
    Kafka clients produce (lists of pairs, tuples, dicts; str, bytes or None values).
    """
    verdict = _verdict(reason, detail, field, source_topic, partition, offset, at)
    return _letter(key, value, headers, verdict)


def ingest_dead_letter_record(
    *,
    key: bytes | None,
    value: bytes | None,
    content_type: str,
    reason: str,
    detail: str,
    field: str | None,
    route: str,
    api_key_source: str,
    at: float,
) -> DeadLetterRecord:
    """The dead letter for one item HTTP ingest rejected (called by ``streams.ingest.gate``).

    The item came from no topic: ``preempt.dlq.source.topic`` is ``http:<route>`` (the request's
    path, e.g. ``/v1/events``), partition and offset are :data:`NO_POSITION`, and
    ``preempt.dlq.source.api_key`` names the API key (its source name, never the key). The only
    original header is ``content-type``.
    """
    verdict = _verdict(reason, detail, field, HTTP_SOURCE_PREFIX + route, NO_POSITION, NO_POSITION, at)
    verdict.append((SOURCE_API_KEY, api_key_source.encode("utf-8", "surrogateescape")))
    return _letter(key, value, [("content-type", content_type)], verdict)


def _verdict(
    reason: str, detail: str, field: str | None, source_topic: str, partition: int, offset: int, at: float
) -> list[tuple[str, bytes]]:
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    return [
        (REASON, reason.encode()),
        (DETAIL, detail.encode("utf-8", "surrogateescape")),
        (FIELD, (field or "").encode("utf-8", "surrogateescape")),
        (SOURCE_TOPIC, source_topic.encode("utf-8", "surrogateescape")),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        (AT, format_ts(at).encode()),
    ]


def _letter(
    key: bytes | None, value: bytes | None, headers: HeadersIn, verdict: list[tuple[str, bytes]]
) -> DeadLetterRecord:
    out = [(str(name), _as_bytes(val)) for name, val in _pairs(headers) if not str(name).startswith(DLQ_HEADER_PREFIX)]
    letter = DeadLetterRecord(
        key=None if key is None else bytes(key),
        value=None if value is None else bytes(value),
        headers=out + verdict,
    )
    return bounded(letter, TRUNCATED, keep=lambda name: name.startswith(DLQ_HEADER_PREFIX))


def _size(key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]) -> int:
    return (
        len(key or b"")
        + len(value or b"")
        + sum(len(name.encode("utf-8", "surrogateescape")) + len(v) + _HEADER_OVERHEAD for name, v in headers)
    )


def bounded(
    letter: DeadLetterRecord,
    marker: str,
    *,
    keep: Callable[[str], bool],
    max_bytes: int = MAX_DEAD_LETTER_BYTES,
) -> DeadLetterRecord:
    """``letter`` itself when it fits in ``max_bytes``, else cut to fit with a ``marker`` header saying how.

    The verdict headers (those ``keep`` accepts) always stay. When the other headers and the key
    take more than half the limit, the other headers are dropped, then the key; the value keeps its
    first bytes. Called by :func:`dead_letter_record` and by the notifier for its dead letters.
    """
    if _size(*letter) <= max_bytes:
        return letter
    key, value, headers = letter
    notes: list[str] = []
    if _size(key, None, headers) > max_bytes // 2:
        kept = [(name, v) for name, v in headers if keep(name)]
        if len(kept) < len(headers):
            notes.append(f"{len(headers) - len(kept)} original headers dropped")
        headers = kept
    if key is not None and _size(key, None, headers) > max_bytes // 2:
        notes.append(f"key of {len(key)} bytes dropped")
        key = None
    if value is not None:
        room = max_bytes - _size(key, None, headers) - len(marker) - _HEADER_OVERHEAD - 200  # 200: the note
        if len(value) > room:
            notes.append(f"value cut from {len(value)} to {max(room, 0)} bytes")
            value = value[: max(room, 0)]
    note = "; ".join(notes) or "nothing left to cut"
    return DeadLetterRecord(key, value, [*headers, (marker, note.encode())])


CUT_DEAD_LETTER_BYTES = (8 * 1024, 1024, 0)
"""Sizes to cut a dead letter to, in turn, when the dead-letter topic refuses it as too large (its
``max.message.bytes`` set below :data:`MAX_DEAD_LETTER_BYTES`): the value's first bytes with the verdict
(8 KiB, then 1 KiB), then the verdict headers alone (0)."""


def cut_dead_letter(
    letter: DeadLetterRecord,
    max_bytes: int,
    marker: str = TRUNCATED,
    keep: Callable[[str], bool] = lambda name: name.startswith(DLQ_HEADER_PREFIX),
) -> DeadLetterRecord:
    """``letter`` cut to ``max_bytes`` (:func:`bounded`), the headers ``keep`` accepts (the verdict) kept; the
    ``marker`` note of an earlier cut is replaced by the new one, which says what was left out. Defaults: a
    :func:`dead_letter_record`; the notifier passes ``ALERT_TRUNCATED`` and its own ``keep``."""
    headers = [(name, v) for name, v in letter.headers if name != marker]
    return bounded(DeadLetterRecord(letter.key, letter.value, headers), marker, keep=keep, max_bytes=max_bytes)


def dead_letter_headers(headers: HeadersIn) -> dict[str, str]:
    """The ``preempt.dlq.*`` headers of a dead letter as text, for tools and tests that read them."""
    return {
        str(name): _as_bytes(val).decode("utf-8", "replace")
        for name, val in _pairs(headers)
        if str(name).startswith(DLQ_HEADER_PREFIX)
    }


def alert_dead_letter_headers(
    reason: str, detail: str, *, target: str | None = None, receiver_type: str | None = None
) -> list[tuple[str, bytes]]:
    """The headers of one record on the alerts dead-letter topic (the notifier's).

    With ``target`` (``receiver/channel…``, a delivery that failed): ``target``, ``receiver`` (the
    target's first part), ``receiver_type``, ``reason``, ``error``. Without (a record that is not
    an alert): ``reason`` and ``error`` only. ``target`` and ``detail`` are clipped to
    ``MAX_ALERT_HEADER_CHARS`` each: a dead letter must fit in a record whatever they hold.
    """
    headers: list[tuple[str, bytes]] = []
    if target is not None:
        headers += [
            (ALERT_TARGET, _clipped(target)),
            (ALERT_RECEIVER, _clipped(target.split("/", 1)[0])),
            (ALERT_RECEIVER_TYPE, (receiver_type or "").encode()),
        ]
    headers += [(ALERT_REASON, reason.encode()), (ALERT_ERROR, _clipped(detail))]
    return headers


MAX_ALERT_HEADER_CHARS = 2000
"""Characters kept of a target name or an error sentence in an alert dead letter's headers."""


def _clipped(text: str) -> bytes:
    if len(text) > MAX_ALERT_HEADER_CHARS:
        text = text[: MAX_ALERT_HEADER_CHARS - 1] + "…"
    return text.encode("utf-8", "surrogateescape")


ALERT_VERDICT_HEADERS = (ALERT_TARGET, ALERT_RECEIVER, ALERT_RECEIVER_TYPE, ALERT_REASON, ALERT_ERROR, ALERT_TRUNCATED)


def alert_dead_letter_verdict(headers: HeadersIn) -> dict[str, str]:
    """The headers :func:`alert_dead_letter_headers` wrote (and ``truncated``) as text, for the tools that read
    ``preempt.alerts.dlq`` back (``preempt alerts dead-letters``)."""
    return {
        str(name): _as_bytes(val).decode("utf-8", "replace")
        for name, val in _pairs(headers)
        if str(name) in ALERT_VERDICT_HEADERS
    }
