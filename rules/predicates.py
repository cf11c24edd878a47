"""``match`` compiled once at load into one plain callable ``Event -> bool`` (no ``eval``).

Every op is a closure over its operand. Comparisons across types (a string against a number)
are simply false, never an error; ``true``/``false`` never equal ``1``/``0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rules.paths import MISSING, check_path, compile_path

if TYPE_CHECKING:
    from rules.models import Match, WhereOps
    from schemas.event import Event

Matcher = Callable[["Event"], bool]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _number(a) and _number(b):
        return bool(a == b)
    return type(a) is type(b) and a == b


_NUMERIC = frozenset({int, float})  # exact types: bool is an int subclass but never a number here


def _ordered(op: str, operand: Any) -> Callable[[Any], bool]:
    """A comparison that is false for other types (and for MISSING, whose type is neither)."""
    kinds = _NUMERIC if _number(operand) else frozenset({str})
    if op == "gt":
        return lambda v: type(v) in kinds and v > operand
    if op == "gte":
        return lambda v: type(v) in kinds and v >= operand
    if op == "lt":
        return lambda v: type(v) in kinds and v < operand
    return lambda v: type(v) in kinds and v <= operand


def _contains(operand: Any) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if isinstance(value, str):
            return isinstance(operand, str) and operand in value
        if isinstance(value, list):
            return any(_same(item, operand) for item in value)
        return False

    return check


def _present_and(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is not MISSING and test(v)


def _on_path(getter: Callable[[Event], Any], test: Callable[[Any], bool]) -> Callable[[Event], bool]:
    return lambda ev: test(getter(ev))


def _op_tests(ops: WhereOps) -> list[Callable[[Any], bool]]:
    """One test per op given; the value passed is MISSING when the path is absent."""
    tests: list[Callable[[Any], bool]] = []
    given = ops.model_fields_set
    if "exists" in given:
        want = ops.exists
        tests.append(lambda v: (v is not MISSING and v is not None) is want)
    if "eq" in given:
        eq = ops.eq
        tests.append(lambda v: v is not MISSING and _same(v, eq))
    if "ne" in given:
        ne = ops.ne
        tests.append(lambda v: v is MISSING or not _same(v, ne))
    tests.extend(_ordered(op, getattr(ops, op)) for op in ("gt", "gte", "lt", "lte") if op in given)
    if "in_" in given:
        choices = tuple(ops.in_ or ())
        tests.append(lambda v: v is not MISSING and any(_same(v, c) for c in choices))
    if "not_in" in given:
        banned = tuple(ops.not_in or ())
        tests.append(lambda v: v is MISSING or not any(_same(v, c) for c in banned))
    if "contains" in given:
        tests.append(_present_and(_contains(ops.contains)))
    return tests


_FUSED_OPS = frozenset({"gt", "gte", "lt", "lte", "eq", "in_"})


def _fused_checks(path: str, ops: WhereOps) -> list[Callable[[Event], bool]] | None:
    """The common shapes (``properties.<key>`` or ``context.<key>`` compared with a number or
    string, equal to a string, in a list of strings) as one closure each instead of three
    nested calls (path getter, op test, their composition). Same results as ``_op_tests``;
    ``None`` for every other shape."""
    root, _, key = check_path(path).partition(".")
    given = ops.model_fields_set
    if root not in ("properties", "context") or "." in key or not given <= _FUSED_OPS:
        return None
    if "eq" in given and not isinstance(ops.eq, str):
        return None
    if "in_" in given and not all(isinstance(c, str) for c in ops.in_ or ()):
        return None
    props = root == "properties"
    checks: list[Callable[[Event], bool]] = []
    for op in ("gt", "gte", "lt", "lte"):
        if op in given:
            operand = getattr(ops, op)
            kinds = _NUMERIC if _number(operand) else frozenset({str})
            checks.append(_fused_ordered(props, key, op, operand, kinds))
    if "eq" in given:  # _same(v, a string): v is exactly a str and equal
        eq = ops.eq
        if props:
            checks.append(lambda ev: type(v := ev.properties.get(key, MISSING)) is str and v == eq)
        else:
            checks.append(lambda ev: type(v := ev.context.get(key, MISSING)) is str and v == eq)
    if "in_" in given:  # any(_same(v, c)) over strings: v is exactly a str and one of them
        choices = frozenset(ops.in_ or ())
        if props:
            checks.append(lambda ev: type(v := ev.properties.get(key, MISSING)) is str and v in choices)
        else:
            checks.append(lambda ev: type(v := ev.context.get(key, MISSING)) is str and v in choices)
    return checks


def _fused_ordered(props: bool, key: str, op: str, operand: Any, kinds: frozenset[type]) -> Callable[[Event], bool]:
    if props:
        if op == "gt":
            return lambda ev: type(v := ev.properties.get(key, MISSING)) in kinds and v > operand
        if op == "gte":
            return lambda ev: type(v := ev.properties.get(key, MISSING)) in kinds and v >= operand
        if op == "lt":
            return lambda ev: type(v := ev.properties.get(key, MISSING)) in kinds and v < operand
        return lambda ev: type(v := ev.properties.get(key, MISSING)) in kinds and v <= operand
    test = _ordered(op, operand)
    return lambda ev: test(ev.context.get(key, MISSING))


def _where_checks(match: Match) -> list[Callable[[Event], bool]]:
    checks: list[Callable[[Event], bool]] = []
    for path, ops in match.where.items():
        fused = _fused_checks(path, ops)
        if fused is not None:
            checks.extend(fused)
            continue
        getter = compile_path(path)
        checks.extend(_on_path(getter, test) for test in _op_tests(ops))
    return checks


def _all_of(checks: list[Callable[[Event], bool]]) -> Matcher | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda ev: all(check(ev) for check in checks)


_SHARED_WHERES: dict[tuple[Any, ...], Matcher | None] = {}
MAX_SHARED_WHERES = 10_000


def compile_where(match: Match) -> Matcher | None:
    """The ``where`` part of a match alone, for callers that dispatched on the event name already.

    ``None`` when the match has no ``where``: every event of one of its names matches. Equal
    ``where`` blocks (in several rules) give the same callable, so the engine, which routes
    events by these tests, runs a test that consecutive rules share once per event.
    """
    key = tuple(
        (path, tuple(sorted((op, repr(getattr(ops, op))) for op in ops.model_fields_set)))
        for path, ops in match.where.items()
    )
    if key in _SHARED_WHERES:
        return _SHARED_WHERES[key]
    where = _all_of(_where_checks(match))
    if len(_SHARED_WHERES) < MAX_SHARED_WHERES:
        _SHARED_WHERES[key] = where
    return where


def compile_match(match: Match | None) -> Matcher:
    """The callable for a ``match`` block; ``None`` (no block) matches every event."""
    if match is None:
        return lambda ev: True
    names = match.event_names
    checks = _where_checks(match)
    if names is None and not checks:
        return lambda ev: True
    if names is not None and not checks:
        if len(names) == 1:
            (only,) = names
            return lambda ev: ev.event == only
        return lambda ev: ev.event in names
    if len(checks) == 1:  # the common case, without the generator of all()
        (check,) = checks
        if names is None:
            return check
        return lambda ev: ev.event in names and check(ev)
    if names is None:
        return lambda ev: all(check(ev) for check in checks)
    return lambda ev: ev.event in names and all(check(ev) for check in checks)
