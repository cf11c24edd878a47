"""``sequence``: the ``steps`` happen in order, all within ``within`` of the first.

Per key, ``starts[j]`` is the latest start time of a partial run that has completed steps 0..j
(the latest start gives the most room), and ``event_ids[j]`` that run's event ids. An event is
tried against the steps from last to first, so one event advances a run by at most one step.
A completed run fires and resets the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from rules.findings import Finding
from rules.kinds.base import EvaluatorBase, RuleState, admits, sweep_older, union_names, written_names
from rules.models import SequenceRule
from rules.predicates import compile_match
from schemas.event import Event, format_ts


@dataclass
class SequenceRuns:
    """One key's partial runs, one slot per step but the last (None: no run has reached it)."""

    starts: list[float | None]
    event_ids: list[list[str] | None]


@dataclass
class SequenceState(RuleState):
    """Per key with a partial run (``""`` or a user id): its runs."""

    keys: dict[str, SequenceRuns] = field(default_factory=dict)
    _fresh_from: float = field(default=-math.inf, init=False, repr=False, compare=False)
    """Kept between sweeps, not stored (``rules.kinds.base.sweep_older``)."""

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        if version == 1:  # {"k": {key: {"p": starts, "i": event ids}}}
            return cls({key: SequenceRuns(keyed["p"], keyed["i"]) for key, keyed in doc["k"].items()})
        return cls({key: SequenceRuns(**keyed) for key, keyed in doc["keys"].items()})

    def to_version_1(self) -> dict[str, Any]:
        return {"k": {key: {"p": runs.starts, "i": runs.event_ids} for key, runs in self.keys.items()}}


def _newest_start(runs: SequenceRuns) -> float:
    """A key's newest partial-run start (none: older than any)."""
    return max([start for start in runs.starts if start is not None], default=-math.inf)


class SequenceEvaluator(EvaluatorBase[SequenceState]):
    """Partial-run start times and their event ids per key."""

    takes_cooldowns = True
    state_type = SequenceState

    rule: SequenceRule

    def __init__(self, rule: SequenceRule) -> None:
        self.rule = rule
        self.event_names = union_names(*(step.event_names for step in rule.steps))
        self._steps = [compile_match(step) for step in rule.steps]
        # each step's event names as written (None: any event), for the sentence a rule without a summary
        # gets ("'Order Placed', then 'Refund Issued' within 40 minutes")
        self._step_names = [list(n) if (n := written_names(step)) is not None else None for step in rule.steps]

    def on_event(
        self, state: SequenceState, event: Event, cooldowns: Mapping[str, float] | None = None
    ) -> list[Finding]:
        hits = [j for j, step in enumerate(self._steps) if step(event)]
        if not hits:
            return []
        key = self.key_of(event)
        if key is None:
            return []
        within = self.rule.within
        last_step = len(self._steps) - 1
        keys = state.keys
        keyed = keys.get(key)
        if keyed is None:
            ts = event.ts
            sweep_older(state, _newest_start, lambda at: ts - at > within, ts)
            # a user beyond MAX_USER_KEYS (a new key cannot finish a run: only a first step can start one)
            if not admits(keys, self.rule.id, event.account_id):
                return []
        runs: list[Any] = keyed.starts if keyed else [None] * last_step
        ids: list[Any] = keyed.event_ids if keyed else [None] * last_step
        for j in reversed(hits):
            if j == 0:
                runs[0] = event.ts
                ids[0] = [event.event_id]
                continue
            start = runs[j - 1]
            if start is None or event.ts - start > within:
                continue
            if j == last_step:
                keys.pop(key, None)
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
            keys.pop(key, None)
        elif keyed is None:
            keys[key] = SequenceRuns(runs, ids)
        return []

    def _finding(self, event: Event, key: str, start: float, event_ids: list[str]) -> Finding:
        evidence = {
            "measure": "sequence",
            "value": len(self._steps),
            "threshold": self.rule.within,
            "baseline": None,
            "elapsed_seconds": round(event.ts - start, 3),
            "sample_event_ids": event_ids[-5:],
            "steps": self._step_names,
        }
        return self.event_finding(event, key, start, evidence, episode=format_ts(start))
