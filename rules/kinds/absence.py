"""``absence``: a ``start`` event is not followed by an ``expect`` event within ``within``.

While a start is pending, further starts are ignored (the first one sets the deadline). An
``expect`` at or after the start clears it; an ``expect`` with no pending start does nothing.
The deadline is ``start + within``; an expect stamped exactly at it is too late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from rules.durations import format_duration
from rules.findings import Finding, make_finding
from rules.kinds.base import BoundedState, EvaluatorBase, union_names
from rules.models import AbsenceRule
from rules.predicates import compile_match
from schemas.event import Event, format_ts


@dataclass
class AbsenceState(BoundedState):
    """Per key with a pending start: ``(time, event id)`` of the start; ``deadline``: the earliest one due."""

    pending: dict[str, tuple[float, str]] = field(default_factory=dict)

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        if version == 1:  # {"k": {key: [start_ts, start_event_id]}, "n"?: bound}
            return cls(doc.get("n"), {key: (ts, event_id) for key, (ts, event_id) in doc["k"].items()})
        return cls(doc["deadline"], {key: (ts, event_id) for key, (ts, event_id) in doc["pending"].items()})

    def to_version_1(self) -> dict[str, Any]:
        return {"k": {key: list(start) for key, start in self.pending.items()}, "n": self.deadline}


class AbsenceEvaluator(EvaluatorBase[AbsenceState]):
    """One pending start per key; the clock fires the missing follow-up."""

    rule: AbsenceRule

    has_deadlines = True
    state_type = AbsenceState

    def __init__(self, rule: AbsenceRule) -> None:
        self.rule = rule
        self.event_names = union_names(rule.start.event_names, rule.expect.event_names)
        self._start = compile_match(rule.start)
        self._expect = compile_match(rule.expect)

    def on_event(self, state: AbsenceState, event: Event) -> list[Finding]:
        key = self.key_of(event)
        if key is None:
            return []
        pending = state.pending
        if key in pending and self._expect(event):
            del pending[key]
            return []
        if key not in pending and self._start(event):
            pending[key] = (event.ts, event.event_id)
            state.lower_bound(event.ts + self.rule.within)
        return []

    def advance_to(self, state: AbsenceState, now: float, account_id: str) -> list[Finding]:
        bound = state.deadline
        if bound is None or bound > now:
            return []
        within = self.rule.within
        pending = state.pending
        due = sorted((start + within, key) for key, (start, _) in pending.items() if start + within <= now)
        findings = []
        for deadline, key in due:
            start, start_id = pending.pop(key)
            findings.append(
                make_finding(
                    rule_id=self.rule.id,
                    kind=self.rule.kind,
                    account_id=account_id,
                    key=key,
                    fired_at=deadline,
                    episode=format_ts(start),
                    window_start=start,
                    window_end=deadline,
                    newest_event_ts=start,
                    evidence={
                        "measure": "missing follow-up",
                        "value": format_duration(within),
                        "threshold": within,
                        "baseline": None,
                        "started_at": format_ts(start),
                        "sample_event_ids": [start_id],
                    },
                )
            )
        state.deadline = min((start + within for start, _ in pending.values()), default=None)
        return findings
