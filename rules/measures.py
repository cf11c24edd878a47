"""Measures over a window: ``count``, ``distinct:<path>`` and ``sum:<path>``.

A measure turns each matching event into a contribution (``1``, the value to count distinctly,
or the number to add) and a set of contributions into one number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from rules.paths import MISSING, check_path, compile_path
from schemas.event import Event
from schemas.observed import Anomaly, report

log = structlog.get_logger(module=__name__)

MeasureKind = Literal["count", "distinct", "sum"]
MAX_SUM_VALUE = float(2**53)
"""``sum:`` ignores a value of larger magnitude (counted in ``preempt_measure_values_skipped_total``):
with it no window sum can overflow to infinity, which JSON cannot store (it would write ``null``)."""
DISTINCT_VALUES_PER_BUCKET = 1000
"""Distinct values remembered exactly per time bucket; past it the bucket becomes a sketch
(``rules.windows.add_distinct``, ``rules.sketch``): bounds state, documented in docs/rules.md."""
MAX_DISTINCT_VALUE_CHARS = 64
"""A ``distinct:`` value longer than this is remembered as a 33-character digest (:func:`compact`):
counting needs only equality, and a state holding thousands of long values (URLs, queries, whole
objects) would outgrow what the worker may store per account (it quarantines such a state, so the
stream would forget what a backtest, which has no such limit, remembers)."""


TYPED = "="
"""The mark that starts the string a non-string ``distinct:`` value is counted as, so that no string
value counts as the same value: the number ``500`` and the string ``"500"``, ``true`` and ``"True"``
are two values, as ``where`` tells them apart. A string that itself starts with the mark gets a
second one (the counted strings stay one-to-one with the values). Printable, so it costs one byte of
state a value (a control character is written ``\u001f`` in JSON: six)."""


_skips: dict[tuple[str, str], int] = {}


def _skipped(measure: str, reason: str, ev: Event) -> None:
    """Count one value a ``sum:`` measure could not add, and log it: never silent, never a flood.

    Every skip is counted (``preempt_measure_values_skipped_total{reason}``); the log has the first
    skip of each measure and reason, then the 10th, 100th, 1000th… with the total so far (``rules``
    reads no clock, so the throttle counts instead of timing): a producer sending ``"49.99"`` on
    every event gives a handful of lines, not one per event."""
    report(Anomaly.MEASURE_VALUE_SKIPPED, reason)
    key = (measure, reason)
    total = _skips.get(key, 0) + 1
    if len(_skips) < 10_000 or key in _skips:  # bounded: measures come from rule files
        _skips[key] = total
    if total == 1 or is_power_of_ten(total):
        log.warning(
            "sum value skipped",
            measure=measure,
            reason=reason,
            skipped_so_far=total,
            event_name=ev.event[:100],
            account_id=ev.account_id[:100],
        )


def is_power_of_ten(n: int) -> bool:
    while n % 10 == 0:
        n //= 10
    return n == 1


def check_measure(text: str) -> str:
    """Validate ``count`` / ``distinct:<path>`` / ``sum:<path>`` (for pydantic validators); returns it written
    the one way (``sum: properties.amount``, with YAML's habit of a space after the colon, is
    ``sum:properties.amount``: it was refused as a path starting with a space)."""
    kind, sep, path = text.strip().partition(":")
    kind, path = kind.strip(), path.strip()
    if not sep and kind == "count":
        return kind
    if not sep or kind not in ("distinct", "sum"):
        raise ValueError(f"{text!r} is not a measure: use count, distinct:<path> or sum:<path>")
    text = f"{kind}:{path}"
    check_path(path)
    if kind == "sum" and path in ("event", "event_id", "account_id", "user_id"):
        # text on every event: nothing would ever be added and the rule would never fire
        raise ValueError(f"{text!r} never adds anything: {path} is text; sum a number (sum:properties.amount)")
    return text


@dataclass(frozen=True, slots=True)
class Measure:
    """A compiled measure: ``contribution(event)`` is ``None`` when the event adds nothing."""

    text: str
    kind: MeasureKind
    contribution: Callable[[Event], Any]


def _count(_: Event) -> int:
    return 1


def compile_latest(path: str) -> Callable[[Event], float | None]:
    """A score component's ``latest`` value: the number at ``path``, or None when the event has none. A value
    that is not a number (``"9"`` as a string, ``true``) or is missing is skipped and counted like a ``sum:``
    value (``preempt_measure_values_skipped_total{reason="missing"|"not_a_number"}``, logged): an NPS score
    sent as a string was ignored silently before, and the component kept its default."""
    getter = compile_path(path)
    text = f"latest:{path}"

    def number(ev: Event) -> float | None:
        value = getter(ev)
        if isinstance(value, bool) or not isinstance(value, int | float):
            _skipped(text, "missing" if value is MISSING or value is None else "not_a_number", ev)
            return None
        return float(value)

    return number


def compile_measure(text: str) -> Measure:
    """Compile a checked measure string."""
    text = check_measure(text)
    if text == "count":
        return Measure(text, "count", _count)
    kind, _, path = text.partition(":")
    getter = compile_path(path)
    if kind == "sum":

        def number(ev: Event) -> float | None:
            value = getter(ev)
            if isinstance(value, bool) or not isinstance(value, int | float):
                _skipped(text, "missing" if value is MISSING or value is None else "not_a_number", ev)
                return None
            if not -MAX_SUM_VALUE <= value <= MAX_SUM_VALUE:  # also False for NaN
                _skipped(text, "out_of_range", ev)
                return None
            return float(value)

        return Measure(text, "sum", number)

    root, _, key = path.partition(".")
    if path == "user_id":  # the common paths with the getter inlined (one call per event instead of two)

        def distinct_user(ev: Event) -> str | None:
            value = ev.user_id
            if value is None:
                return None
            shown = value if value[:1] != TYPED else TYPED + value  # a user id is always a string
            return shown if len(shown) <= MAX_DISTINCT_VALUE_CHARS else compact(shown)

        return Measure(text, "distinct", distinct_user)
    if root == "properties" and "." not in key:

        def distinct_property(ev: Event) -> str | None:
            value = ev.properties.get(key, MISSING)
            if value is MISSING or value is None:
                return None
            shown = value if type(value) is str and value[:1] != TYPED else canonical(value)
            return shown if len(shown) <= MAX_DISTINCT_VALUE_CHARS else compact(shown)

        return Measure(text, "distinct", distinct_property)
    return Measure(text, "distinct", distinct_by(getter))


def distinct_by(getter: Callable[[Event], Any]) -> Callable[[Event], str | None]:
    """The contribution of ``distinct:<path>``: the value at the path as a string, None when absent."""

    def distinct(ev: Event) -> str | None:
        value = getter(ev)
        if value is MISSING or value is None:
            return None
        # one canonical string per JSON value keeps the state serializable
        shown = canonical(value)
        return shown if len(shown) <= MAX_DISTINCT_VALUE_CHARS else compact(shown)

    return distinct


def canonical(value: Any) -> str:
    """The string a ``distinct:`` value is counted as: a string as itself; any other value marked
    (``TYPED``) and by value, as ``where`` compares them (``500`` and ``500.0`` are one value, ``true``
    apart from ``1``, and neither the same as a string)."""
    if type(value) is str:
        return value if value[:1] != TYPED else TYPED + value
    if type(value) is float and value.is_integer() and abs(value) < MAX_SUM_VALUE:
        return TYPED + repr(int(value))
    return TYPED + repr(value)


def compact(text: str) -> str:
    """The digest a long ``distinct:`` value is remembered as: ``#`` and 32 hex digits (128 bits)."""
    return "#" + hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
