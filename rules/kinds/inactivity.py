"""``inactivity``: a key that was active has had no matching event for ``after``.

The deadline is ``last matching event + after``. It fires once per silence (the key's state is
dropped when it fires); the next matching event makes the key active again. An event stamped
exactly at the deadline comes too late: deadlines at t fire before events at t.
"""

from __future__ import annotations

from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState, lower_bound
from rules.models import InactivityRule
from rules.predicates import compile_where
from schemas.durations import format_duration
from schemas.event import Event, format_ts


class InactivityEvaluator(EvaluatorBase):
    """Remembers the last matching event per key; the clock fires the silence."""

    rule: InactivityRule

    has_deadlines = True

    def __init__(self, rule: InactivityRule) -> None:
        self.rule = rule
        self.event_names = rule.match.event_names
        # the engine routes only events named by the match (``event_names``): the ``where`` is what is left
        self._where = compile_where(rule.match)

    def on_event(self, state: RuleState, event: Event) -> list[Finding]:
        if self._where is not None and not self._where(event):
            return []
        key = self.key_of(event)
        if key is None:
            return []
        state["k"][key] = [event.ts, event.event_id]
        lower_bound(state, event.ts + self.rule.after)
        return []

    def advance_to(self, state: RuleState, now: float, account_id: str) -> list[Finding]:
        bound = state.get("n")
        if bound is None or bound > now:
            return []
        after = self.rule.after
        keys = state["k"]
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
        state["n"] = min((last + after for last, _ in keys.values()), default=None)
        return findings
