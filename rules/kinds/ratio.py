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
from rules.models import Match, RatioRule
from rules.predicates import Matcher, compile_where
from schemas.event import Event

MAX_CACHED_NAMES = 10_000
Test = Matcher | bool
"""Whether an event of a known name matches: a constant, or the ``where`` check left to run."""


def _test_for(match: Match, name: str) -> Test:
    names = match.event_names
    if names is not None and name not in names:
        return False
    where = compile_where(match)
    return True if where is None else where


class RatioEvaluator(EvaluatorBase):
    """Two bucketed counts per key; checked on every event that touches either."""

    takes_cooldowns = True

    rule: RatioRule

    def __init__(self, rule: RatioRule) -> None:
        self.rule = rule
        self._per_user = rule.group_by == "user"  # key_of, inlined in on_event
        self.event_names = union_names(rule.match.event_names, rule.denominator.event_names)
        self._spec = windows.BucketSpec.sliding(rule.window)
        self._by_name: dict[str, tuple[Test, Test]] = {}

    def _tests(self, name: str) -> tuple[Test, Test]:
        """Numerator and denominator tests for events of this name (dispatch by name, cached)."""
        found = self._by_name.get(name)
        if found is None:
            found = (_test_for(self.rule.match, name), _test_for(self.rule.denominator, name))
            if len(self._by_name) < MAX_CACHED_NAMES:
                self._by_name[name] = found
        return found

    def on_event(self, state: RuleState, event: Event, cooldowns: Mapping[str, float] | None = None) -> list[Finding]:
        numerator_test, denominator_test = self._by_name.get(event.event) or self._tests(event.event)
        in_numerator = numerator_test if type(numerator_test) is bool else numerator_test(event)
        in_denominator = denominator_test if type(denominator_test) is bool else denominator_test(event)
        if not (in_numerator or in_denominator):
            return []
        key = event.user_id if self._per_user else ""
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
