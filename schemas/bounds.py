"""The edge bounds of an event's content — ONE definition for the decoder, the SDK, the CLI and HTTP ingest.

Who calls it: ``schemas.decoder`` (for every record the rules worker reads, and through
``validate_event_dict`` for the publisher SDK, ``preempt publish`` and HTTP ingest) and
``schemas.event.UsageEvent`` (pydantic, JSON Schema export), so all five accept exactly the same
events. Each bound has its own stable reason code (docs/events.md lists them):

==========================  ==========================================================================
``too_deep``                ``properties`` or ``context`` nest objects/arrays more than 32 levels
``too_many_properties``     more than 1,000 keys and array items in ``properties`` and ``context`` together
``string_too_long``         a string value longer than 8,192 characters, or a key longer than 256
``control_character``       a control character (U+0000–U+001F, U+007F–U+009F) in ``event_id``,
                            ``event``, ``account_id`` or ``user_id``
``number_out_of_range``     an integer outside ±(2^53 − 1) (what every JSON reader holds exactly), or a
                            number that is not finite (NaN, ±Infinity: only an SDK can pass one)
==========================  ==========================================================================

Why: the rules worker stores events (and sums of their numbers) in per-account state; a value
that cannot be stored or read back — a few hundred levels of nesting, an integer past 64 bits, an
infinity that JSON writes as ``null`` — must be refused here, at the edge, with a reason the
sender sees, not discovered later where it can only stop the worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_NESTING_DEPTH = 32
"""Containers inside ``properties``/``context``: the object itself is depth 1."""
MAX_PROPERTY_VALUES = 1000
"""Keys and array items, at every level, of ``properties`` and ``context`` together."""
MAX_STRING_CHARS = 8192
"""Characters of one string value inside ``properties``/``context``."""
MAX_KEY_CHARS = 256
"""Characters of one object key inside ``properties``/``context``."""
MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a JSON reader with IEEE doubles (JavaScript, most SDKs) holds exactly."""
LARGE_FLOAT = 2.0**63
"""orjson reads an integer literal outside [-2^63, 2^64) as the nearest float, of at least this magnitude."""

CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f"
NO_CONTROL_CHARACTERS_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""JSON Schema / pydantic pattern of an id without control characters."""
_control = re.compile(f"[{CONTROL_CHARACTERS}]").search
_controls = re.compile(f"[{CONTROL_CHARACTERS}]")


def visible_controls(text: str) -> str:
    """``text`` with every control character shown as ``\\xNN``, for a terminal: a rejected event's field
    name, key or value comes from its sender, and raw it could move, clear or retitle the terminal of whoever
    reads the report, or forge a line of it."""
    return _controls.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


TOO_DEEP = "too_deep"
TOO_MANY_PROPERTIES = "too_many_properties"
STRING_TOO_LONG = "string_too_long"
CONTROL_CHARACTER = "control_character"
NUMBER_OUT_OF_RANGE = "number_out_of_range"


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken bound: the reason code, a sentence for people, and the top-level field."""

    reason: str
    detail: str
    field: str


def control_character_in(text: str) -> int:
    """Index of the first control character of ``text``, or -1 (``isprintable`` is the fast path)."""
    if text.isprintable():
        return -1
    found = _control(text)
    return -1 if found is None else found.start()


def check_id(name: str, value: str) -> Violation | None:
    """A ``control_character`` violation when the id ``name`` holds one, else None."""
    at = control_character_in(value)
    if at < 0:
        return None
    return Violation(CONTROL_CHARACTER, f"{name} has a control character (U+{ord(value[at]):04X}) at {at}", name)


class _Recheck:
    """The type of :data:`RECHECK_NUMBERS`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RECHECK_NUMBERS"


RECHECK_NUMBERS = _Recheck()
""":func:`scan_content`'s answer when a float of magnitude ≥ 2^63 may stand for an integer literal."""


def check_content(properties: Any, context: Any) -> Violation | None:
    """The first bound ``properties`` and ``context`` (already known to be objects) break, or None."""
    found = scan_content(properties, context)
    return None if isinstance(found, _Recheck) else found


