"""``ratio``: matching / ``denominator`` events over ``window`` reach ``min_ratio``.

Numerator and denominator are counted independently by their own matches: to compute an error
rate over all calls, the denominator's match must include the error events too.
"""

from __future__ import annotations

from rules import windows
from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState, remember_sample, samples_since, sweep_stale, union_names
from rules.models import RatioRule
from rules.predicates import compile_match
from schemas.event import Event


class RatioEvaluator(EvaluatorBase):
    """Two bucketed counts per key; checked on every event that touches either."""

    rule: RatioRule

    def __init__(self, rule: RatioRule) -> None:
        self.rule = rule
        self.event_names = union_names(rule.match.event_names, rule.denominator.event_names)
        self._numerator = compile_match(rule.match)
        self._denominator = compile_match(rule.denominator)
        self._spec = windows.BucketSpec.sliding(rule.window)

    def on_event(self, state: RuleState, event: Event) -> list[Finding]:
        in_numerator = self._numerator(event)
        in_denominator = self._denominator(event)
        if not (in_numerator or in_denominator):
            return []
        key = self.key_of(event)
        if key is None:
            return []
        spec = self._spec
        index = spec.index(event.ts)
        oldest = index - spec.per_window + 1
        keyed = state["k"].get(key)
        if keyed is None:
            sweep_stale(
                state["k"], lambda k: max([b[-1][0] for b in (k["n"], k["d"]) if b], default=oldest - 1) < oldest
            )
            keyed = state["k"][key] = {"n": [], "d": [], "s": []}
        if in_numerator:
            windows.add(keyed["n"], index, 1, "count")
            remember_sample(keyed["s"], event)
        if in_denominator:
            windows.add(keyed["d"], index, 1, "count")
        windows.prune(keyed["n"], oldest)
        windows.prune(keyed["d"], oldest)
        numerator = windows.total(keyed["n"], oldest, index, "count")
        denominator = windows.total(keyed["d"], oldest, index, "count")
        rule = self.rule
        if denominator < rule.min_denominator or numerator / denominator < rule.min_ratio:
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
                    "measure": "ratio",
                    "value": round(numerator / denominator, 6),
                    "threshold": rule.min_ratio,
                    "baseline": None,
                    "numerator": numerator,
                    "denominator": denominator,
                    "sample_event_ids": samples_since(keyed["s"], start),
                },
            )
        ]
