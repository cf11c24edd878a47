"""``score``: an engagement score 0–100 from weighted components, computed every ``every``.

Scores are computed at ticks — multiples of ``every`` from the origin in ``rules.windows``
(daily by default, at 00:00 UTC) — from the complete ``every``-long buckets of the ``window``
before the tick. A measure component scores its value over that window; a ``latest`` component
the last value seen of a property (or its ``default``; without one it is left out and the other
weights count). Points scale linearly from ``zero_at`` (0) to ``target`` (full), clamped.

It fires at a tick when the score is below ``below``, or ``drop_points`` or more under the
highest score of the ticks within the last ``window``. A key is ticked from its first matching
event until its measures have all left the window; activity restarts the ticks.

Warm-up: a key fires nothing (neither ``below`` nor ``drop_points``) until its window is fully
observed — the first tick at or after the start of its first matching event's ``every`` bucket
plus ``window``. Earlier ticks would score a window holding only a day or two of data, so every
brand-new account would score low; they are still computed and kept for ``drop_points``. The
key's first tick is kept in its state (``f``) and is not reset when a silent key becomes active
again. State written before ``f`` existed is read with the oldest tick of the kept score history
as the first tick (that history spans up to one window, so a key older than its window counts as
warm), or as new when there is none.
"""

from __future__ import annotations

import math
from typing import Any

from rules import windows
from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState, lower_bound, union_names
from rules.measures import Measure, compile_measure
from rules.models import ScoreComponent, ScoreRule
from rules.paths import Getter, compile_path
from rules.predicates import Matcher, compile_match, compile_where
from schemas.event import Event

_Component = tuple[ScoreComponent, Matcher, Measure | None, Getter | None]
_Candidate = tuple[str, Matcher | None, Measure | None, Getter | None]
"""A component as an event of a known name needs it: name, ``where`` test (None: always), measure, latest."""
MAX_CACHED_NAMES = 10_000


