"""Alertmanager-style matchers (``severity="critical"``, ``team=~"sup.*"``) over an alert's fields and labels.

A matcher names either an alert field (``severity``, ``rule_id``, ``kind``, ``account_id``,
``priority``, ``title``, ``user_id``), a dotted path into the account (``account.tier``,
``account.owner.email``), an explicit label (``labels.team``) or — as in Alertmanager, where
everything is a label — a bare label name (``team``). A missing value reads as the empty string, so
``team=""`` matches alerts without that label and ``team!="x"`` matches them too.
Regular expressions are RE2 syntax and anchored at both ends, as in Alertmanager (Go's regexp), and
match in linear time (:mod:`alerts.routing.regex`). ``alertname`` — Alertmanager's name of an alert —
reads the rule id, so routes written for Alertmanager keep working.

One entry of a ``matchers`` list may hold one matcher or, as in Alertmanager's own configs, a
comma-separated set in braces or without: ``'{owner="team-A", level!="critical"}'``
(:func:`parse_matchers`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from alerts.routing.regex import AnchoredRegex, compile_regex
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
    _regex: AnchoredRegex | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``severity="critical"`` / ``account.tier!=starter`` / ``rule_id=~"error-.*"``.

        Raises ``ValueError`` with a readable reason on bad syntax or a regular expression RE2 cannot
        compile (a look-ahead, a backreference…: :func:`alerts.routing.regex.compile_regex`).
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
                regex = compile_regex(value)
            except ValueError as exc:
                raise ValueError(f"regular expression in matcher {text!r} {exc}") from None
        return cls(m["name"], op, value, regex)

    def matches(self, alert: Alert) -> bool:
        """True when the alert's value for ``name`` passes this test."""
        actual = alert_value(alert, self.name)
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None  # set by parse for regex operators
        found = self._regex.fullmatch(actual)
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


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
