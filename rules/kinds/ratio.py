"""``ratio``: matching / ``denominator`` events over ``window`` reach ``min_ratio``.

Numerator and denominator are counted independently by their own matches: to compute an error
rate over all calls, the denominator's match must include the error events too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from rules import windows
from rules.findings import MAX_SAMPLE_EVENT_IDS, Finding
from rules.kinds.base import (
    EvaluatorBase,
    RuleState,
    Samples,
    admits,
    counted_events,
    samples_since,
    sweep_older,
    union_names,
    written_names,
)
from rules.models import Match, RatioRule
from rules.predicates import Matcher, compile_where
from schemas.event import Event

MAX_CACHED_NAMES = 10_000
_Handler = Callable[..., list[Finding]]
_floor = math.floor
ORIGIN = windows.ORIGIN


def _test_for(match: Match, name: str) -> tuple[Matcher | None, bool]:
    """Whether an event of this name matches: its ``where`` left to run, or (None) the constant that follows."""
    names = match.event_names
    if names is not None and name not in names:
        return None, False
    where = compile_where(match)
    return where, True


@dataclass
class RatioKey:
    """One key's two counts over the window, and their running totals (the sums of the kept buckets)."""

    numerators: windows.Buckets = field(default_factory=list)
    denominators: windows.Buckets = field(default_factory=list)
    samples: Samples = field(default_factory=list)
    """Numerator events only."""
    numerator_total: int = 0
    denominator_total: int = 0


@dataclass
class RatioState(RuleState):
    """Per key (``""`` or a user id): its counts."""

    keys: dict[str, RatioKey] = field(default_factory=dict)
    _fresh_from: float = field(default=-math.inf, init=False, repr=False, compare=False)
    """Kept between sweeps, not stored (``rules.kinds.base.sweep_older``)."""

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        if version == 1:  # {"k": {key: {"n": buckets, "d": buckets, "s": samples, "t": [n, d]}}}
            return cls({key: _ratio_key_v1(keyed) for key, keyed in doc["k"].items()})
        return cls({key: RatioKey(**keyed) for key, keyed in doc["keys"].items()})

    def to_version_1(self) -> dict[str, Any]:
        return {
            "k": {
                key: {
                    "n": k.numerators,
                    "d": k.denominators,
                    "s": k.samples,
                    "t": [k.numerator_total, k.denominator_total],
                }
                for key, k in self.keys.items()
            }
        }


def _ratio_key_v1(keyed: dict[str, Any]) -> RatioKey:
    numerators, denominators = keyed["n"], keyed["d"]
    totals = keyed.get("t")
    if totals is None:  # written before running totals were kept: the kept buckets are the window
        totals = [windows.count_all(numerators), windows.count_all(denominators)]
    return RatioKey(numerators, denominators, keyed["s"], totals[0], totals[1])


def _newest_bucket(keyed: RatioKey) -> float:
    """A key's newest bucket index, of its numerators or denominators (none: older than any)."""
    return max([b[-1][0] for b in (keyed.numerators, keyed.denominators) if b], default=-math.inf)


