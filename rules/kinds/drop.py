"""``drop``: at the end of each ``window``, the window's measure is ``drop_pct`` below the baseline.

Windows tumble from the origin in ``rules.windows`` (weekly windows run Monday to Monday UTC).
The baseline is the mean of the previous ``baseline_windows`` windows, counting empty ones as 0,
and is used only once that many windows have closed since the key was first seen (no alerts on
brand-new accounts) and only when it is at least ``min_baseline``. The window's end is a
deadline: the clock fires it, so a key that went completely silent still alerts. A key whose
whole history is zero is forgotten.
"""

from __future__ import annotations

from typing import Any

from rules import windows
from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState, lower_bound
from rules.measures import DISTINCT_VALUES_PER_BUCKET, compile_measure
from rules.models import DropRule
from rules.predicates import compile_where
from schemas.event import Event, format_ts


class DropEvaluator(EvaluatorBase):
    """Per key: the open window's value and the closed windows' values (at most ``baseline_windows``)."""

    rule: DropRule

    has_deadlines = True

    def __init__(self, rule: DropRule) -> None:
        self.rule = rule
        self.event_names = rule.match.event_names
        # the engine routes only events named by the match (``event_names``): the ``where`` is what is left
        self._where = compile_where(rule.match)
        self._measure = compile_measure(rule.measure)
        self._spec = windows.BucketSpec.tumbling(rule.window, rule.window)

    def _empty(self) -> Any:
        return [] if self._measure.kind == "distinct" else 0

    def on_event(self, state: RuleState, event: Event) -> list[Finding]:
        if self._where is not None and not self._where(event):
            return []
        key = self.key_of(event)
        contribution = self._measure.contribution(event)
        if key is None or contribution is None:
            return []
        index = self._spec.index(event.ts)
        keyed = state["k"].get(key)
        if keyed is None:
            keyed = {"w": index, "v": self._empty(), "h": [], "c": 0}
            state["k"][key] = keyed
            lower_bound(state, self._spec.start(index + 1))
        # advance_to(event.ts) already closed every window ending at or before the event
        if self._measure.kind == "distinct":
            values: list[str] = keyed["v"]
            if contribution not in values and len(values) < DISTINCT_VALUES_PER_BUCKET:
                values.append(contribution)
        else:
            keyed["v"] += contribution
        keyed["e"] = event.event_id
        return []

    def advance_to(self, state: RuleState, now: float, account_id: str) -> list[Finding]:
        bound = state.get("n")
        if bound is None or bound > now:
            return []
        findings: list[Finding] = []
        keys = state["k"]
        spec = self._spec
        for key in sorted(keys):
            keyed = keys[key]
            while spec.start(keyed["w"] + 1) <= now:
                finding = self._close(keyed, key, account_id)
                if finding is not None:
                    findings.append(finding)
                if not any(keyed["h"]):
                    del keys[key]
                    break
        state["n"] = min((spec.start(k["w"] + 1) for k in keys.values()), default=None)
        findings.sort(key=lambda f: (f.fired_at, f.user_id or ""))
        return findings

    def _close(self, keyed: dict[str, Any], key: str, account_id: str) -> Finding | None:
        rule = self.rule
        spec = self._spec
        start, end = spec.start(keyed["w"]), spec.start(keyed["w"] + 1)
        value = windows.reduce_value(keyed["v"])
        history: list[float] = keyed["h"]
        finding = None
        if keyed["c"] >= rule.baseline_windows:
            baseline = sum(history) / len(history)
            limit = baseline * (1 - rule.drop_pct / 100)
            if baseline > 0 and baseline >= rule.min_baseline and value <= limit:
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
                        "sample_event_ids": [keyed["e"]] if keyed.get("e") else [],
                    },
                )
        history.append(value)
        if len(history) > rule.baseline_windows:
            del history[0]
        keyed["c"] += 1
        keyed["w"] += 1
        keyed["v"] = self._empty()
        keyed.pop("e", None)
        return finding