class ScoreEvaluator(EvaluatorBase):
    """Per key: one bucket list per measure component, the latest values, and recent scores."""

    rule: ScoreRule

    has_deadlines = True

    def __init__(self, rule: ScoreRule) -> None:
        self.rule = rule
        self._per_user = rule.group_by == "user"  # key_of, inlined in on_event
        self._filter = compile_match(rule.match) if rule.match is not None else None
        component_names = union_names(*(c.match.event_names for c in rule.components))
        self.event_names = component_names if rule.match is None else rule.match.event_names
        if rule.match is not None and rule.match.event_names is not None and component_names is not None:
            self.event_names = rule.match.event_names & component_names
        self._components: list[_Component] = [
            (
                component,
                compile_match(component.match),
                compile_measure(component.measure) if component.measure else None,
                compile_path(component.latest) if component.latest else None,
            )
            for component in rule.components
        ]
        self._spec = windows.BucketSpec.tumbling(rule.every, rule.window)
        self._by_name: dict[str, list[_Candidate]] = {}

    def _candidates(self, name: str) -> list[_Candidate]:
        """Components whose match can accept an event of this name, with only their ``where`` left
        to test (dispatch by event name, cached per name)."""
        found = self._by_name.get(name)
        if found is None:
            found = [
                (component.name, compile_where(component.match), measure, latest)
                for component, _, measure, latest in self._components
                if component.match.event_names is None or name in component.match.event_names
            ]
            if len(self._by_name) < MAX_CACHED_NAMES:
                self._by_name[name] = found
        return found

    def on_event(self, state: RuleState, event: Event) -> list[Finding]:
        candidates = self._by_name.get(event.event)
        if candidates is None:
            candidates = self._candidates(event.event)
        if not candidates or (self._filter is not None and not self._filter(event)):
            return []
        key = event.user_id if self._per_user else ""
        if key is None:
            return []
        spec = self._spec
        index = math.floor((event.ts - windows.ORIGIN) / spec.resolution)  # spec.index, inlined
        keyed: dict[str, Any] | None = state["k"].get(key)
        touched = False
        for name, where, measure, latest in candidates:
            if where is not None and not where(event):
                continue
            if keyed is None:
                keyed = {"b": {}, "l": {}, "h": [], "e": event.ts, "t": None, "f": spec.start(index + 1)}
                state["k"][key] = keyed
            if measure is not None:
                buckets = keyed["b"].get(name)
                if measure.kind == "count":  # windows.add(buckets, index, 1, "count"), inlined
                    if buckets is None:
                        buckets = keyed["b"][name] = []
                    if buckets and buckets[-1][0] == index:
                        buckets[-1][1] += 1
                    else:
                        buckets.append([index, 1])
                else:
                    contribution = measure.contribution(event)
                    if contribution is None:
                        continue
                    if buckets is None:
                        buckets = keyed["b"][name] = []
                    windows.add(buckets, index, contribution, measure.kind)
                if buckets[0][0] < index - spec.per_window:  # prune only when there is something to drop
                    windows.prune(buckets, index - spec.per_window)
                touched = True
            elif latest is not None:
                value = latest(event)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                keyed["l"][name] = float(value)
                touched = True
        if keyed is not None and touched:
            keyed["e"] = event.ts
            if keyed["t"] is None:
                tick = spec.start(index + 1)
                keyed["t"] = tick
                lower_bound(state, tick)
        return []

    def advance_to(self, state: RuleState, now: float, account_id: str) -> list[Finding]:
        bound = state.get("n")
        if bound is None or bound > now:
            return []
        findings: list[Finding] = []
        spec = self._spec
        for key in sorted(state["k"]):
            keyed = state["k"][key]
            while keyed["t"] is not None and keyed["t"] <= now:
                tick = keyed["t"]
                finding = self._tick(keyed, key, account_id, tick)
                if finding is not None:
                    findings.append(finding)
                # after the last event has left the window the score can no longer change
                last_useful = spec.start(spec.index(keyed["e"]) + spec.per_window + 1)
                keyed["t"] = tick + spec.resolution if tick < last_useful else None
        state["n"] = min((k["t"] for k in state["k"].values() if k["t"] is not None), default=None)
        findings.sort(key=lambda f: (f.fired_at, f.user_id or ""))
        return findings

    def _score(self, keyed: dict[str, Any], tick: float) -> tuple[float, dict[str, float]] | None:
        spec = self._spec
        newest = spec.index(tick) - 1
        oldest = newest - spec.per_window + 1
        weighted = 0.0
        weights = 0.0
        points: dict[str, float] = {}
        for component, _, measure, _ in self._components:
            if measure is not None:
                buckets = keyed["b"].get(component.name, [])
                windows.prune(buckets, oldest)
                value: float | None = windows.total(buckets, oldest, newest, measure.kind)
            else:
                value = keyed["l"].get(component.name, component.default)
            if value is None:
                continue
            fraction = (value - component.zero_at) / (component.target - component.zero_at)
            fraction = min(1.0, max(0.0, fraction))
            weighted += component.weight * fraction
            weights += component.weight
            points[component.name] = round(100 * fraction, 1)
        if not weights:
            return None
        return 100 * weighted / weights, points

    def _tick(self, keyed: dict[str, Any], key: str, account_id: str, tick: float) -> Finding | None:
        rule = self.rule
        computed = self._score(keyed, tick)
        if computed is None:
            return None
        score, points = computed
        history: list[list[float]] = keyed["h"]
        while history and history[0][0] <= tick - rule.window:
            del history[0]
        peak = max((s for _, s in history), default=None)
        first = keyed.get("f")
        if first is None:  # state from before the warm-up: the kept history says how old the key is
            first = keyed["f"] = history[0][0] if history else tick
        history.append([tick, score])
        if tick < first + rule.window - rule.every:  # window not yet fully observed: warm-up
            return None
        below = rule.below is not None and score < rule.below
        fell = rule.drop_points is not None and peak is not None and peak - score >= rule.drop_points
        if not (below or fell):
            return None
        return make_finding(
            rule_id=rule.id,
            kind=rule.kind,
            account_id=account_id,
            key=key,
            fired_at=tick,
            window_start=tick - rule.window,
            window_end=tick,
            newest_event_ts=keyed["e"],
            evidence={
                "measure": "score",
                "value": round(score, 1),
                "threshold": rule.below if below else rule.drop_points,
                "baseline": round(peak, 1) if peak is not None else None,
                "reason": "below" if below else "drop",
                "components": points,
                "sample_event_ids": [],
            },
        )
