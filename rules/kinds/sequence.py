"""``sequence``: the ``steps`` happen in order, all within ``within`` of the first.

Per key, ``p[j]`` is the latest start time of a partial run that has completed steps 0..j (the
latest start gives the most room). An event is tried against the steps from last to first, so
one event advances a run by at most one step. A completed run fires and resets the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState, sweep_stale, union_names
from rules.models import SequenceRule
from rules.predicates import compile_match
from schemas.event import Event, format_ts


class SequenceEvaluator(EvaluatorBase):
    """Partial-run start times and their event ids per key."""

    takes_cooldowns = True

    rule: SequenceRule

    def __init__(self, rule: SequenceRule) -> None:
        self.rule = rule
        self.event_names = union_names(*(step.event_names for step in rule.steps))
        self._steps = [compile_match(step) for step in rule.steps]

    def on_event(self, state: RuleState, event: Event, cooldowns: Mapping[str, float] | None = None) -> list[Finding]:
        hits = [j for j, step in enumerate(self._steps) if step(event)]
        if not hits:
            return []
        key = self.key_of(event)
        if key is None:
            return []
        within = self.rule.within
        last_step = len(self._steps) - 1
        keyed: dict[str, Any] | None = state["k"].get(key)
        if keyed is None:
            sweep_stale(state["k"], lambda k: all(s is None or event.ts - s > within for s in k["p"]))
        runs: list[Any] = keyed["p"] if keyed else [None] * last_step
        ids: list[Any] = keyed["i"] if keyed else [None] * last_step
        for j in reversed(hits):
            if j == 0:
                runs[0] = event.ts
                ids[0] = [event.event_id]
                continue
            start = runs[j - 1]
            if start is None or event.ts - start > within:
                continue
            if j == last_step:
                state["k"].pop(key, None)
                if self.cooled(cooldowns, key, event.ts):
                    return []
                return [self._finding(event, key, start, [*ids[j - 1], event.event_id])]
            if runs[j] is None or start >= runs[j]:
                runs[j] = start
                ids[j] = [*ids[j - 1], event.event_id]
        for j, start in enumerate(runs):  # forget runs that can no longer finish in time
            if start is not None and event.ts - start > within:
                runs[j] = None
                ids[j] = None
        if all(start is None for start in runs):
            state["k"].pop(key, None)
        else:
            state["k"][key] = {"p": runs, "i": ids}
        return []

    def _finding(self, event: Event, key: str, start: float, event_ids: list[str]) -> Finding:
        rule = self.rule
        return make_finding(
            rule_id=rule.id,
            kind=rule.kind,
            account_id=event.account_id,
            key=key,
            fired_at=event.ts,
            episode=format_ts(start),
            window_start=start,
            window_end=event.ts,
            newest_event_ts=event.ts,
            evidence={
                "measure": "sequence",
                "value": len(self._steps),
                "threshold": rule.within,
                "baseline": None,
                "elapsed_seconds": round(event.ts - start, 3),
                "sample_event_ids": event_ids[-5:],
            },
        )
