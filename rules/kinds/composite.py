"""``composite``: every rule in ``all_of`` fired for the same account within ``within``.

It listens to the other rules' findings for the account (after their cooldowns), not to events:
it fires when the last missing rule fires, at that rule's event time, and then starts over.
"""

from __future__ import annotations

from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState
from rules.models import CompositeRule
from schemas.event import format_ts


class CompositeEvaluator(EvaluatorBase):
    """The latest firing time of each referenced rule, within ``within``."""

    rule: CompositeRule

    def __init__(self, rule: CompositeRule) -> None:
        self.rule = rule
        self.event_names = frozenset()
        self._refs = frozenset(rule.all_of)

    def new_state(self) -> RuleState:
        return {"f": {}}

    def on_event(self, state: RuleState, event: object) -> list[Finding]:
        return []

    def on_finding(self, state: RuleState, finding: Finding) -> list[Finding]:
        if finding.rule_id not in self._refs:
            return []
        fired: dict[str, float] = state["f"]
        now = finding.fired_at
        fired[finding.rule_id] = max(now, fired.get(finding.rule_id, now))
        within = self.rule.within
        for rule_id in [r for r, at in fired.items() if now - at > within]:
            del fired[rule_id]
        if len(fired) < len(self._refs):
            return []
        first = min(fired.values())
        rules_fired = {rule_id: format_ts(at) for rule_id, at in sorted(fired.items())}
        fired.clear()
        rule = self.rule
        return [
            make_finding(
                rule_id=rule.id,
                kind=rule.kind,
                account_id=finding.account_id,
                key="",
                fired_at=now,
                window_start=first,
                window_end=now,
                newest_event_ts=finding.newest_event_ts,
                evidence={
                    "measure": "all_of",
                    "value": len(rules_fired),
                    "threshold": len(self._refs),
                    "baseline": None,
                    "rules": rules_fired,
                    "sample_event_ids": [],
                },
            )
        ]
