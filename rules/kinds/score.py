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
key's first tick is kept in its state (``first_tick``) and is not reset when a silent key becomes
active again. State written before the first tick was kept is read with the oldest tick of the kept score history
as the first tick (that history spans up to one window, so a key older than its window counts as
warm), or as new when there is none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Self

from rules import sketch, windows
from rules.comparisons import lowered
from rules.findings import Finding, make_finding
from rules.kinds.base import MAX_USER_KEYS, BoundedState, EvaluatorBase, admits, union_names
from rules.measures import Measure, MeasureKind, compile_latest, compile_measure
from rules.models import ScoreComponent, ScoreRule
from rules.paths import Getter
from rules.predicates import Matcher, compile_match, compile_where
from schemas.event import Event

_Component = tuple[ScoreComponent, Matcher, Measure | None, Getter | None]
_COUNT = compile_measure("count")
"""The ``count`` measure, which ``on_event`` adds inline (a candidate's measure is this very object)."""
_Candidate = tuple[str, Matcher | None, Measure | None, Getter | None]
"""A component as an event of a known name needs it: name, ``where`` test (None: always), measure
(``_COUNT`` for any count), latest."""
_Handler = Callable[["ScoreState", Event], list[Finding]]
_Dispatch = tuple[Matcher | None, _Handler]
MAX_CACHED_NAMES = 10_000
_floor = math.floor
_second = itemgetter(1)
ORIGIN = windows.ORIGIN


@dataclass
class ScoreKey:
    """One key's inputs, recent scores and ticks."""

    last_event_ts: float
    """The key's newest event that touched a component (ticks stop once it has left the window)."""
    next_tick: float | None
    """None: the key is silent, no tick until its next event."""
    first_tick: float | None
    """The first tick of the key (warm-up); None in state written before it was kept."""
    buckets: dict[str, windows.Buckets] = field(default_factory=dict)
    """Measure component name → its buckets."""
    latest: dict[str, float] = field(default_factory=dict)
    """``latest`` component name → the last value seen."""
    history: list[list[float]] = field(default_factory=list)
    """``[tick, score]`` of the ticks within the last window, oldest first."""


@dataclass
class ScoreState(BoundedState):
    """Per key (``""`` or a user id); ``deadline``: the earliest next tick."""

    keys: dict[str, ScoreKey] = field(default_factory=dict)
    _none_silent: bool = field(default=False, init=False, repr=False, compare=False)
    """True once a full table held no silent key, until a key goes silent or is added: not stored (:func:`_admits`)."""

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        if version == 1:  # {"k": {key: {"b", "l", "h", "e", "t", "f"?}}, "n"?: bound}
            return cls(
                doc.get("n"),
                {k: ScoreKey(d["e"], d["t"], d.get("f"), d["b"], d["l"], d["h"]) for k, d in doc["k"].items()},
            )
        return cls(doc["deadline"], {key: ScoreKey(**keyed) for key, keyed in doc["keys"].items()})

    def to_version_1(self) -> dict[str, Any]:
        keys = {}
        for key, k in self.keys.items():
            keys[key] = {"b": k.buckets, "l": k.latest, "h": k.history, "e": k.last_event_ts, "t": k.next_tick}
            if k.first_tick is not None:
                keys[key]["f"] = k.first_tick
        return {"k": keys, "n": self.deadline}


def _silent(keyed: ScoreKey) -> bool:
    """A key with no tick to come (its events left the window): forgotten only to make room for a new user
    of a per-user rule at ``MAX_USER_KEYS`` (its ``latest`` values and warm-up start over if it comes back)."""
    return keyed.next_tick is None


def _admits(state: ScoreState, rule_id: str, account_id: str) -> bool:
    """``admits`` a new key, forgetting silent keys to make room: a table at ``MAX_USER_KEYS`` in which a scan
    found none is not scanned again until a key goes silent (``advance_to``) or is added. Without it every event
    of a user the rule does not track scanned the 2,000 keys (20,000 users: 105 µs an event instead of 2 µs).
    Not stored: a state read back scans once, as before, and admits the same users."""
    keys = state.keys
    if state._none_silent and len(keys) >= MAX_USER_KEYS:
        return admits(keys, rule_id, account_id)  # full, nothing to forget: counted and logged
    if admits(keys, rule_id, account_id, _silent):
        state._none_silent = False  # the new key is silent until its first tick is set
        return True
    state._none_silent = True  # the scan forgot every silent key, and the table is still full
    return False


def _nothing(state: ScoreState, event: Event) -> list[Finding]:
    return []


