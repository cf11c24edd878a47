"""``inactivity``: a key that was active has had no matching event for ``after``.

The deadline is ``last matching event + after``. It fires once per silence (the key's state is
dropped when it fires); the next matching event makes the key active again. An event stamped
exactly at the deadline comes too late: deadlines at t fire before events at t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from rules.durations import format_duration
from rules.findings import Finding, make_finding
from rules.kinds.base import BoundedState, EvaluatorBase
from rules.models import InactivityRule
from rules.predicates import compile_where
from schemas.event import Event, format_ts


@dataclass
class InactivityState(BoundedState):
    """Per active key: ``(time, event id)`` of its last matching event; ``deadline``: the earliest silence."""

    last_seen: dict[str, tuple[float, str]] = field(default_factory=dict)

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        if version == 1:  # {"k": {key: [ts, event_id]}, "n"?: bound}
            return cls(doc.get("n"), {key: (ts, event_id) for key, (ts, event_id) in doc["k"].items()})
        return cls(doc["deadline"], {key: (ts, event_id) for key, (ts, event_id) in doc["last_seen"].items()})

    def to_version_1(self) -> dict[str, Any]:
        return {"k": {key: list(last) for key, last in self.last_seen.items()}, "n": self.deadline}


class InactivityEvaluator(EvaluatorBase[InactivityState]):
    """Remembers the last matching event per key; the clock fires the silence."""

    rule: InactivityRule

    has_deadlines = True
    state_type = InactivityState

    def __init__(self, rule: InactivityRule) -> None:
        self.rule = rule
        self.event_names = rule.match.event_names
        # the engine routes only events named by the match (``event_names``): the ``where`` is what is left
        self._where = compile_where(rule.match)

    def on_event(self, state: InactivityState, event: Event) -> list[Finding]:
        if self._where is not None and not self._where(event):
            return []
        key = self.key_of(event)
        if key is None:
            return []
        state.last_seen[key] = (event.ts, event.event_id)
        state.lower_bound(event.ts + self.rule.after)
        return []

    def advance_to(self, state: InactivityState, now: float, account_id: str) -> list[Finding]:
        bound = state.deadline
        if bound is None or bound > now:
            return []
        after = self.rule.after
        keys = state.last_seen
        due = sorted((last + after, key) for key, (last, _) in keys.items() if last + after <= now)
        findings = []
        for deadline, key in due:
            last, last_id = keys.pop(key)
            findings.append(
                make_finding(
                    rule_id=self.rule.id,
                    kind=self.rule.kind,
                    account_id=account_id,
                    key=key,
                    fired_at=deadline,
                    window_start=last,
                    window_end=deadline,
                    newest_event_ts=last,
                    evidence={
                        "measure": "silence",
                        "value": format_duration(after),
                        "threshold": after,
                        "baseline": None,
                        "last_seen": format_ts(last),
                        "sample_event_ids": [last_id],
                    },
                )
            )
        state.deadline = min((last + after for last, _ in keys.values()), default=None)
        return findings
