"""``spike``: the measure in the current ``window`` is ≥ ``factor`` × the window before it, and ≥ ``min``.

Both windows slide together (bucketed, see ``rules.windows``); an empty previous window counts
as 0, so a burst from nothing fires as soon as it reaches ``min``.
"""

from __future__ import annotations

from rules import windows
from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState, remember_sample, samples_since, sweep_stale
from rules.measures import compile_measure
from rules.models import SpikeRule
from rules.predicates import compile_match
from schemas.event import Event


class SpikeEvaluator(EvaluatorBase):
    """Bucketed values over two windows per key; compared on every contributing event."""

    rule: SpikeRule

    def __init__(self, rule: SpikeRule) -> None:
        self.rule = rule
        self.event_names = rule.match.event_names
        self._match = compile_match(rule.match)
        self._measure = compile_measure(rule.measure)
        self._spec = windows.BucketSpec.sliding(rule.window)

    def on_event(self, state: RuleState, event: Event) -> list[Finding]:
        if not self._match(event):
            return []
        key = self.key_of(event)
        contribution = self._measure.contribution(event)
        if key is None or contribution is None:
            return []
        spec = self._spec
        kind = self._measure.kind
        index = spec.index(event.ts)
        current_oldest = index - spec.per_window + 1
        previous_oldest = current_oldest - spec.per_window
        keyed = state["k"].get(key)
        if keyed is None:
            sweep_stale(state["k"], lambda k: not k["b"] or k["b"][-1][0] < previous_oldest)
            keyed = state["k"][key] = {"b": [], "s": []}
        windows.add(keyed["b"], index, contribution, kind)
        windows.prune(keyed["b"], previous_oldest)
        remember_sample(keyed["s"], event)
        current = windows.total(keyed["b"], current_oldest, index, kind)
        previous = windows.total(keyed["b"], previous_oldest, current_oldest - 1, kind)
        rule = self.rule
        if current < rule.min or current < rule.factor * previous:
            return []
        start = spec.start(current_oldest)
        return [
            make_finding(
                rule_id=rule.id,
                kind=rule.kind,
                account_id=event.account_id,
                key=key,
                fired_at=event.ts,
                window_start=start,
                window_end=event.ts,
                newest_event_ts=event.ts,
                evidence={
                    "measure": rule.measure,
                    "value": current,
                    "threshold": rule.factor * previous if previous else rule.min,
                    "baseline": previous,
                    "factor": round(current / previous, 3) if previous else None,
                    "sample_event_ids": samples_since(keyed["s"], start),
                },
            )
        ]
