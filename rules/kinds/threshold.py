"""``threshold``: the measure over the last ``window`` reaches ``min``."""

from __future__ import annotations

from rules import windows
from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState, remember_sample, samples_since, sweep_stale
from rules.measures import compile_measure
from rules.models import ThresholdRule
from rules.predicates import compile_match
from schemas.event import Event


class ThresholdEvaluator(EvaluatorBase):
    """Keeps bucketed measure values per key; checks the window on every contributing event."""

    rule: ThresholdRule

    def __init__(self, rule: ThresholdRule) -> None:
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
        index = spec.index(event.ts)
        oldest = index - spec.per_window + 1
        keyed = state["k"].get(key)
        if keyed is None:
            sweep_stale(state["k"], lambda k: not k["b"] or k["b"][-1][0] < oldest)
            keyed = state["k"][key] = {"b": [], "s": []}
        windows.add(keyed["b"], index, contribution, self._measure.kind)
        windows.prune(keyed["b"], oldest)
        remember_sample(keyed["s"], event)
        value = windows.total(keyed["b"], oldest, index, self._measure.kind)
        rule = self.rule
        if value < rule.min:
            return []
        start = spec.start(oldest)
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
                    "value": value,
                    "threshold": rule.min,
                    "baseline": None,
                    "sample_event_ids": samples_since(keyed["s"], start),
                },
            )
        ]
