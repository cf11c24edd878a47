"""``absence``: a ``start`` event is not followed by an ``expect`` event within ``within``.

While a start is pending, further starts are ignored (the first one sets the deadline). An
``expect`` at or after the start clears it; an ``expect`` with no pending start does nothing.
The deadline is ``start + within``; an expect stamped exactly at it is too late.
"""

from __future__ import annotations

from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState, lower_bound, union_names
from rules.models import AbsenceRule
from rules.predicates import compile_match
from schemas.durations import format_duration
from schemas.event import Event, format_ts


class AbsenceEvaluator(EvaluatorBase):
    """One pending start per key; the clock fires the missing follow-up."""

    rule: AbsenceRule

    has_deadlines = True

    def __init__(self, rule: AbsenceRule) -> None:
        self.rule = rule
        self.event_names = union_names(rule.start.event_names, rule.expect.event_names)
        self._start = compile_match(rule.start)
        self._expect = compile_match(rule.expect)

    def on_event(self, state: RuleState, event: Event) -> list[Finding]:
        key = self.key_of(event)
        if key is None:
            return []
        pending = state["k"]
        if key in pending and self._expect(event):
            del pending[key]
            return []
        if key not in pending and self._start(event):
            pending[key] = [event.ts, event.event_id]
            lower_bound(state, event.ts + self.rule.within)
        return []

    def advance_to(self, state: RuleState, now: float, account_id: str) -> list[Finding]:
        bound = state.get("n")
        if bound is None or bound > now:
            return []
        within = self.rule.within
        pending = state["k"]
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
        state["n"] = min((start + within for start, _ in pending.values()), default=None)
        return findings
