"""Turning an ingest request body into validated Kafka records and per-item results.

A body is one event, a JSON array of events, or ``{"batch": [...]}`` (Segment's batch shape,
whose top-level ``context`` is merged under each item's own). Each item is either canonical
(docs/events.md, "The event") or a Segment Track call (``"type": "track"``), mapped to canonical as::

    messageId → event_id    userId, else anonymousId → user_id    event → event    timestamp → timestamp
    properties → properties    context → context    context.groupId → account_id

A Segment item without ``timestamp`` gets the time the request was received. Items are checked
by the stream's own rules (``schemas.decoder.validate_event_dict``) plus the per-event size limit,
so an accepted item is never dead-lettered for its content. Rejections name the field as the
sender wrote it (``messageId``, ``context.groupId`` for Segment items). Each rejected item is
also kept as a ``RejectedItem`` (its bytes and account id) for the events dead-letter topic.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.decoder import Reason, Rejection, loads_exact, validate_event_dict
from schemas.event import format_ts
from schemas.jsonl import BOM
from streams.ingest.rejected import MAX_READ_DEPTH, RejectedItem, TooDeep, account_id_at, item_bytes

SEGMENT_FIELDS = frozenset(
    {
        "type",
        "messageId",
        "userId",
        "anonymousId",
        "event",
        "timestamp",
        "properties",
        "context",
        "integrations",
        "originalTimestamp",
        "sentAt",
        "receivedAt",
        "version",
        "channel",
        "writeKey",
    }
)
BATCH_FIELDS = frozenset({"batch", "context", "sentAt", "writeKey", "integrations"})
_SEGMENT_NAMES = {
    "event_id": "messageId",
    "user_id": "userId",
    "account_id": "context.groupId",
    "event": "event",
    "timestamp": "timestamp",
    "properties": "properties",
    "context": "context",
}
ACCOUNT_ID_PATHS = (("account_id",), ("context", "groupId"))  # canonical, then Segment


class BodyError(ValueError):
    """The body as a whole is unusable (not JSON, not an event, array or batch): HTTP 400."""


class TooManyItems(ValueError):  # noqa: N818 - reads as the condition it reports
    """More items in one request than ``PREEMPT_INGEST_MAX_ITEMS``: HTTP 413 (split the batch)."""


GZIP_MAGIC = b"\x1f\x8b"


def read_json_body(body: bytes) -> Any:
    """The JSON document of a (decoded) request body, for both routes; ``BodyError`` saying what it is instead.

    A UTF-8 byte order mark before the document is ignored (RFC 8259 §8.1 lets a reader; Windows
    tools write one), as ``preempt publish`` ignores one at the start of a file. What real senders'
    JSON libraries write and orjson refuses is read as ``_lenient_json`` says. An item nested too
    deep for the readers is cut out as ``deep_items`` says: the document holds a ``TooDeep`` in its
    place (the whole document is one when the body is a single item).
    """
    if body.startswith(BOM):
        body = body[len(BOM) :]
    try:
        return _read(body)
    except orjson.JSONDecodeError as exc:
        # Only a reader's depth limit is worth the scan (about as long as the parse again): any other
        # broken body, up to the batch routes' 8 MiB, is refused without it.
        cut = deep_items(body) if _too_deep(exc) else None
        if cut is None:
            raise BodyError(_not_json(body, exc)) from None
        if cut.whole:
            return TooDeep(body)
        try:
            doc = _read(cut.body)
        except orjson.JSONDecodeError:
            raise BodyError(_not_json(body, exc)) from None
        batch = doc.get("batch") if isinstance(doc, dict) else doc
        if not isinstance(batch, list):  # cannot happen: deep_items found the items in the batch
            raise BodyError(_not_json(body, exc)) from None
        for index, raw in cut.items.items():
            batch[index] = TooDeep(raw)
        return doc


def _read(body: bytes) -> Any:
    try:
        return loads_exact(body)
    except orjson.JSONDecodeError:
        doc = _lenient_json(body)
        if doc is _UNREADABLE:
            raise
        return doc


@dataclass(frozen=True, slots=True)
class DeepCut:
    """A body with its over-deep items replaced by ``null``: their index in the batch and their bytes."""

    body: bytes
    items: dict[int, bytes]
    whole: bool = False  # the body is one item (not an array or a batch), and it is the deep one


MAX_DEEP_TOKENS = 50_000
"""Tokens past ``MAX_READ_DEPTH`` a body may hold for its deep items to be cut out (~20 items of 1,100
levels); a body of nothing but brackets is refused (400) after ~0.1 s of scanning, not 1.3 s a MiB."""
# A JSON string (escapes included), or one of the structural characters; everything else is skipped. A string
# that never closes runs to the end of the body (one match): refused to fail there, it was scanned again from
# each quote inside it, quadratic (150 s on the event loop for a 129 KB body of escaped quotes).
_TOKEN = re.compile(rb'"(?:[^"\\]|\\[\s\S])*(?:"|\\?\Z)|[\[\]{}:,]')


def deep_items(body: bytes, max_depth: int = MAX_READ_DEPTH) -> DeepCut | None:
    """The body without its items nested more than ``max_depth`` levels; None when there is none to cut.

    Called only for a body the readers refused. The items are those of a JSON array body or of the
    ``batch`` array of an object body; an object body without ``batch`` is one item. Deep nesting
    elsewhere (a batch's ``context``) is not an item's: None, and the body stays refused (400).
    One pass over the string and bracket tokens (the regex skips the rest); never parses.
    """
    depth = 0
    batch_depth: int | None = None  # the depth inside the batch array
    in_batch = False  # the batch array is open
    top_object = False
    key: bytes | None = None  # the last string at depth 1 of an object body, while it may be a key
    index = 0
    item_start: int | None = None
    item_max = 0
    outside = 0  # the deepest nesting not inside a batch item
    cuts: dict[int, tuple[int, int]] = {}
    beyond = 0  # tokens read deeper than max_depth: bounded, as the scan holds the event loop
    for match in _TOKEN.finditer(body):
        token = match.group()
        char = token[:1]
        if depth > max_depth:
            beyond += 1
            if beyond > MAX_DEEP_TOKENS:
                return None
        if char in (b"{", b"["):
            if depth == 0:
                top_object = char == b"{"
                if not top_object:
                    batch_depth, in_batch = 1, True
            elif depth == 1 and top_object and char == b"[" and key == b'"batch"' and batch_depth is None:
                batch_depth, in_batch = 2, True
            elif in_batch and depth == batch_depth and item_start is None:
                item_start, item_max = match.start(), 0
            depth += 1
            if item_start is not None:
                item_max = max(item_max, depth - (batch_depth or 0))
            else:
                outside = max(outside, depth)
        elif char in (b"}", b"]"):
            depth -= 1
            if batch_depth is not None and depth < batch_depth:
                in_batch = False
            if item_start is not None and depth == batch_depth:
                if item_max > max_depth:
                    cuts[index] = (item_start, match.end())
                item_start = None
        elif char == b",":
            if in_batch and depth == batch_depth and item_start is None:
                index += 1
            if depth == 1:
                key = None
        elif char == b'"' and depth == 1 and top_object:
            key = token
    if batch_depth is None:  # one item: the whole body
        return DeepCut(body, {}, whole=True) if top_object and outside > max_depth else None
    if not cuts or outside > max_depth:
        return None
    pieces: list[bytes] = []
    at = 0
    for start, end in sorted(cuts.values()):
        pieces += [body[at:start], b"null"]
        at = end
    pieces.append(body[at:])
    return DeepCut(b"".join(pieces), {i: body[start:end] for i, (start, end) in cuts.items()})


_UNREADABLE = object()
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _lenient_json(body: bytes) -> Any:
    """The document of a body orjson refused for what real senders' JSON libraries write; else ``_UNREADABLE``.

    * ``NaN``, ``Infinity``, ``-Infinity``: Python's ``json.dumps`` writes such floats so, and
      segment-analytics-python and rudder-sdk-python send what it writes. Read as floats, they
      get only their own item rejected (``number_out_of_range``: no event holds them).
    * A lone surrogate escape (``"\\ud83d"``): JavaScript's ``"👍 …".slice(0, n)`` cuts an emoji
      in half and ``JSON.stringify`` writes the half so (analytics-node, analytics.js). It is read
      as U+FFFD, as the Go JSON decoders of Segment's and RudderStack's servers read it.

    Either made the whole request a 400, on which an SDK drops every call of the batch. The
    standard library reads both (and large integers exactly); a document it cannot read either
    stays unreadable. Only the failure path pays for this.
    """
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return _UNREADABLE
    try:
        return _without_lone_surrogates(doc)
    except RecursionError:
        return _UNREADABLE


def _without_lone_surrogates(node: Any) -> Any:
    if isinstance(node, str):
        return _LONE_SURROGATE.sub("\ufffd", node)
    if isinstance(node, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_lone_surrogates(v) for v in node]
    return node


def _too_deep(exc: orjson.JSONDecodeError) -> bool:
    """The readers refused the document for its nesting (orjson: "depth limit exceeded"; json: recursion)."""
    return "depth limit" in str(exc) or "recursion" in str(exc).lower()


def _not_json(body: bytes, exc: orjson.JSONDecodeError) -> str:
    # orjson says "str is not valid UTF-8: surrogates not allowed" of any byte that is not UTF-8.
    if body.startswith(GZIP_MAGIC):
        return "the body is gzip-compressed but has no Content-Encoding: gzip header; send the header"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"the body is not UTF-8 (invalid byte at {bad.start}); send JSON encoded as UTF-8"
    if not text.strip():
        return "the body is empty; send a JSON object"
    if _too_deep(exc):
        return (
            "the body nests JSON more than 1,024 levels deep outside its items (an item nested that deep is "
            "rejected alone, too_deep); nothing was stored"
        )
    return f"the body is not valid JSON: {exc}"


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The verdict on one item of a request, in request order."""

    index: int
    event_id: str | None = None
    rejection: Rejection | None = None

    def to_json(self) -> dict[str, Any]:
        """The item's entry in the response's ``results``."""
        if self.rejection is None:
            return {"index": self.index, "status": "accepted", "event_id": self.event_id}
        return {
            "index": self.index,
            "status": "rejected",
            "reason": str(self.rejection.reason),
            "field": self.rejection.field,
            "detail": self.rejection.detail,
        }


@dataclass(frozen=True, slots=True)
class Parsed:
    """A body's accepted records (key, value), a result per item, and the rejected items to dead-letter."""

    records: list[tuple[bytes, bytes]]
    results: list[ItemResult]
    rejected: list[RejectedItem] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """How many items were accepted."""
        return len(self.records)


def split_items(body: bytes, *, max_items: int, max_shared_context_bytes: int) -> list[Any]:
    """The items of a body; ``BodyError`` when the body is not JSON or not one of the three shapes.

    ``TooManyItems`` past ``max_items``. A batch's shared ``context`` is merged under each item's
    own, so it is limited to ``max_shared_context_bytes`` (``BodyError`` above): otherwise a
    small body could make every item, and Kafka, carry a large copy.
    """
    return _split(body, max_items=max_items, max_shared_context_bytes=max_shared_context_bytes)[0]


def _split(body: bytes, *, max_items: int, max_shared_context_bytes: int) -> tuple[list[Any], bool]:
    """``split_items``, and whether the body was one event (not an array or a batch)."""
    doc = read_json_body(body)
    if isinstance(doc, list):
        if not doc:
            raise BodyError("the batch is empty")
        if len(doc) > max_items:
            raise TooManyItems(f"the request has {len(doc)} items; the limit is {max_items}")
        return doc, False
    if isinstance(doc, TooDeep):
        return [doc], True
    if not isinstance(doc, dict):
        raise BodyError('the body must be an event object, an array of events or {"batch": [...]}')
    if "batch" not in doc:
        return [doc], True
    batch = doc["batch"]
    unknown = sorted(k for k in doc if k not in BATCH_FIELDS)
    if unknown:
        raise BodyError(f"unknown top-level field {unknown[0]!r} next to batch")
    if not isinstance(batch, list) or not batch:
        raise BodyError("batch must be a non-empty array of events")
    if len(batch) > max_items:
        raise TooManyItems(f"the batch has {len(batch)} items; the limit is {max_items}")
    shared = doc.get("context")
    if isinstance(shared, dict) and shared:
        if len(orjson.dumps(shared)) > max_shared_context_bytes:
            raise BodyError(
                f"the batch's shared context is larger than {max_shared_context_bytes} bytes; "
                "send large context on the items that need it"
            )
        # Segment semantics: the batch's context is a default under each item's own context.
        return [_with_shared_context(item, shared) for item in batch], False
    return batch, False


def _with_shared_context(item: Any, shared: dict[str, Any]) -> Any:
    """``item`` with the batch's ``shared`` context under its own; in a Segment item (one with a ``type``) a
    null context, or a null key of it, counts as not sent (as on the tracking routes), so the shared one shows."""
    if not isinstance(item, dict):
        return item
    own = item.get("context", {})
    segment = "type" in item
    if own is None and segment:
        own = {}
    if not isinstance(own, dict):
        return item
    if segment:
        own = {k: v for k, v in own.items() if v is not None}
    return {**item, "context": {**shared, **own}}


def from_segment(item: dict[str, Any], received_at: float) -> dict[str, Any] | Rejection:
    """The canonical dict of a Segment Track item, or why it cannot be one."""
    if item.get("type") != "track":
        return Rejection(
            Reason.INVALID_FIELD, f"only Segment track calls are accepted, got type {item.get('type')!r}", "type"
        )
    unknown = sorted(str(k) for k in item if k not in SEGMENT_FIELDS)
    if unknown:
        return Rejection(Reason.UNKNOWN_FIELD, f"unknown Segment field {unknown[0]!r}", unknown[0])
    # As on the tracking routes, an optional field sent as null (what serialisers write for one they do not
    # have) counts as not sent: "timestamp": null is the time of receipt, not a rejected call.
    item = {k: v for k, v in item.items() if v is not None}
    if "messageId" not in item:
        item["messageId"] = generated_message_id(item, received_at)
    context = item.get("context", {})
    if not isinstance(context, dict):
        return Rejection(Reason.INVALID_FIELD, "context must be a JSON object", "context")
    context = {k: v for k, v in context.items() if v is not None}
    if "groupId" not in context:
        return Rejection(Reason.MISSING_FIELD, "context.groupId (the account id) is required", "context.groupId")
    canonical: dict[str, Any] = {
        "event_id": item["messageId"],
        "event": item.get("event"),
        "account_id": id_text(context["groupId"]),
        "timestamp": item.get("timestamp", format_ts(received_at)),
        "context": context,
    }
    if "event" not in item:
        del canonical["event"]
    user = user_id_of(item)
    if user is not None:
        canonical["user_id"] = user
    if "properties" in item:
        canonical["properties"] = item["properties"]
    return canonical


def generated_message_id(item: dict[str, Any], received_at: float) -> str:
    """The ``event_id`` of a Segment call sent without ``messageId`` (Segment's own HTTP API examples have
    none; Segment's servers give such a call an id, and so does ingest, where it was refused): ``gen-`` and a
    digest of the call as sent, so a retry of a call that carries its own time is still dropped as a
    duplicate; a call without a time of its own is stamped on receipt, and so is its id (two identical
    calls a minute apart are two events)."""
    basis = json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)
    if item.get("timestamp") is None and item.get("originalTimestamp") is None:
        basis += f"|{received_at!r}"
    return "gen-" + hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def user_id_of(item: dict[str, Any]) -> Any:
    """The acting user of a Segment-shaped item (tracking API and ``/v1/events``): ``userId``, else
    ``anonymousId`` (an analytics.js visitor before sign-in; such an SDK may send ``userId: ""``), as
    ``id_text``; None when neither is given."""
    user = item.get("userId")
    if user is None or user == "":
        user = item.get("anonymousId")
    return None if user is None else id_text(user)