class RatioEvaluator(EvaluatorBase[RatioState]):
    """Two bucketed counts per key; checked on every event that touches either."""

    takes_cooldowns = True
    state_type = RatioState

    rule: RatioRule

    def __init__(self, rule: RatioRule) -> None:
        self.rule = rule
        self._per_user = rule.group_by == "user"  # key_of, inlined in on_event
        self.event_names = union_names(rule.match.event_names, rule.denominator.event_names)
        self._spec = windows.BucketSpec.sliding(rule.window)
        self._by_name: dict[str, _Handler] = {}
        # in the evidence: what was counted over what, for the sentence (rules.kinds.base.counted_events)
        of = written_names(rule.denominator)
        self._counted = {
            **counted_events(rule.match, rule.window),
            "denominator_events": list(of) if of is not None else None,
        }

    def _handler(self, name: str) -> _Handler:
        """``on_event`` for events of this name: a closure over the name's numerator and
        denominator tests (dispatch by name, built once per name)."""
        found = self._by_name.get(name)
        if found is not None:
            return found
        numerator_where, numerator_always = _test_for(self.rule.match, name)
        denominator_where, denominator_always = _test_for(self.rule.denominator, name)
        per_user = self._per_user
        resolution = self._spec.resolution
        per_window = self._spec.per_window
        min_denominator = self.rule.min_denominator
        min_ratio = self.rule.min_ratio
        fire = self._fire
        rule_id = self.rule.id

        def on_name(state: RatioState, event: Event, cooldowns: Mapping[str, float] | None = None) -> list[Finding]:
            in_numerator = numerator_always if numerator_where is None else numerator_where(event)
            in_denominator = denominator_always if denominator_where is None else denominator_where(event)
            if not (in_numerator or in_denominator):
                return []
            key = event.user_id if per_user else ""
            if key is None:
                return []
            index = _floor((event.ts - ORIGIN) / resolution)  # spec.index, inlined
            oldest = index - per_window + 1
            keys = state.keys
            keyed = keys.get(key)
            if keyed is None:
                sweep_older(state, _newest_bucket, lambda at: at < oldest, index)
                if not admits(keys, rule_id, event.account_id):  # a user beyond MAX_USER_KEYS
                    return []
                keyed = keys[key] = RatioKey()
            # Running totals of the kept buckets: the window is exactly the kept buckets (events come
            # in time order and the prune below drops those before it), so no re-summing per event.
            numerators = keyed.numerators
            if in_numerator:  # windows.add(numerators, index, 1, "count"), inlined
                if numerators and numerators[-1][0] == index:
                    numerators[-1][1] += 1
                else:
                    numerators.append([index, 1])
                keyed.numerator_total += 1
                samples = keyed.samples  # remember_sample, inlined
                samples.append([event.ts, event.event_id])
                if len(samples) > MAX_SAMPLE_EVENT_IDS:
                    del samples[0]
            denominators = keyed.denominators
            if in_denominator:
                if denominators and denominators[-1][0] == index:
                    denominators[-1][1] += 1
                else:
                    denominators.append([index, 1])
                keyed.denominator_total += 1
            # windows.prune_counted, inlined: usually one bucket goes, if any
            while numerators and numerators[0][0] < oldest:
                keyed.numerator_total -= numerators.pop(0)[1]
            while denominators and denominators[0][0] < oldest:
                keyed.denominator_total -= denominators.pop(0)[1]
            denominator = keyed.denominator_total
            if denominator < min_denominator:  # an exact integer: as a float it compares the same
                return []
            if keyed.numerator_total / denominator < min_ratio:  # _fire's first test, without the call
                return []
            return fire(keyed, key, event, oldest, cooldowns)

        if len(self._by_name) < MAX_CACHED_NAMES:
            self._by_name[name] = on_name
        return on_name

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        return None, self._handler(name)

    def on_event(self, state: RatioState, event: Event, cooldowns: Mapping[str, float] | None = None) -> list[Finding]:
        handler = self._by_name.get(event.event)
        if handler is None:
            handler = self._handler(event.event)
        return handler(state, event, cooldowns)

    def _fire(
        self, keyed: RatioKey, key: str, event: Event, oldest: int, cooldowns: Mapping[str, float] | None
    ) -> list[Finding]:
        """The finding of an event after which the key's window has enough denominator events: none
        when the ratio is under ``min_ratio`` or the cooldown would drop it."""
        numerator = float(keyed.numerator_total)
        denominator = float(keyed.denominator_total)
        rule = self.rule
        if numerator / denominator < rule.min_ratio or self.cooled(cooldowns, key, event.ts):
            return []
        start = self._spec.start(oldest)
        return [
            self.event_finding(
                event,
                key,
                start,
                {
                    "measure": "ratio",
                    "value": round(numerator / denominator, 6),
                    "threshold": rule.min_ratio,
                    "baseline": None,
                    "numerator": numerator,
                    "denominator": denominator,
                    **self._counted,
                    "sample_event_ids": samples_since(keyed.samples, start),
                },
            )
        ]
