"""The shared bookkeeping of the kinds that keep a bucketed measure per key over sliding windows
(``threshold`` over one window, ``spike`` over the current and the previous one)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from rules import sketch, windows
from rules.comparisons import lowered
from rules.findings import Finding
from rules.kinds.base import (
    EvaluatorBase,
    RuleState,
    Samples,
    admits,
    counted_events,
    remember_sample,
    sweep_older,
)
from rules.measures import compile_measure
from rules.predicates import Matcher, compile_where
from schemas.event import Event


@dataclass
class SlidingKey:
    """One key's measure over the kept windows."""

    buckets: windows.Buckets = field(default_factory=list)
    samples: Samples = field(default_factory=list)


@dataclass
class SlidingState(RuleState):
    """Per key (``""`` or a user id): its buckets and samples."""

    keys: dict[str, SlidingKey] = field(default_factory=dict)
    _fresh_from: float = field(default=-math.inf, init=False, repr=False, compare=False)
    """Kept between sweeps, not stored (``rules.kinds.base.sweep_older``)."""

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        if version == 1:  # {"k": {key: {"b": buckets, "s": samples}}}
            return cls({key: SlidingKey(keyed["b"], keyed["s"]) for key, keyed in doc["k"].items()})
        return cls({key: SlidingKey(**keyed) for key, keyed in doc["keys"].items()})

    def to_version_1(self) -> dict[str, Any]:
        return {"k": {key: {"b": keyed.buckets, "s": keyed.samples} for key, keyed in self.keys.items()}}


def _newest_bucket(keyed: SlidingKey) -> float:
    """A key's newest bucket index (a key without buckets: older than any)."""
    return keyed.buckets[-1][0] if keyed.buckets else -math.inf


class SlidingMeasureEvaluator(EvaluatorBase[SlidingState]):
    """Matches an event, adds its measure contribution to the key's buckets and prunes them."""

    state_type = SlidingState

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self._per_user = rule.group_by == "user"  # key_of, inlined in on_event
        self.event_names = rule.match.event_names
        # the engine routes only events named by the match (``event_names``): the ``where`` is what is left
        self._where = compile_where(rule.match)
        self._measure = compile_measure(rule.measure)
        self._spec = windows.BucketSpec.sliding(rule.window)
        self._min_reached = lowered(rule.min)  # "reaches min" up to float rounding (rules.comparisons)
        self._counted = counted_events(rule.match, rule.window)  # in the evidence: what was counted, over what

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        return self._where, self._matched

    def on_event(
        self, state: SlidingState, event: Event, cooldowns: Mapping[str, float] | None = None
    ) -> list[Finding]:
        if self._where is not None and not self._where(event):
            return []
        return self._matched(state, event, cooldowns)

    def _matched(self, state: SlidingState, event: Event, cooldowns: Mapping[str, float] | None) -> list[Finding]:
        """``on_event`` for an event that passed the ``where`` (each kind's own check)."""
        raise NotImplementedError

    def _record(self, state: SlidingState, event: Event, windows_kept: int) -> tuple[str, SlidingKey, int] | None:
        """Add ``event`` (which passed the ``where``) to its key's buckets, keeping the last
        ``windows_kept`` windows.

        Returns the key, its state and the event's bucket index, or None when the event does not count.
        """
        key = event.user_id if self._per_user else ""
        if key is None:  # a per-user rule ignores events without a user (before the measure: not a skipped value)
            return None
        contribution = self._measure.contribution(event)
        if contribution is None:
            return None
        spec = self._spec
        index = spec.index(event.ts)
        oldest_kept = index - windows_kept * spec.per_window + 1
        keys = state.keys
        keyed = keys.get(key)
        if keyed is None:
            sweep_older(state, _newest_bucket, lambda at: at < oldest_kept, index)
            if not admits(keys, self.rule.id, event.account_id):  # a user beyond MAX_USER_KEYS
                return None
            keyed = keys[key] = SlidingKey()
        if self._measure.kind == "distinct":  # pruned first: the listed values counted are the window's
            windows.prune(keyed.buckets, oldest_kept)
            windows.add_value(keyed.buckets, index, contribution, sketch.precision_for(windows_kept * spec.per_window))
        else:
            windows.add(keyed.buckets, index, contribution, self._measure.kind)
            windows.prune(keyed.buckets, oldest_kept)
        remember_sample(keyed.samples, event)
        return key, keyed, index
