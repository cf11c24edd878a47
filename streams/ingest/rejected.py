"""An item ingest rejected, as it goes to ``preempt.events.dlq``: its bytes, its account, its verdict.

Pure. ``payload.parse_body`` and ``tracking.parse_tracking`` build one per rejected item;
``gate.queue_dead_letters`` sends them. The value is the request body itself when the body was
that one item, else the item re-serialized with orjson (the per-item bytes of a JSON array are not
kept by the parser), a batch's shared ``context`` merged under its own as ingest read it — a NaN or
±Infinity written as the sender's JSON library wrote it (``NaN``), not as orjson would (``null``). Either
way without ``writeKey``: analytics.js puts the API key there, and a dead letter must not carry it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.bounds import MAX_NESTING_DEPTH
from schemas.decoder import Reason, Rejection

SECRET_FIELDS = frozenset({"writeKey"})


@dataclass(frozen=True, slots=True)
class RejectedItem:
    """One rejected item: the bytes to dead-letter (None if they cannot be written), its account id, why."""

    value: bytes | None
    account_id: str | None
    rejection: Rejection


def first_rejection(rejection: Rejection) -> dict[str, str | None]:
    """The log fields of a request's first rejected item (``first_reason``, ``first_field``, ``first_detail``):
    the WARNING that says items were rejected says why, on /v1/events as on the tracking API."""
    return {"first_reason": str(rejection.reason), "first_field": rejection.field, "first_detail": rejection.detail}


MAX_READ_DEPTH = 512
"""Levels of nesting of one item past which, in a body the readers refuse, the item is cut out (``payload.deep_items``).

orjson reads at most 1,024 levels in the whole document and the standard library (the lenient
reader) fewer; an item can hold at most 32 levels inside ``properties``/``context`` anyway."""


@dataclass(frozen=True, slots=True)
class TooDeep:
    """An item of a request nested too deep to be read: its bytes as sent. Rejected ``too_deep``."""

    raw: bytes

    def rejection(self) -> Rejection:
        """Why the item is rejected."""
        return Rejection(
            Reason.TOO_DEEP,
            f"the item nests JSON more than {MAX_READ_DEPTH} levels deep and cannot be read "
            f"(properties and context may nest {MAX_NESTING_DEPTH} levels)",
        )


def item_bytes(item: Any, whole_body: bytes | None) -> bytes | None:
    """``whole_body`` when the body was this one item, else ``item`` as JSON; ``writeKey`` left out.

    None only for an item no JSON encoder can write back (nested past the encoders' depth), and for a
    ``TooDeep`` item's bytes that hold a ``writeKey`` (they cannot be read to leave it out).
    """
    if isinstance(item, TooDeep):
        return None if b'"writeKey"' in item.raw else item.raw
    secret = isinstance(item, dict) and any(name in item for name in SECRET_FIELDS)
    if whole_body is not None and not secret:
        return whole_body
    if secret:
        item = {k: v for k, v in item.items() if k not in SECRET_FIELDS}
    if not _has_non_finite(item):  # orjson would write NaN and ±Infinity as null: the sender would not see them
        try:
            return orjson.dumps(item)
        except orjson.JSONEncodeError:
            pass  # an integer past 64 bits (number_out_of_range) or nesting past orjson's 255 levels
    try:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError, RecursionError):
        return None


def _has_non_finite(item: Any) -> bool:
    """Whether ``item`` holds a NaN or ±Infinity float anywhere (only rejected items are walked)."""
    stack = [item]
    while stack:
        node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def value_at(item: Any, path: tuple[str, ...]) -> Any:
    """What ``item`` holds at ``path`` (nested objects), None when any step is missing or not an object."""
    found: Any = item
    for part in path:
        found = found.get(part) if isinstance(found, dict) else None
    return found


def account_id_at(item: Any, paths: Iterable[tuple[str, ...]]) -> str | None:
    """The first non-empty account id (a string, or an integer as text) at one of ``paths`` in ``item``."""
    for path in paths:
        found = value_at(item, path)
        if isinstance(found, int) and not isinstance(found, bool):
            found = str(found)
        if isinstance(found, str) and found:
            return found
    return None
