"""The Segment/RudderStack tracking API: calls (track, identify, group, page, screen, alias) → records.

Pure: a body and the time it was received in; the event records, the account patches and a
verdict per item out. ``app`` serves it on ``/v1/batch`` and ``/v1/<call>``. The mapping
(docs/events.md, "Send from Segment or RudderStack SDKs")::

    messageId → event_id              userId, else anonymousId → user_id
    account  → context.groupId, else the next of PREEMPT_INGEST_ACCOUNT_ID_PATHS (group: groupId);
               a path into traits also reads context.traits (RudderStack, the mobile SDKs)
    timestamp → receivedAt − (sentAt − originalTimestamp), as Segment corrects client clocks
                (ISO 8601 read as Segment does: no offset = UTC, +hhmm; ``sdk_time``)
    track    → event, properties
    page     → "Page Viewed", properties + name, category        screen → "Screen Viewed", likewise
    identify → "User Identified", traits (and RudderStack's context.traits) as properties
    group    → "Group Identified", traits as properties; the account traits as a patch for preempt.accounts
    alias    → accepted, counted, ignored
    context  → only the keys in CONTEXT_KEYS (a batch's shared context is a default under each item's)

Every event passes the stream's own validator (``schemas.decoder.validate_event_dict``) and the
per-event size limit, so an accepted event is never dead-lettered for its content. An item that
cannot become an event (a track call without an account, a bad timestamp…) is rejected on its
own, with a reason; the rest of the batch goes on; it is also kept as a ``RejectedItem`` (its
bytes and, when one can be read where the mapping looks, its account id) for the events
dead-letter topic. A page, screen or identify call without an account is not an error: the SDKs
send them for anonymous visitors all the time, so it is skipped (``Skip.NO_ACCOUNT``), counted and
never dead-lettered. The SDKs' own unknown fields are ignored, as Segment does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from schemas.decoder import Reason, Rejection, validate_event_dict
from schemas.event import format_ts
from schemas.rfc3339 import MAX_EPOCH, MIN_EPOCH
from streams.ingest.group_traits import TraitError, account_patch
from streams.ingest.payload import BodyError, TooManyItems, generated_message_id, read_json_body, user_id_of
from streams.ingest.rejected import RejectedItem, TooDeep, account_id_at, item_bytes, value_at
from streams.ingest.sdk_time import parse_sdk_time

CALLS = frozenset({"track", "identify", "group", "page", "screen", "alias"})
# Calls the SDKs send for visitors no account is known for yet (analytics.js calls page() on every
# load, identify() with only an anonymousId): without an account *and without a userId* they are
# skipped, not rejected. A signed-in user's call without an account, and a track or group call
# without one, are a sender's error.
ANONYMOUS_CALLS = frozenset({"page", "screen", "identify"})
EVENT_NAMES = {
    "identify": "User Identified",
    "group": "Group Identified",
    "page": "Page Viewed",
    "screen": "Screen Viewed",
}
# The context keys kept on events: what helps a rule or a CSM; the rest (e.g. an SDK's whole
# device dump) is dropped so that a batch's shared context is never copied wholesale into items.
CONTEXT_KEYS = frozenset(
    {
        "active",
        "app",
        "campaign",
        "channel",
        "device",
        "groupId",
        "library",
        "locale",
        "location",
        "network",
        "os",
        "page",
        "referrer",
        "screen",
        "timezone",
        "traits",
        "userAgent",
    }
)


@dataclass(frozen=True, slots=True)
class TrackingConfig:
    """What the mapping needs from the settings, parsed once at start."""

    account_id_paths: tuple[tuple[str, ...], ...]
    trait_map: Mapping[str, str]
    max_event_bytes: int
    max_future_skew: float
    max_items: int
    max_shared_context_bytes: int

    @staticmethod
    def paths(dotted: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
        """``("context.groupId",)`` → ``(("context", "groupId"),)``; ``ValueError`` on an empty path."""
        out = []
        for path in dotted:
            parts = tuple(path.split("."))
            if not path or not all(parts):
                raise ValueError(f"PREEMPT_INGEST_ACCOUNT_ID_PATHS entry {path!r} is not a dotted path")
            out.append(parts)
        if not out:
            raise ValueError("PREEMPT_INGEST_ACCOUNT_ID_PATHS needs at least one path (e.g. context.groupId)")
        return tuple(out)


@dataclass(frozen=True, slots=True)
class ItemRejection:
    """One item that became nothing, and why (reason code, field as the SDK spells it, detail)."""

    index: int
    call: str | None
    message_id: str | None
    rejection: Rejection

    def to_json(self) -> dict[str, Any]:
        """The item's entry in the response's ``rejections``."""
        return {
            "index": self.index,
            "type": self.call,
            "messageId": self.message_id,
            "reason": str(self.rejection.reason),
            "field": self.rejection.field,
            "detail": self.rejection.detail,
        }


class Skip(StrEnum):
    """Why a call that is not an error became nothing (the ``reason`` of the skipped-calls metric)."""

    NO_ACCOUNT = "no_account"  # a page, screen or identify call of a visitor without an account


@dataclass(slots=True)
class TrackingParsed:
    """A body's records: events for preempt.events, account patches, ignored and skipped calls, rejections."""

    events: list[tuple[bytes, bytes]] = field(default_factory=list)
    account_updates: list[tuple[bytes, bytes]] = field(default_factory=list)
    ignored: int = 0
    rejections: list[ItemRejection] = field(default_factory=list)
    rejected: list[RejectedItem] = field(default_factory=list)  # one per rejection, for the dead-letter topic
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (call type, outcome) → items
    skips: dict[tuple[str, Skip], int] = field(default_factory=dict)  # (call type, reason) → items skipped

    @property
    def skipped(self) -> int:
        """Calls skipped (not errors, not events): see ``Skip``."""
        return sum(self.skips.values())


