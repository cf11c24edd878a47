"""``absence``: a ``start`` event is not followed by an ``expect`` event within ``within``.

While a start is pending, further starts are ignored (the first one sets the deadline). An
``expect`` at or after the start clears it; an ``expect`` with no pending start does nothing.
The deadline is ``start + within``; an expect stamped exactly at it is too late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rules.findings import Finding
from rules.kinds.base import EvaluatorBase, PendingEvents, union_names
from rules.models import AbsenceRule
from rules.predicates import Matcher, compile_match
from schemas.durations import format_duration
from schemas.event import Event, format_ts


@dataclass
class AbsenceState(PendingEvents):
    """Per key with a pending start, ``events``: the start; ``deadline``: the earliest follow-up due."""


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

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        starts = self.rule.start.event_names
        if starts is not None and name not in starts:  # an event of this name can only be a follow-up
            return None, self._follow_up
        return None, self.on_event

    def _follow_up(self, state: AbsenceState, event: Event) -> list[Finding]:
        """``on_event`` for an event that cannot be a start: nothing to do unless a start is pending."""
        if not state.events:
            return []
        return self.on_event(state, event)

    def on_event(self, state: AbsenceState, event: Event) -> list[Finding]:
        key = self.key_of(event)
        if key is None:
            return []
        pending = state.events
        if key in pending and self._expect(event):
            del pending[key]
            return []
        if key not in pending and self._start(event):
            pending[key] = (event.ts, event.event_id)
            state.lower_bound(event.ts + self.rule.within)
        return []

    def advance_to(self, state: AbsenceState, now: float, account_id: str) -> list[Finding]:
        if not state.is_due(now):
            return []
        within = self.rule.within
        findings = []
        for deadline, key, start, start_id in state.pop_due(within, now):
            evidence = {
                "measure": "missing follow-up",
                "value": format_duration(within),
                "threshold": within,
                "baseline": None,
                "started_at": format_ts(start),
                "sample_event_ids": [start_id],
            }
            findings.append(self.deadline_finding(account_id, key, deadline, start, evidence, format_ts(start)))
        return findings
