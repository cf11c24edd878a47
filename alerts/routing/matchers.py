"""Alertmanager-style matchers (``severity="critical"``, ``team=~"sup.*"``) over an alert's fields and labels.

A matcher names either an alert field (``severity``, ``rule_id``, ``kind``, ``account_id``,
``priority``, ``title``, ``user_id``), a dotted path into the account (``account.tier``,
``account.owner.email``), an explicit label (``labels.team``) or — as in Alertmanager, where
everything is a label — a bare label name (``team``). A missing value reads as the empty string, so
``team=""`` matches alerts without that label and ``team!="x"`` matches them too.
Regular expressions are anchored at both ends, as in Alertmanager. ``alertname`` — Alertmanager's
name of an alert — reads the rule id, so routes written for Alertmanager keep working.

One entry of a ``matchers`` list may hold one matcher or, as in Alertmanager's own configs, a
comma-separated set in braces or without: ``'{owner="team-A", level!="critical"}'``
(:func:`parse_matchers`).
"""

from __future__ import annotations

import re
import re._constants as sre_constants  # type: ignore[import-not-found]  # no stub; the parser re itself uses
import re._parser as sre_parser  # type: ignore[import-not-found]
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.alert import Alert

Operator = Literal["=", "!=", "=~", "!~"]

# Alert fields a matcher may name directly; anything else is a label.
ALERT_FIELDS = frozenset({"alert_id", "rule_id", "kind", "title", "severity", "priority", "account_id", "user_id"})

_MATCHER_RE = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^"\s=~][^"]*?|)\s*$"""
)


# Alertmanager's names for the same concepts.
ALIASES = {"alertname": "rule_id"}


def alert_value(alert: Alert, name: str) -> str:
    """The value ``name`` refers to in ``alert`` as a string ("" when missing), for matching and grouping."""
    name = ALIASES.get(name, name)
    if name in ALERT_FIELDS:
        value: Any = getattr(alert, name)
    elif name.startswith("labels."):
        value = alert.labels.get(name[len("labels.") :])
    elif name.startswith("account."):
        value = _dig(alert.account.model_dump(), name[len("account.") :].split("."))
    elif name.startswith("evidence."):
        value = _dig(alert.evidence.model_dump(), name[len("evidence.") :].split("."))
    else:
        value = alert.labels.get(name)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _dig(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


@dataclass(frozen=True)
class Matcher:
    """One ``name op value`` test; parse it from text with :meth:`parse`."""

    name: str
    op: Operator
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``severity="critical"`` / ``account.tier!=starter`` / ``rule_id=~"error-.*"``.

        Raises ``ValueError`` with a readable reason on bad syntax or a bad regular expression.
        """
        m = _MATCHER_RE.match(text)
        if m is None:
            raise ValueError(f"invalid matcher {text!r}: expected name=value, name!=value, name=~regex or name!~regex")
        raw = m["value"]
        value = _unquote(raw) if raw.startswith('"') else raw
        op: Operator = m["op"]  # type: ignore[assignment]
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression in matcher {text!r}: {exc}") from None
            if _nests_repetition(sre_parser.parse(value).data, inside_repeat=False):
                raise ValueError(
                    f"regular expression in matcher {text!r} has nested repetition (a repeated group that "
                    "itself repeats, like '(a+)+'), which can take minutes on some values and stall the "
                    "notifier: repeat once, e.g. 'a+' instead of '(a+)+', or make the inner repeat "
                    "possessive ('(a++)+')"
                )
        return cls(m["name"], op, value, regex)

    def matches(self, alert: Alert) -> bool:
        """True when the alert's value for ``name`` passes this test."""
        actual = alert_value(alert, self.name)
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None  # set by parse for regex operators
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)


def _nests_repetition(items: list[Any], *, inside_repeat: bool) -> bool:
    """Whether a parsed regex holds a variable-count repeat inside another repeat (``(a+)+``, ``(.*a)*``,
    ``(a{1,3})+``): the shape that backtracks exponentially, since Python's ``re`` has no timeout.
    Possessive repeats and atomic groups never backtrack into, so they are left alone."""
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            variable = high > 1 and low != high
            if inside_repeat and variable:
                return True
            if _nests_repetition(body.data, inside_repeat=inside_repeat or high > 1):
                return True
        elif op == sre_constants.POSSESSIVE_REPEAT:
            # Never backtracked into as a whole, but what it repeats still backtracks within each
            # pass: ``(?:(a+)+b)++`` is as exponential as ``(a+)+b``.
            low, high, body = av
            if _nests_repetition(body.data, inside_repeat=inside_repeat or high > 1):
                return True
        elif op == sre_constants.ATOMIC_GROUP:
            if _nests_repetition(av.data, inside_repeat=inside_repeat):  # likewise: ``(?>(a+)+b)``
                return True
        elif op == sre_constants.SUBPATTERN:
            if _nests_repetition(av[3].data, inside_repeat=inside_repeat):
                return True
        elif op == sre_constants.BRANCH:
            if any(_nests_repetition(branch.data, inside_repeat=inside_repeat) for branch in av[1]):
                return True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            if _nests_repetition(av[1].data, inside_repeat=inside_repeat):
                return True
        elif op == sre_constants.GROUPREF_EXISTS:
            branches = [b for b in av[1:] if b is not None]
            if any(_nests_repetition(b.data, inside_repeat=inside_repeat) for b in branches):
                return True
    return False


_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


def _unquote(raw: str) -> str:
    """A quoted value's text, unescaped as Alertmanager does: ``\\"``, ``\\\\`` and ``\\n``; any other
    backslash stays, so a regular expression keeps ``\\d`` or ``\\.`` (``=~"acc-\\d+"``)."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]), raw[1:-1])


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside double quotes (a quoted value may hold commas and escaped quotes)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Parse one ``matchers`` entry: a matcher, or a comma-separated set, optionally in braces.

    ``'severity="critical"'``, ``'{owner="team-A"}'``, ``'{level!="critical", team=~"sup.*"}'``,
    ``'owner="a", level="b"'``. Raises ``ValueError`` naming the entry on bad syntax.
    """
    body = text.strip()
    if body.startswith("{") or body.endswith("}"):
        if not (body.startswith("{") and body.endswith("}")):
            raise ValueError(f'invalid matcher {text!r}: unbalanced braces; write {{name="value", …}}')
        body = body[1:-1]
    parts = _split_top_level(body)
    if parts and not parts[-1].strip():
        parts.pop()  # Alertmanager allows a trailing comma
    if not parts:
        raise ValueError(f"invalid matcher {text!r}: no matcher inside the braces")
    return tuple(Matcher.parse(part) for part in parts)


def matches_all(matchers: tuple[Matcher, ...], alert: Alert) -> bool:
    """True when every matcher matches (an empty tuple matches everything)."""
    return all(m.matches(alert) for m in matchers)


def describe(matchers: tuple[Matcher, ...]) -> str:
    """``{severity="critical",team="support"}`` — how amtool prints a matcher set."""
    return "{" + ",".join(str(m) for m in matchers) + "}"
