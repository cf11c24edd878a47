"""The hot-path event decoder: raw Kafka bytes → a validated ``Event`` or a precise ``Rejection``.

Who calls it: the rules worker for every record on ``preempt.events`` (a ``Rejection`` becomes a
dead letter, see ``streams.runtime.dead_letters``), ``preempt events validate``, the publisher SDK and HTTP
ingest (through :func:`validate_event_dict`).

It accepts exactly what ``schemas.event.UsageEvent`` accepts (a property test holds the two
together) at a fraction of the cost: ``orjson.loads`` plus hand-written checks, no pydantic.
It never raises: every input, however broken, yields an ``Event`` or a ``Rejection``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from schemas import bounds
from schemas.error_text import json_syntax
from schemas.event import MAX_EVENT_NAME_CHARS, MAX_ID_CHARS, Event
from schemas.rfc3339 import MAX_EPOCH, MIN_EPOCH, UPPER_CASE_GRAMMAR, parse_rfc3339


class Reason(StrEnum):
    """Why an event was rejected — a stable code, used in dead-letter headers and metric labels."""

    EMPTY = "empty"  # no bytes at all (or only whitespace, or a tombstone)
    TOO_LARGE = "too_large"  # more bytes than the per-event limit (32 KiB by default)
    INVALID_UTF8 = "invalid_utf8"  # the bytes are not UTF-8
    INVALID_JSON = "invalid_json"  # UTF-8, but not JSON
    NOT_AN_OBJECT = "not_an_object"  # JSON, but not an object (array, string, number…)
    UNKNOWN_FIELD = "unknown_field"  # a top-level field the contract does not define
    MISSING_FIELD = "missing_field"  # a required field is absent
    INVALID_FIELD = "invalid_field"  # a field has the wrong type, length or format
    FUTURE_TIMESTAMP = "future_timestamp"  # timestamp further ahead of now than the allowed skew
    # The content bounds of schemas/bounds.py (one definition for decoder, SDK, CLI and ingest):
    TOO_DEEP = bounds.TOO_DEEP  # properties/context nest more than 32 levels
    TOO_MANY_PROPERTIES = bounds.TOO_MANY_PROPERTIES  # more than 1,000 keys + array items in them
    STRING_TOO_LONG = bounds.STRING_TOO_LONG  # a string value over 8,192 chars or a key over 256
    CONTROL_CHARACTER = bounds.CONTROL_CHARACTER  # a control character in event_id/event/account_id/user_id
    NUMBER_OUT_OF_RANGE = bounds.NUMBER_OUT_OF_RANGE  # an integer outside ±(2^53 - 1), or not finite


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event that failed validation: the reason code, a sentence for people, and the field."""

    reason: Reason
    detail: str
    field: str | None = None


FIELDS = ("event_id", "event", "account_id", "user_id", "timestamp", "properties", "context")
REQUIRED_FIELDS = ("event_id", "event", "account_id", "timestamp")
_ALLOWED = frozenset(FIELDS)
_MISSING: Any = object()
_STRING_LIMITS = (("event_id", MAX_ID_CHARS), ("event", MAX_EVENT_NAME_CHARS), ("account_id", MAX_ID_CHARS))

# Event is a frozen slots dataclass; its generated __init__ pays object.__setattr__ per field
# (≈1 µs of the budget). Writing the slots through their member descriptors builds the same
# object at half the cost — safe because every value has been validated just before.
_new = object.__new__
_set_event_id = Event.__dict__["event_id"].__set__
_set_event = Event.__dict__["event"].__set__
_set_account_id = Event.__dict__["account_id"].__set__
_set_ts = Event.__dict__["ts"].__set__
_set_user_id = Event.__dict__["user_id"].__set__
_set_properties = Event.__dict__["properties"].__set__
_set_context = Event.__dict__["context"].__set__
_fast_timestamp = UPPER_CASE_GRAMMAR.fullmatch
_fromisoformat = datetime.fromisoformat
_loads = orjson.loads


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _string_rejection(name: str, value: object, limit: int) -> Rejection | None:
    if type(value) is not str:
        return Rejection(Reason.INVALID_FIELD, f"{name} must be a string, got {_describe(value)}", name)
    if not 0 < len(value) <= limit:
        return Rejection(Reason.INVALID_FIELD, f"{name} must be 1 to {limit} characters, got {len(value)}", name)
    return None


