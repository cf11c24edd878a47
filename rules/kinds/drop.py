"""``drop``: at the end of each ``window``, the window's measure is ``drop_pct`` below the baseline.

Windows tumble from the origin in ``rules.windows`` (weekly windows run Monday to Monday UTC).
The baseline is the mean of the previous ``baseline_windows`` windows, counting empty ones as 0,
and is used only once that many windows have closed since the key was first seen (no alerts on
brand-new accounts) and only when it is at least ``min_baseline``. The window's end is a
deadline: the clock fires it, so a key that went completely silent still alerts. A key whose
whole history is zero is forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from rules import windows
from rules.comparisons import raised
from rules.findings import Finding, make_finding
from rules.kinds.base import BoundedState, EvaluatorBase, admits, counted_events
from rules.measures import compile_measure
from rules.models import DropRule
from rules.predicates import Matcher, compile_where
from schemas.event import Event, format_ts


@dataclass
class DropKey:
    """One key: the open window and the values of the closed ones."""

    window: int
    """The bucket index of the open window."""
    value: Any
    """The open window's measure so far: a number, or the distinct values seen (a list; past
    ``DISTINCT_VALUES_PER_BUCKET`` of them a sketch, ``rules.sketch``)."""
    history: list[float] = field(default_factory=list)
    """The values of the last closed windows, oldest first (at most ``baseline_windows``)."""
    closed: int = 0
    """Windows closed since the key was first seen."""
    last_event_id: str | None = None
    """The newest event counted in the open window (the finding's sample)."""


@dataclass
class DropState(BoundedState):
    """Per key (``""`` or a user id); ``deadline``: the earliest end of an open window."""

    keys: dict[str, DropKey] = field(default_factory=dict)

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        if version == 1:  # {"k": {key: {"w": window, "v": value, "h": history, "c": closed, "e"?: id}}, "n"?: bound}
            return cls(
                doc.get("n"),
                {k: DropKey(d["w"], d["v"], d["h"], d["c"], d.get("e")) for k, d in doc["k"].items()},
            )
        return cls(doc["deadline"], {key: DropKey(**keyed) for key, keyed in doc["keys"].items()})

    def to_version_1(self) -> dict[str, Any]:
        keys = {}
        for key, k in self.keys.items():
            keys[key] = {"w": k.window, "v": k.value, "h": k.history, "c": k.closed}
            if k.last_event_id is not None:
                keys[key]["e"] = k.last_event_id
        return {"k": keys, "n": self.deadline}


class DropEvaluator(EvaluatorBase[DropState]):
    """Per key: the open window's value and the closed windows' values (at most ``baseline_windows``)."""

    rule: DropRule

    has_deadlines = True
    state_type = DropState

    def __init__(self, rule: DropRule) -> None:
        self.rule = rule
        self.event_names = rule.match.event_names
        # the engine routes only events named by the match (``event_names``): the ``where`` is what is left
        self._where = compile_where(rule.match)
        self._measure = compile_measure(rule.measure)
        self._spec = windows.BucketSpec.tumbling(rule.window, rule.window)
        self._per_user = rule.group_by == "user"
        self._distinct = self._measure.kind == "distinct"
        self._counted = counted_events(rule.match, rule.window)  # in the evidence: what was counted, over what

    def _empty(self) -> Any:
        return [] if self._measure.kind == "distinct" else 0

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        return self._where, self._matched

    def on_event(self, state: DropState, event: Event) -> list[Finding]:
        if self._where is not None and not self._where(event):
            return []
        return self._matched(state, event)

    def _matched(self, state: DropState, event: Event) -> list[Finding]:
        """``on_event`` for an event that passed the ``where``."""
        key = event.user_id if self._per_user else ""  # key_of, inlined
        if key is None:  # a per-user rule ignores events without a user (before the measure: not a skipped value)
            return []
        contribution = self._measure.contribution(event)
        if contribution is None:
            return []
        keyed = state.keys.get(key)
        if keyed is None:
            if not admits(state.keys, self.rule.id, event.account_id):  # a user beyond MAX_USER_KEYS
                return []
            index = self._spec.index(event.ts)
            keyed = state.keys[key] = DropKey(index, self._empty())
            state.lower_bound(self._spec.start(index + 1))
        # advance_to(event.ts) already closed every window ending at or before the event
        if self._distinct:
            keyed.value = windows.add_distinct(keyed.value, contribution)
        else:
            keyed.value += contribution
        keyed.last_event_id = event.event_id
        return []

    def advance_to(self, state: DropState, now: float, account_id: str) -> list[Finding]:
        if not state.is_due(now):
            return []
        findings: list[Finding] = []
        keys = state.keys
        spec = self._spec
        for key in sorted(keys):
            keyed = keys[key]
            while spec.start(keyed.window + 1) <= now:
                finding = self._close(keyed, key, account_id)
                if finding is not None:
                    findings.append(finding)
                if not any(keyed.history):
                    del keys[key]
                    break
        state.deadline = min((spec.start(k.window + 1) for k in keys.values()), default=None)
        findings.sort(key=lambda f: (f.fired_at, f.user_id or ""))
        return findings

    def _close(self, keyed: DropKey, key: str, account_id: str) -> Finding | None:
        rule = self.rule
        spec = self._spec
        start, end = spec.start(keyed.window), spec.start(keyed.window + 1)
        value = windows.reduce_value(keyed.value)
        history = keyed.history
        finding = None
        if keyed.closed >= rule.baseline_windows:
            baseline = sum(history) / len(history)
            limit = baseline * (1 - rule.drop_pct / 100)
            if baseline > 0 and baseline >= rule.min_baseline and value <= raised(limit):
                finding = make_finding(
                    rule_id=rule.id,
                    kind=rule.kind,
                    account_id=account_id,
                    key=key,
                    fired_at=end,
                    episode=format_ts(start),
                    window_start=start,
                    window_end=end,
                    newest_event_ts=None,
                    evidence={
                        "measure": rule.measure,
                        "value": value,
                        "threshold": round(limit, 6),
                        "baseline": round(baseline, 6),
                        "drop_pct": round(100 * (1 - value / baseline), 1),
                        **self._counted,
                        "sample_event_ids": [keyed.last_event_id] if keyed.last_event_id else [],
                    },
                )
        history.append(value)
        if len(history) > rule.baseline_windows:
            del history[0]
        keyed.closed += 1
        keyed.window += 1
        keyed.value = self._empty()
        keyed.last_event_id = None
        return finding