def scan_content(properties: Any, context: Any) -> Violation | _Recheck | None:
    """:func:`check_content`, for values parsed from JSON text by orjson.

    orjson reads an integer literal past 64 bits (``18446744073709551616``) as the nearest float,
    which this walk would let through as a large finite float. So when no bound is broken but a
    float of magnitude ≥ 2^63 is present, the answer is :data:`RECHECK_NUMBERS`: a caller holding
    the JSON text re-reads it with exact integers (``schemas.decoder.loads_exact``) and checks that.
    """
    left = MAX_PROPERTY_VALUES
    recheck = False
    if properties:
        after = _check(properties, 1, left)
        if after < 0:  # broken, a large float, or a shape only Python callers make: say precisely
            budget = [left]
            found = _describe(properties, "properties", 1, budget)
            if found is not None:
                return found
            after = budget[0]
            recheck = True
        left = after
    if context:
        after = _check(context, 1, left)
        if after < 0:
            found = _describe(context, "context", 1, [left])
            if found is not None:
                return found
            recheck = True
    return RECHECK_NUMBERS if recheck else None


_BROKEN = -1


def _check(node: Any, depth: int, left: int) -> int:
    """What is left of the value budget after ``node``, or a negative number when a bound is broken.

    The hot path (every event the worker reads): one pass over the values with a type check each,
    no allocation. :func:`_describe` re-walks a refused node to say which bound and where.
    """
    if depth > MAX_NESTING_DEPTH:
        return _BROKEN
    left -= len(node)
    if left < 0:
        return _BROKEN
    if type(node) is dict:
        for key in node:
            if type(key) is not str or len(key) > MAX_KEY_CHARS:
                return _BROKEN
        node = node.values()
    for value in node:
        kind = type(value)
        if kind is str:
            if len(value) > MAX_STRING_CHARS:
                return _BROKEN
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                return _BROKEN
        elif kind is dict or kind is list:
            left = _check(value, depth + 1, left)
            if left < 0:
                return _BROKEN
        elif kind is float:
            # False for NaN and ±inf too; a large finite float takes the slow walk (scan_content).
            if not -LARGE_FLOAT < value < LARGE_FLOAT:
                return _BROKEN
        elif kind is bool or value is None:
            pass
        else:  # only from Python callers (SDK): tuples, str/int subclasses… (checked by _describe)
            return _BROKEN
    return left


def _describe(node: Any, field: str, depth: int, budget: list[int]) -> Violation | None:
    if depth > MAX_NESTING_DEPTH:
        return Violation(TOO_DEEP, f"{field} nests more than {MAX_NESTING_DEPTH} levels deep", field)
    budget[0] -= len(node)
    if budget[0] < 0:
        return Violation(
            TOO_MANY_PROPERTIES,
            f"properties and context hold more than {MAX_PROPERTY_VALUES} keys and array items together",
            field,
        )
    if isinstance(node, dict):
        for key in node:  # a non-str key is the serializer's to refuse (orjson raises TypeError)
            if isinstance(key, str) and len(key) > MAX_KEY_CHARS:
                return Violation(
                    STRING_TOO_LONG, f"{field} has a key of {len(key)} characters (at most {MAX_KEY_CHARS})", field
                )
        values: Any = node.values()
    else:
        values = node
    for value in values:
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                return Violation(
                    STRING_TOO_LONG,
                    f"{field} has a string of {len(value)} characters (at most {MAX_STRING_CHARS})",
                    field,
                )
        elif isinstance(value, int):
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                return Violation(
                    NUMBER_OUT_OF_RANGE, f"{field} has an integer outside ±(2^53 - 1): {_clip(str(value))}", field
                )
        elif isinstance(value, float):
            if value - value != 0.0:
                return Violation(NUMBER_OUT_OF_RANGE, f"{field} has a number that is not finite ({value})", field)
        elif isinstance(value, (dict, list, tuple)):
            found = _describe(value, field, depth + 1, budget)
            if found is not None:
                return found
    return None


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
