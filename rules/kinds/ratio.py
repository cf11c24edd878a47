"""``ratio``: matching / ``denominator`` events over ``window`` reach ``min_ratio``.

Numerator and denominator are counted independently by their own matches: to compute an error
rate over all calls, the denominator's match must include the error events too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from rules import windows
from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState, remember_sample, samples_since, sweep_stale, union_names
from rules.models import RatioRule
from rules.predicates import compile_match
from schemas.event import Event


class RatioEvaluator(EvaluatorBase):
    """Two bucketed counts per key; checked on every event that touches either."""

    takes_cooldowns = True

    rule: RatioRule

    def __init__(self, rule: RatioRule) -> None:
        self.rule = rule
        self.event_names = union_names(rule.match.event_names, rule.denominator.event_names)
        self._numerator = compile_match(rule.match)
        self._denominator = compile_match(rule.denominator)
        self._spec = windows.BucketSpec.sliding(rule.window)

    def on_event(self, state: RuleState, event: Event, cooldowns: Mapping[str, float] | None = None) -> list[Finding]:
        in_numerator = self._numerator(event)
        in_denominator = self._denominator(event)
        if not (in_numerator or in_denominator):
            return []
        key = self.key_of(event)
        if key is None:
            return []
        spec = self._spec
        index = math.floor((event.ts - windows.ORIGIN) / spec.resolution)  # spec.index, inlined
        oldest = index - spec.per_window + 1
        keyed = state["k"].get(key)
        if keyed is None:
            sweep_stale(
                state["k"], lambda k: max([b[-1][0] for b in (k["n"], k["d"]) if b], default=oldest - 1) < oldest
            )
            keyed = state["k"][key] = {"n": [], "d": [], "s": [], "t": [0, 0]}
        # Running totals of the kept buckets: the window is exactly the kept buckets (events come
        # in time order and the prune below drops those before it), so no re-summing per event.
        totals: list[int] | None = keyed.get("t")
        if totals is None:  # state written before running totals were kept
            totals = keyed["t"] = [windows.count_all(keyed["n"]), windows.count_all(keyed["d"])]
        numerators: windows.Buckets = keyed["n"]
        denominators: windows.Buckets = keyed["d"]
        if in_numerator:  # windows.add(numerators, index, 1, "count"), inlined
            if numerators and numerators[-1][0] == index:
                numerators[-1][1] += 1
            else:
                numerators.append([index, 1])
            totals[0] += 1
            remember_sample(keyed["s"], event)
        if in_denominator:
            if denominators and denominators[-1][0] == index:
                denominators[-1][1] += 1
            else:
                denominators.append([index, 1])
            totals[1] += 1
        if numerators and numerators[0][0] < oldest:
            totals[0] -= windows.prune_counted(numerators, oldest)
        if denominators and denominators[0][0] < oldest:
            totals[1] -= windows.prune_counted(denominators, oldest)
        numerator = float(totals[0])
        denominator = float(totals[1])
        rule = self.rule
        if (
            denominator < rule.min_denominator
            or numerator / denominator < rule.min_ratio
            or self.cooled(cooldowns, key, event.ts)
        ):
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