def id_text(value: Any) -> Any:
    """SDKs may send numeric ids (``userId: 42``, ``groupId: 7``); Preempt's ids are strings. Anything else
    is left for the validator. Shared by the tracking API and the Segment items of ``/v1/events`` (which
    refused what the tracking API took)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def parse_body(
    body: bytes,
    *,
    max_event_bytes: int,
    max_future_skew: float,
    now: float,
    max_items: int,
    max_shared_context_bytes: int,
) -> Parsed:
    """Validate every item of ``body``; ``BodyError``/``TooManyItems`` when the body itself is unusable."""
    parsed = Parsed(records=[], results=[])
    items, single = _split(body, max_items=max_items, max_shared_context_bytes=max_shared_context_bytes)
    for index, item in enumerate(items):
        verdict = _check(item, max_event_bytes=max_event_bytes, max_future_skew=max_future_skew, now=now)
        if isinstance(verdict, Rejection):
            parsed.results.append(ItemResult(index, rejection=verdict))
            value = item_bytes(item, body if single else None)
            parsed.rejected.append(RejectedItem(value, account_id_at(item, ACCOUNT_ID_PATHS), verdict))
            continue
        key, value, event_id = verdict
        parsed.records.append((key, value))
        parsed.results.append(ItemResult(index, event_id=event_id))
    return parsed


def _check(
    item: Any, *, max_event_bytes: int, max_future_skew: float, now: float
) -> tuple[bytes, bytes, str] | Rejection:
    """(key, value, event_id) of an accepted item, or why it is rejected."""
    if isinstance(item, TooDeep):
        return item.rejection()
    segment = isinstance(item, dict) and "type" in item
    canonical = from_segment(item, now) if segment else item
    if isinstance(canonical, Rejection):
        return canonical
    verdict = validate_event_dict(canonical, max_future_skew=max_future_skew, now=now)
    if isinstance(verdict, Rejection):
        if segment and verdict.field in _SEGMENT_NAMES:
            return Rejection(verdict.reason, verdict.detail, _SEGMENT_NAMES[verdict.field])
        return verdict
    value = orjson.dumps(canonical)
    if len(value) > max_event_bytes:
        return Rejection(Reason.TOO_LARGE, f"the event is {len(value)} bytes; the limit is {max_event_bytes}")
    return verdict.account_id.encode("utf-8"), value, verdict.event_id