def validate_event_dict(obj: object, *, max_future_skew: float, now: float) -> Event | Rejection:
    """Validate an already-parsed JSON value against the event contract.

    For callers that hold a dict rather than bytes: the SDK, HTTP ingest (one item of a batch)
    and :func:`decode_event` itself. The byte-size limit is the caller's to apply, since only it
    knows the encoded size. Never raises.

    Precedence when several things are wrong: not an object, unknown field, missing field, then
    the fields in contract order (event_id, event, account_id, user_id, properties, context,
    timestamp), then a future timestamp. Within a field, its type and length come before the
    content bounds of ``schemas.bounds`` (control characters, nesting, sizes, number range).
    """
    return _validate(obj, max_future_skew, now, None)


def _validate(
    obj: object, max_future_skew: float, now: float, raw: bytes | bytearray | memoryview | None
) -> Event | Rejection:
    # validate_event_dict without keyword arguments: decode_event calls it per record, with the
    # JSON text ``raw`` that ``obj`` was parsed from (None for a dict from Python).
    if type(obj) is not dict:
        return Rejection(Reason.NOT_AN_OBJECT, f"an event must be a JSON object, got {_describe(obj)}")
    try:
        event_id = obj["event_id"]
        event = obj["event"]
        account_id = obj["account_id"]
        timestamp = obj["timestamp"]
    except KeyError:
        return _structure_rejection(obj)
    user_id = obj.get("user_id", _MISSING)
    properties = obj.get("properties", _MISSING)
    context = obj.get("context", _MISSING)
    # Counting the known keys is cheaper than a set comparison; a mismatch means an unknown key.
    if len(obj) != 4 + (user_id is not _MISSING) + (properties is not _MISSING) + (context is not _MISSING):
        return _structure_rejection(obj)
    # Inline the common case (three short strings) and fall back for the precise message.
    if not (
        type(event_id) is str
        and type(event) is str
        and type(account_id) is str
        and 0 < len(event_id) <= MAX_ID_CHARS
        and 0 < len(event) <= MAX_EVENT_NAME_CHARS
        and 0 < len(account_id) <= MAX_ID_CHARS
    ):
        for name, limit in _STRING_LIMITS:
            rejection = _string_rejection(name, obj[name], limit)
            if rejection is not None:
                return rejection
    if not (event_id.isprintable() and event.isprintable() and account_id.isprintable()):
        for name in ("event_id", "event", "account_id"):
            violation = bounds.check_id(name, obj[name])
            if violation is not None:
                return _violation(violation)
    if user_id is _MISSING:
        user_id = None
    elif user_id is not None:
        if not (type(user_id) is str and 0 < len(user_id) <= MAX_ID_CHARS):
            rejection = _string_rejection("user_id", user_id, MAX_ID_CHARS)
            if rejection is not None:
                return rejection
        violation = bounds.check_id("user_id", user_id)
        if violation is not None:
            return _violation(violation)
    if properties is _MISSING:
        properties = {}
    elif type(properties) is not dict:
        return Rejection(
            Reason.INVALID_FIELD, f"properties must be a JSON object, got {_describe(properties)}", "properties"
        )
    if context is _MISSING:
        context = {}
    elif type(context) is not dict:
        return Rejection(Reason.INVALID_FIELD, f"context must be a JSON object, got {_describe(context)}", "context")
    if properties or context:
        content = bounds.scan_content(properties, context)
        if content is not None:
            if isinstance(content, bounds.Violation):
                return _violation(content)
            if raw is not None:
                # orjson may have read an integer literal past 64 bits as a float: decide on the
                # exact integers (only events holding a float of magnitude >= 2^63 get here).
                exact = _exact_loads(raw)
                if exact is not None:
                    return _validate(exact, max_future_skew, now, None)
    if type(timestamp) is not str:
        return Rejection(
            Reason.INVALID_FIELD,
            f"timestamp must be an RFC 3339 string with an offset, got {_describe(timestamp)}",
            "timestamp",
        )
    # parse_rfc3339 inlined for the common upper-case form; anything else takes the full path.
    ts = -1.0
    if _fast_timestamp(timestamp) is not None:
        try:
            ts = _fromisoformat(timestamp).timestamp()
        except (ValueError, OverflowError):
            ts = -1.0
    if not MIN_EPOCH <= ts <= MAX_EPOCH:
        try:
            ts = parse_rfc3339(timestamp)
        except ValueError as exc:
            return Rejection(Reason.INVALID_FIELD, f"timestamp {_clip(timestamp)!r} {exc}", "timestamp")
    if ts > now + max_future_skew:
        return Rejection(
            Reason.FUTURE_TIMESTAMP,
            f"timestamp {timestamp} is {ts - now:.0f}s in the future (at most {max_future_skew:.0f}s allowed)",
            "timestamp",
        )
    out: Event = _new(Event)
    _set_event_id(out, event_id)
    _set_event(out, event)
    _set_account_id(out, account_id)
    _set_ts(out, ts)
    _set_user_id(out, user_id)
    _set_properties(out, properties)
    _set_context(out, context)
    return out


