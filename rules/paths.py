"""Dotted paths into an event (``properties.plan.tier``, ``user_id``), compiled to getters.

The roots are the event's fields; below ``properties`` and ``context`` the path walks nested
JSON objects, and a key with dots in its name is found by the same path: ``properties.http.code``
reads ``{"http": {"code": 503}}`` and also ``{"http.code": 503}`` (OpenTelemetry-style attribute
names, which no path could reach otherwise); where both hold a value, the nested object's is read.
A missing step yields :data:`MISSING` rather than an error, so a rule never crashes on an event
that lacks a property.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from schemas.event import Event


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""What a getter returns when the path does not exist in the event."""

SCALAR_ROOTS = ("event_id", "event", "account_id", "user_id", "ts")
OBJECT_ROOTS = ("properties", "context")
ROOTS = SCALAR_ROOTS + OBJECT_ROOTS

Getter = Callable[[Event], Any]


def check_path(path: str) -> str:
    """Validate a dotted path (for pydantic validators); returns it unchanged."""
    parts = path.split(".")
    if any(not part for part in parts):
        raise ValueError(f"{path!r} is not a dotted path (empty segment)")
    if parts[0] not in ROOTS:
        raise ValueError(f"{path!r} must start with one of {', '.join(ROOTS)}")
    if parts[0] in SCALAR_ROOTS and len(parts) > 1:
        raise ValueError(f"{path!r}: {parts[0]} has no fields below it")
    if parts[0] in OBJECT_ROOTS and len(parts) == 1:
        raise ValueError(f"{path!r}: name a field below {parts[0]}, e.g. {parts[0]}.plan")
    return path


def compile_path(path: str) -> Getter:
    """A fast getter for a checked dotted path."""
    parts = check_path(path).split(".")
    root = parts[0]
    if root in SCALAR_ROOTS:
        if root == "user_id":
            return lambda ev: MISSING if ev.user_id is None else ev.user_id
        return lambda ev: getattr(ev, root)
    keys = tuple(parts[1:])
    if len(keys) == 1:
        (key,) = keys
        if root == "properties":
            return lambda ev: ev.properties.get(key, MISSING)
        return lambda ev: ev.context.get(key, MISSING)

    def walk(ev: Event) -> Any:
        top: Any = ev.properties if root == "properties" else ev.context
        node = top
        for key in keys:
            if not isinstance(node, dict):
                return _dotted(top, keys)
            node = node.get(key, MISSING)
            if node is MISSING:
                return _dotted(top, keys)
        return node

    return walk


def _dotted(node: Any, keys: tuple[str, ...]) -> Any:
    """The value at ``keys`` below ``node`` where some keys hold dots (``{"http.code": 503}``): shorter keys first,
    so the nested object's value wins; only read when the plain nested walk found nothing."""
    if not keys:
        return node
    if not isinstance(node, dict):
        return MISSING
    for end in range(1, len(keys) + 1):
        value = node.get(".".join(keys[:end]), MISSING)
        if value is not MISSING:
            found = _dotted(value, keys[end:])
            if found is not MISSING:
                return found
    return MISSING