class ScoreEvaluator(EvaluatorBase[ScoreState]):
    """Per key: one bucket list per measure component, the latest values, and recent scores."""

    rule: ScoreRule

    has_deadlines = True
    state_type = ScoreState

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
                compile_latest(component.latest) if component.latest else None,
            )
            for component in rule.components
        ]
        self._spec = windows.BucketSpec.tumbling(rule.every, rule.window)
        self._scored: list[tuple[str, MeasureKind | None, float, float, float, float | None]] = [
            (c.name, measure.kind if measure else None, c.weight, c.zero_at, c.target - c.zero_at, c.default)
            for c, _, measure, _ in self._components
        ]
        """Per component, what ``_score`` reads at every tick (plain values, not the pydantic model's):
        name, measure kind (None: ``latest``), weight, zero_at, target − zero_at, default."""
        self._by_name: dict[str, _Dispatch] = {}

    def _candidates(self, name: str) -> _Dispatch:
        """What an event of this name does (dispatch by event name, cached per name): a test it
        must pass first (None: none), then what applies it (``_handler`` over the components
        whose match can accept it)."""
        found = self._by_name.get(name)
        if found is None:
            candidates = [
                (component.name, compile_where(component.match), measure, latest)
                for component, _, measure, latest in self._components
                if component.match.event_names is None or name in component.match.event_names
            ]
            gate = None
            if len(candidates) == 1 and candidates[0][1] is not None:  # one component: its test goes first
                gate = candidates[0][1]
                candidates = [(candidates[0][0], None, candidates[0][2], candidates[0][3])]
            steps = tuple(
                (component, where, _COUNT if measure is not None and measure.kind == "count" else measure, latest)
                for component, where, measure, latest in candidates
            )
            found = (gate, self._handler(steps))
            if len(self._by_name) < MAX_CACHED_NAMES:
                self._by_name[name] = found
        return found

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        return self._candidates(name)

    def on_event(self, state: ScoreState, event: Event) -> list[Finding]:
        dispatch = self._by_name.get(event.event)
        if dispatch is None:
            dispatch = self._candidates(event.event)
        gate, handler = dispatch
        if gate is not None and not gate(event):
            return []
        return handler(state, event)

    def _handler(self, candidates: tuple[_Candidate, ...]) -> _Handler:
        """``on_event`` for the events of one name that passed its test: a closure over that
        name's candidate components (built once per name)."""
        if not candidates:
            return _nothing
        match_filter = self._filter
        per_user = self._per_user
        spec = self._spec
        resolution = spec.resolution
        per_window = spec.per_window
        rule_id = self.rule.id
        precision = sketch.precision_for(per_window)
        if match_filter is None and len(candidates) == 1 and candidates[0][1:] == (None, _COUNT, None):
            return self._count_handler(candidates[0][0])

        def passed(state: ScoreState, event: Event) -> list[Finding]:
            if match_filter is not None and not match_filter(event):
                return []
            key = event.user_id if per_user else ""
            if key is None:
                return []
            ts = event.ts
            index = _floor((ts - ORIGIN) / resolution)  # spec.index, inlined
            keyed = state.keys.get(key)
            touched = False
            for name, where, measure, latest in candidates:
                if where is not None and not where(event):
                    continue
                if keyed is None:
                    if not _admits(state, rule_id, event.account_id):  # a user beyond MAX_USER_KEYS
                        return []
                    keyed = state.keys[key] = ScoreKey(ts, None, spec.start(index + 1))
                if measure is _COUNT:  # windows.add(buckets, index, 1, "count"), inlined
                    buckets = keyed.buckets.get(name)
                    if buckets is None:
                        buckets = keyed.buckets[name] = [[index, 1]]
                    else:
                        last = buckets[-1] if buckets else None
                        if last is not None and last[0] == index:
                            # the event that opened this bucket pruned to this index's window already
                            last[1] += 1
                            touched = True
                            continue
                        buckets.append([index, 1])
                elif measure is not None:
                    contribution = measure.contribution(event)
                    if contribution is None:
                        continue
                    buckets = keyed.buckets.get(name)
                    if buckets is None:
                        buckets = keyed.buckets[name] = []
                    if measure.kind == "distinct":
                        last = buckets[-1] if buckets else None
                        if last is not None and last[0] == index:
                            values = last[1]
                            # a value this bucket lists already changes nothing: the common case, without
                            # add_value's call (a user's second login of the day)
                            if type(values) is not list or contribution not in values:
                                windows.add_value(buckets, index, contribution, precision)
                            touched = True  # the event that opened this bucket pruned already
                            continue
                        windows.add_value(buckets, index, contribution, precision)
                    else:
                        windows.add(buckets, index, contribution, measure.kind)
                else:
                    value = latest(event) if latest is not None else None
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        continue
                    keyed.latest[name] = float(value)
                    touched = True
                    continue
                oldest = index - per_window
                if buckets[0][0] < oldest:  # prune only when there is something to drop
                    windows.prune(buckets, oldest)
                touched = True
            if touched and keyed is not None:
                keyed.last_event_ts = ts
                if keyed.next_tick is None:
                    tick = spec.start(index + 1)
                    keyed.next_tick = tick
                    state.lower_bound(tick)
            return []

        return passed

    def _count_handler(self, name: str) -> _Handler:
        """``_handler`` for a name whose one component counts every event of it (the common case):
        the same steps as the general closure, without the loop."""
        per_user = self._per_user
        spec = self._spec
        resolution = spec.resolution
        per_window = spec.per_window
        rule_id = self.rule.id

        def count(state: ScoreState, event: Event) -> list[Finding]:
            key = event.user_id if per_user else ""
            if key is None:
                return []
            ts = event.ts
            index = _floor((ts - ORIGIN) / resolution)  # spec.index, inlined
            keyed = state.keys.get(key)
            if keyed is None:
                if not _admits(state, rule_id, event.account_id):  # a user beyond MAX_USER_KEYS
                    return []
                keyed = state.keys[key] = ScoreKey(ts, None, spec.start(index + 1))
            buckets = keyed.buckets.get(name)
            if buckets is None:
                keyed.buckets[name] = [[index, 1]]
            else:
                last = buckets[-1] if buckets else None
                if last is not None and last[0] == index:
                    last[1] += 1  # the event that opened this bucket pruned to this index's window already
                else:
                    buckets.append([index, 1])
                    oldest = index - per_window
                    if buckets[0][0] < oldest:
                        windows.prune(buckets, oldest)
            keyed.last_event_ts = ts
            if keyed.next_tick is None:
                tick = spec.start(index + 1)
                keyed.next_tick = tick
                state.lower_bound(tick)
            return []

        return count

    def advance_to(self, state: ScoreState, now: float, account_id: str) -> list[Finding]:
        if not state.is_due(now):
            return []
        findings: list[Finding] = []
        spec = self._spec
        keys = state.keys
        for key in sorted(keys):
            keyed = keys[key]
            while keyed.next_tick is not None and keyed.next_tick <= now:
                tick = keyed.next_tick
                finding = self._tick(keyed, key, account_id, tick)
                if finding is not None:
                    findings.append(finding)
                # after the last event has left the window the score can no longer change
                last_useful = spec.start(spec.index(keyed.last_event_ts) + spec.per_window + 1)
                if tick < last_useful:
                    keyed.next_tick = tick + spec.resolution
                else:
                    keyed.next_tick = None
                    state._none_silent = False
        state.deadline = min((k.next_tick for k in keys.values() if k.next_tick is not None), default=None)
        findings.sort(key=lambda f: (f.fired_at, f.user_id or ""))
        return findings

    def _score(self, keyed: ScoreKey, tick: float) -> tuple[float, list[tuple[str, float]]] | None:
        """The score at ``tick`` and each scored component's fraction of its points (0–1), or None
        when no component has a value."""
        spec = self._spec
        newest = spec.index(tick) - 1
        oldest = newest - spec.per_window + 1
        weighted = 0.0
        weights = 0.0
        fractions: list[tuple[str, float]] = []
        for name, kind, weight, zero_at, span, default in self._scored:
            if kind is not None:
                buckets = keyed.buckets.get(name, [])
                if buckets and buckets[0][0] < oldest:  # prune only when there is something to drop
                    windows.prune(buckets, oldest)
                value: float | None = windows.total(buckets, oldest, newest, kind)
            else:
                value = keyed.latest.get(name, default)
            if value is None:
                continue
            fraction = (value - zero_at) / span
            fraction = min(1.0, max(0.0, fraction))
            weighted += weight * fraction
            weights += weight
            fractions.append((name, fraction))
        if not weights:
            return None
        return 100 * weighted / weights, fractions

    def _tick(self, keyed: ScoreKey, key: str, account_id: str, tick: float) -> Finding | None:
        rule = self.rule
        computed = self._score(keyed, tick)
        if computed is None:
            return None
        score, fractions = computed
        history = keyed.history
        while history and history[0][0] <= tick - rule.window:
            del history[0]
        peak = max(map(_second, history), default=None)
        first = keyed.first_tick
        if first is None:  # state from before the warm-up: the kept history says how old the key is
            first = keyed.first_tick = history[0][0] if history else tick
        history.append([tick, score])
        if tick < first + rule.window - rule.every:  # window not yet fully observed: warm-up
            return None
        below = rule.below is not None and score < lowered(rule.below)
        fell = rule.drop_points is not None and peak is not None and peak - score >= lowered(rule.drop_points)
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
            newest_event_ts=keyed.last_event_ts,
            evidence={
                "measure": "score",
                "value": round(score, 1),
                "threshold": rule.below if below else rule.drop_points,
                "baseline": round(peak, 1) if peak is not None else None,
                "reason": "below" if below else "drop",
                "components": {name: round(100 * fraction, 1) for name, fraction in fractions},  # only when it fires
                "sample_event_ids": [],
            },
        )