def _violation(violation: bounds.Violation) -> Rejection:
    return Rejection(Reason(violation.reason), violation.detail, violation.field)


def _structure_rejection(obj: dict[Any, Any]) -> Rejection:
    """The slow path for a dict with an unknown or a missing top-level field."""
    unknown = sorted(str(k) for k in obj if k not in _ALLOWED)
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        return Rejection(
            Reason.UNKNOWN_FIELD,
            f"unknown top-level field {unknown[0]!r}{more}; allowed: {', '.join(FIELDS)}",
            unknown[0],
        )
    missing = next(name for name in REQUIRED_FIELDS if name not in obj)
    return Rejection(Reason.MISSING_FIELD, f"{missing} is required", missing)


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def decode_event(
    raw: bytes | bytearray | memoryview | None, *, max_bytes: int, max_future_skew: float, now: float
) -> Event | Rejection:
    """Decode one Kafka record value into an ``Event``, or say precisely why not.

    ``max_bytes`` is the per-event limit (``Settings.max_event_bytes``), ``max_future_skew`` the
    allowed lead of ``timestamp`` over ``now`` (``Settings.max_future_skew_seconds``), ``now``
    the wall clock in epoch seconds (an argument so that tests and replays control it).
    ``None`` (a tombstone) counts as empty. Never raises, whatever the input.
    """
    if raw is None or not raw:
        return Rejection(Reason.EMPTY, "the record value is empty")
    if len(raw) > max_bytes:
        return Rejection(Reason.TOO_LARGE, f"the event is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        obj = _loads(raw)
    except orjson.JSONDecodeError as exc:
        return _undecodable(bytes(raw), exc)
    return _validate(obj, max_future_skew, now, raw)


def loads_exact(raw: bytes | bytearray | memoryview | str) -> Any:
    """``orjson.loads``, except that integer literals past 64 bits stay exact integers.

    orjson reads ``18446744073709551616`` as the float ``1.8446744073709552e19``; an event check on
    that float would accept it as a large float (and the value would silently change), where the
    contract refuses the integer (``number_out_of_range``). HTTP ingest and ``preempt publish
    --prop`` parse with this; the decoder does the same check inline. Raises
    ``orjson.JSONDecodeError`` for what is not JSON, as ``orjson.loads`` does, and for a document
    holding such a large number that the standard library cannot read (nested ~1,000 deep).
    """
    doc = _loads(raw)
    if _has_large_float(doc):
        exact = _exact_loads(raw)
        if exact is None:
            # Kept, orjson's float could stand for an integer literal past 64 bits, accepted with a changed
            # value: a document the standard library cannot read (nested ~1,000 deep) is refused instead.
            text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
            raise orjson.JSONDecodeError(
                "it holds a number of magnitude 2^63 or more and is nested too deep to read that number "
                "exactly; send such a number as a string",
                text,
                0,
            )
        return exact
    return doc


def _has_large_float(doc: Any) -> bool:
    """Whether ``doc`` holds a float of magnitude >= 2^63 anywhere (iteratively: no recursion limit)."""
    stack = [doc]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is float:
            if not -bounds.LARGE_FLOAT < node < bounds.LARGE_FLOAT:
                return True
        elif kind is dict:
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _exact_loads(raw: bytes | bytearray | memoryview | str) -> Any:
    """``raw`` (already accepted by orjson) parsed by the standard library, whose integers are exact.

    None when it cannot parse it (nesting past its recursion limit, integers past its digit
    limit): the caller keeps orjson's reading, whose bounds refuse such events anyway.
    """
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None


def _undecodable(raw: bytes, exc: orjson.JSONDecodeError) -> Rejection:
    # Only the failure path pays for telling the three apart.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as utf8_exc:
        return Rejection(Reason.INVALID_UTF8, f"the bytes are not valid UTF-8 (at byte {utf8_exc.start})")
    if not text.strip():
        return Rejection(Reason.EMPTY, "the record value is only whitespace")
    return Rejection(Reason.INVALID_JSON, json_syntax(str(exc), text))
