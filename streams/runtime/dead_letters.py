"""Dead letters for ``preempt.events.dlq``: the original record plus headers saying why.

Who calls it: the rules worker, for every record it cannot accept (a decoder ``Rejection`` or a
failure while processing). It is pure — no I/O, no clock: the caller passes the time and sends
the returned record itself, keyed like the original so the dead letter lands next to its
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
=============================  ===============================================================

The original headers come first, minus any earlier ``preempt.dlq.*`` ones (a record replayed
from the dead-letter topic and rejected again carries only its latest verdict).

The notifier's dead letters on ``preempt.alerts.dlq`` carry the alert itself (or the undecodable
record's bytes) and the header set of docs/notifier-operations.md, built by
:func:`alert_dead_letter_headers`: ``target``, ``receiver``, ``receiver_type`` (a delivery that
failed), then ``reason`` and ``error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
MAX_DETAIL_CHARS = 1000

ALERT_TARGET = "target"
ALERT_RECEIVER = "receiver"
ALERT_RECEIVER_TYPE = "receiver_type"
ALERT_REASON = "reason"
ALERT_ERROR = "error"

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
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    out = [(str(name), _as_bytes(val)) for name, val in _pairs(headers) if not str(name).startswith(DLQ_HEADER_PREFIX)]
    out += [
        (REASON, reason.encode()),
        (DETAIL, detail.encode("utf-8", "surrogateescape")),
        (FIELD, (field or "").encode("utf-8", "surrogateescape")),
        (SOURCE_TOPIC, source_topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        (AT, format_ts(at).encode()),
    ]
    return DeadLetterRecord(
        key=None if key is None else bytes(key),
        value=None if value is None else bytes(value),
        headers=out,
    )


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
    an alert): ``reason`` and ``error`` only. ``detail`` is sent as given; the caller bounds it.
    """
    headers: list[tuple[str, bytes]] = []
    if target is not None:
        headers += [
            (ALERT_TARGET, target.encode("utf-8", "surrogateescape")),
            (ALERT_RECEIVER, target.split("/", 1)[0].encode("utf-8", "surrogateescape")),
            (ALERT_RECEIVER_TYPE, (receiver_type or "").encode()),
        ]
    headers += [(ALERT_REASON, reason.encode()), (ALERT_ERROR, detail.encode("utf-8", "surrogateescape"))]
    return headers
