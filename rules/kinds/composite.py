"""``composite``: every rule in ``all_of`` fired for the same account within ``within``.

It listens to the other rules' findings for the account (after their cooldowns), not to events:
it fires when the last missing rule fires, at that rule's event time, and then starts over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState
from rules.models import CompositeRule
from schemas.event import format_ts


@dataclass
class CompositeState(RuleState):
    """Rule id → the latest time it fired for the account, within ``within``."""

    fired: dict[str, float] = field(default_factory=dict)

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        return cls(doc["f"] if version == 1 else doc["fired"])  # version 1: {"f": {rule_id: at}}

    def to_version_1(self) -> dict[str, Any]:
        return {"f": self.fired}


class CompositeEvaluator(EvaluatorBase[CompositeState]):
    """The latest firing time of each referenced rule, within ``within``."""

    state_type = CompositeState

    rule: CompositeRule

    def __init__(self, rule: CompositeRule) -> None:
        self.rule = rule
        self.event_names = frozenset()
        self._refs = frozenset(rule.all_of)

    def on_event(self, state: CompositeState, event: object) -> list[Finding]:
        return []

    def on_finding(self, state: CompositeState, finding: Finding) -> list[Finding]:
        if finding.rule_id not in self._refs:
            return []
        fired = state.fired
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
                # without a cooldown two completions can fall on one instant: the finding that completed
                # each joins its episode to keep their alert ids apart (as an event's id does for ``any``)
                episode=f"{format_ts(now)}/{finding.alert_id}" if rule.effective_cooldown == 0 else None,
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