def _given(doc: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """``doc[name]``, or ``default`` when it is absent or JSON null: the SDKs (and any serialised struct) write
    null for an optional field they do not have, which is what Segment's API reads it as."""
    value = doc.get(name)
    return default if value is None else value


def _kept_context(context: Mapping[str, Any]) -> dict[str, Any]:
    # A null key is not sent (``_given``): it must not hide the batch's value for it (context.groupId: null
    # under the batch's groupId left the call without an account).
    return {k: v for k, v in context.items() if k in CONTEXT_KEYS and v is not None}


def split_tracking_body(body: bytes, call: str | None, config: TrackingConfig) -> tuple[list[Any], dict[str, Any], Any]:
    """(items, kept shared context, batch sentAt) of a ``/v1/batch`` body (``call`` None) or one call."""
    doc = read_json_body(body)
    if isinstance(doc, TooDeep) and call is not None:
        return [doc], {}, None  # rejected alone, too_deep
    if not isinstance(doc, dict):
        if isinstance(doc, TooDeep):  # a batch route: the deep part is not one call of a batch
            raise BodyError('the body nests JSON too deep to be read and is not {"batch": [...]}')
        raise BodyError("the body must be a JSON object")
    if call is not None:
        return [doc], {}, None
    batch = doc.get("batch")
    if not isinstance(batch, list):
        raise BodyError('a batch body is {"batch": [...]}; batch is missing or not an array')
    if len(batch) > config.max_items:
        raise TooManyItems(f"the batch has {len(batch)} items; the limit is {config.max_items}")
    shared = _given(doc, "context", {})
    if not isinstance(shared, dict):
        raise BodyError("the batch's context must be a JSON object")
    kept = _kept_context(shared)
    if kept and len(orjson.dumps(kept)) > config.max_shared_context_bytes:
        raise BodyError(
            f"the batch's shared context is larger than {config.max_shared_context_bytes} bytes; "
            "send large context on the items that need it"
        )
    return batch, kept, doc.get("sentAt")


def parse_tracking(body: bytes, call: str | None, config: TrackingConfig, received_at: float) -> TrackingParsed:
    """Map every call of ``body``; ``BodyError``/``TooManyItems`` when the body itself is unusable."""
    items, shared, batch_sent_at = split_tracking_body(body, call, config)
    parsed = TrackingParsed()
    for index, item in enumerate(items):
        item_call = call if call is not None else (item.get("type") if isinstance(item, dict) else None)
        message_id = item.get("messageId") if isinstance(item, dict) else None
        if isinstance(item, TooDeep):
            outcome: Any = item.rejection()
        else:
            outcome = _map_item(item, item_call, shared, batch_sent_at, config, received_at)
        label = item_call if isinstance(item_call, str) and item_call in CALLS else "unknown"
        if isinstance(outcome, Rejection):
            shown_call = item_call if isinstance(item_call, str) else None
            shown_id = message_id if isinstance(message_id, str) else None
            parsed.rejections.append(ItemRejection(index, shown_call, shown_id, outcome))
            parsed.rejected.append(
                _rejected_item(item, item_call, shared, body if call is not None else None, config, outcome)
            )
            verdict = "rejected"
        elif outcome is None:
            parsed.ignored += 1
            verdict = "ignored"
        elif isinstance(outcome, Skip):
            parsed.skips[(label, outcome)] = parsed.skips.get((label, outcome), 0) + 1
            verdict = "skipped"
        else:
            event, patch = outcome
            parsed.events.append(event)
            if patch is not None:
                parsed.account_updates.append(patch)
            verdict = "accepted"
        parsed.counts[(label, verdict)] = parsed.counts.get((label, verdict), 0) + 1
    return parsed


def _rejected_item(
    item: Any, call: Any, shared: dict[str, Any], whole_body: bytes | None, config: TrackingConfig, why: Rejection
) -> RejectedItem:
    """A rejected call for the dead-letter topic: a batch item with the batch's kept context under its own,
    keyed by the account wherever the mapping would have found it (``_account_lookup``)."""
    if not isinstance(item, dict):
        return RejectedItem(item_bytes(item, whole_body), None, why)
    own_context = _given(item, "context", {})
    if not isinstance(own_context, dict):
        own_context = {}  # rejected for it; the batch's context may still name the account
    elif shared:
        item = {**item, "context": {**shared, **own_context}}
    context = {**shared, **_kept_context(own_context)}
    account = account_id_at(_account_lookup(item, call, context), _account_paths(call, config))
    return RejectedItem(item_bytes(item, whole_body), account, why)


def _account_lookup(item: dict[str, Any], call: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The call as the account paths are read in it: ``context`` (the batch's kept context under the call's
    own) in place of its own, and ``context.traits`` under its ``traits``."""
    lookup = {**item, "context": context}
    if isinstance(context.get("traits"), dict):
        # RudderStack's SDKs send identify traits as context.traits, and the mobile SDKs repeat the
        # identified user's traits as context.traits on every later call: an account path into
        # ``traits`` (the default traits.company.id) finds them there too, the call's own first.
        # A null trait of the call's own is not sent: it does not hide context.traits' value.
        own_traits = item.get("traits")
        own = {k: v for k, v in own_traits.items() if v is not None} if isinstance(own_traits, dict) else {}
        lookup["traits"] = {**context["traits"], **own}
    return lookup


def _given_at(lookup: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> tuple[str, ...] | None:
    """The first of ``paths`` that holds a value at all (JSON null and "" count as absent)."""
    return next((path for path in paths if value_at(lookup, path) not in (None, "")), None)


def _account_paths(call: Any, config: TrackingConfig) -> tuple[tuple[str, ...], ...]:
    """Where a call's account id is: a group call's ``groupId``, else ``PREEMPT_INGEST_ACCOUNT_ID_PATHS``."""
    return (("groupId",),) if call == "group" else config.account_id_paths


Mapped = tuple[tuple[bytes, bytes], tuple[bytes, bytes] | None] | Rejection | Skip | None


def _map_item(
    item: Any,
    call: Any,
    shared: dict[str, Any],
    batch_sent_at: Any,
    config: TrackingConfig,
    received_at: float,
) -> Mapped:
    if not isinstance(item, dict):
        return Rejection(Reason.NOT_AN_OBJECT, "each call must be a JSON object")
    if call is None:
        return Rejection(Reason.MISSING_FIELD, "type is required in a batch item", "type")
    if not isinstance(call, str) or call not in CALLS:  # {} or [] cannot even be looked up
        return Rejection(Reason.INVALID_FIELD, f"type must be one of {', '.join(sorted(CALLS))}", "type")
    if call == "alias":
        return None  # accepted and counted; Preempt keys by account, so an alias changes nothing
    message_id = item.get("messageId")
    if message_id is None:
        message_id = generated_message_id(item, received_at)
    own_context = _given(item, "context", {})
    if not isinstance(own_context, dict):
        return Rejection(Reason.INVALID_FIELD, "context must be a JSON object", "context")
    context = {**shared, **_kept_context(own_context)}
    lookup, paths = _account_lookup(item, call, context), _account_paths(call, config)
    account = account_id_at(lookup, paths)
    if account is None:
        given = _given_at(lookup, paths)
        if given is not None:
            return Rejection(
                Reason.INVALID_FIELD, "the account id must be a non-empty string or an integer", ".".join(given)
            )
        if call in ANONYMOUS_CALLS and item.get("userId") in (None, ""):
            return Skip.NO_ACCOUNT
        return _no_account(call, config)
    timestamp = _corrected_timestamp(item, batch_sent_at, received_at)
    if isinstance(timestamp, Rejection):
        return timestamp
    canonical: dict[str, Any] = {
        "event_id": message_id,
        "event": item.get("event") if call == "track" else EVENT_NAMES[call],
        "account_id": account,
        "timestamp": timestamp,
    }
    if call == "track" and "event" not in item:
        del canonical["event"]
    user = user_id_of(item)
    if user is not None:
        canonical["user_id"] = user
    properties = _properties(item, call)
    if isinstance(properties, Rejection):
        return properties
    if call == "identify" and isinstance(context.get("traits"), dict):
        # RudderStack's SDKs send identify traits as context.traits; they are the properties here.
        properties = {**context.pop("traits"), **properties}
    if properties:
        canonical["properties"] = properties
    if context:
        canonical["context"] = context
    verdict = validate_event_dict(canonical, max_future_skew=config.max_future_skew, now=received_at)
    if isinstance(verdict, Rejection):
        return Rejection(verdict.reason, verdict.detail, _spelling(verdict.field, call, config))
    value = orjson.dumps(canonical)
    if len(value) > config.max_event_bytes:
        return Rejection(Reason.TOO_LARGE, f"the event is {len(value)} bytes; the limit is {config.max_event_bytes}")
    patch: tuple[bytes, bytes] | None = None
    if call == "group":
        try:
            fields = account_patch(verdict.account_id, properties or {}, config.trait_map)
        except TraitError as exc:
            return Rejection(Reason.INVALID_FIELD, str(exc), f"traits.{exc.trait}")
        if len(fields) > 1:
            patch = (verdict.account_id.encode("utf-8"), orjson.dumps(fields))
    return (verdict.account_id.encode("utf-8"), value), patch


def _spelling(name: str | None, call: str, config: TrackingConfig) -> str | None:
    """How the SDK spells a canonical field, for a rejection's ``field``."""
    if name == "account_id":
        return "groupId" if call == "group" else ".".join(config.account_id_paths[0])
    if name == "properties" and call in ("identify", "group"):
        return "traits"
    return {"event_id": "messageId", "user_id": "userId"}.get(name or "", name)


def _no_account(call: str, config: TrackingConfig) -> Rejection:
    if call == "group":
        return Rejection(Reason.MISSING_FIELD, "a group call needs groupId (the account id)", "groupId")
    tried = " or ".join(".".join(p) for p in config.account_id_paths)
    return Rejection(
        Reason.MISSING_FIELD,
        f"no account id: set {tried} (Preempt alerts per account; see PREEMPT_INGEST_ACCOUNT_ID_PATHS)",
        ".".join(config.account_id_paths[0]),
    )


def _instant(value: Any, name: str) -> float | Rejection:
    if not isinstance(value, str):
        return Rejection(Reason.INVALID_FIELD, f"{name} must be a string holding an ISO 8601 date and time", name)
    try:
        return parse_sdk_time(value)
    except ValueError as exc:
        return Rejection(Reason.INVALID_FIELD, f"{name} {exc}", name)


def _corrected_timestamp(item: dict[str, Any], batch_sent_at: Any, received_at: float) -> str | Rejection:
    """Segment's clock-skew correction: ``receivedAt − (sentAt − originalTimestamp)``.

    ``originalTimestamp`` is the client's time of the call (``timestamp`` when the SDK did not
    send it); ``sentAt`` the client's time of sending (the item's, else the batch's). Without
    ``sentAt`` the client's time is used as it is; without any time, the time of receipt.
    """
    original_field = "originalTimestamp" if _given(item, "originalTimestamp") is not None else "timestamp"
    if _given(item, original_field) is None:
        return format_ts(received_at)
    original = _instant(item[original_field], original_field)
    if isinstance(original, Rejection):
        return original
    sent_value = _given(item, "sentAt", batch_sent_at)
    if sent_value is None:
        corrected = original
    else:
        sent = _instant(sent_value, "sentAt")
        if isinstance(sent, Rejection):
            return sent
        corrected = received_at - (sent - original)
    if not (math.isfinite(corrected) and MIN_EPOCH <= corrected <= MAX_EPOCH):
        return Rejection(Reason.INVALID_FIELD, "the corrected timestamp falls outside 1970–9999", original_field)
    return format_ts(corrected)


def _properties(item: dict[str, Any], call: str) -> dict[str, Any] | Rejection:
    source = "traits" if call in ("identify", "group") else "properties"
    value = item.get(source, {})
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return Rejection(Reason.INVALID_FIELD, f"{source} must be a JSON object", source)
    if call in ("page", "screen"):
        extra = {k: item[k] for k in ("name", "category") if item.get(k) is not None and k not in value}
        value = {**value, **extra}
    return value
