"""``risk``: a learned model's calibrated churn risk for the account, scored at every UTC midnight.

Every event of the account (or those the optional ``match`` accepts) is folded into the feature
state of ``rules.risk.features`` — the same code ``preempt train`` replays history through — and
at each midnight tick the model (``rules.risk.model``, plain JSON) scores it. The rule fires when
the risk reaches ``threshold`` while armed and the account has ``warmup`` of history; it re-arms
when the risk falls below ``threshold − hysteresis``. The engine's cooldown applies on top.
Ticks stop ``CAP_DAYS`` after the account's last event (nothing can change after that) and
resume with its next event.

Evidence: the risk, the threshold, and the top contributing features as sentences a CSM reads
("active users down 62% against the last 8 weeks (3 this week vs 8 a week before)").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rules.findings import Finding, make_finding
from rules.kinds.base import EvaluatorBase, RuleState
from rules.models import RiskRule
from rules.predicates import compile_match
from rules.risk import features
from rules.risk.model import load_risk_model
from schemas.event import Event

DAY = features.DAY


class RiskEvaluator(EvaluatorBase):
    """State: ``x`` the feature state, ``n`` the next tick, ``a`` armed, ``p`` the latest risk."""

    rule: RiskRule

    has_deadlines = True

    def __init__(self, rule: RiskRule) -> None:
        self.rule = rule
        # the loader attaches the model read relative to the rule file; a rule built in code reads it here
        self._model = rule.loaded_model or load_risk_model(Path(rule.model))
        self._spec = self._model.spec
        self._digest = self._spec.digest
        self._names = self._model.doc.features
        self._filter = compile_match(rule.match) if rule.match is not None else None
        self.event_names = rule.match.event_names if rule.match is not None else None

    def new_state(self) -> RuleState:
        return {"x": features.new_state(self._spec), "n": None, "a": True, "p": None}

    def _current(self, state: RuleState) -> None:
        """A state kept under another model's feature spec starts afresh (its layout differs)."""
        if state["x"].get("d") != self._digest:
            state.update(self.new_state())

    def on_event(self, state: RuleState, event: Event) -> list[Finding]:
        if self._filter is not None and not self._filter(event):
            return []
        self._current(state)
        features.observe(self._spec, state["x"], event)
        if state["n"] is None:
            state["n"] = (math.floor(event.ts / DAY) + 1) * DAY
        return []

    def advance_to(self, state: RuleState, now: float, account_id: str) -> list[Finding]:
        tick = state.get("n")
        if tick is None or tick > now:
            return []
        self._current(state)
        findings: list[Finding] = []
        last = state["x"]["l"]
        while tick is not None and tick <= now:
            finding = self._tick(state, tick, account_id)
            if finding is not None:
                findings.append(finding)
            tick = tick + DAY
            if last is None or tick > last + features.CAP_DAYS * DAY:
                tick = None
        state["n"] = tick
        return findings

    def _tick(self, state: RuleState, tick: float, account_id: str) -> Finding | None:
        rule = self.rule
        explained = features.compute(self._spec, state["x"], tick)
        score = self._model.score(features.values(explained))
        risk = score.risk
        state["p"] = round(risk, 6)
        first = state["x"]["f"]
        warm = first is not None and tick - first >= rule.warmup
        if risk < rule.threshold:
            if risk < rule.threshold - rule.hysteresis:
                state["a"] = True
            return None
        if not (state["a"] and warm):
            return None
        state["a"] = False
        return make_finding(
            rule_id=rule.id,
            kind=rule.kind,
            account_id=account_id,
            key="",
            fired_at=tick,
            window_start=tick - features.KEEP_DAYS * DAY,
            window_end=tick,
            newest_event_ts=state["x"]["l"],
            evidence=self._evidence(risk, score.contributions, explained),
        )

    def _evidence(self, risk: float, contributions: list[float], explained: list[features.Explained]) -> dict[str, Any]:
        ranked = sorted(
            (i for i, c in enumerate(contributions) if c > 0), key=lambda i: (-contributions[i], self._names[i])
        )[: self.rule.top_features]
        return {
            "measure": "risk",
            "value": round(risk, 4),
            "threshold": self.rule.threshold,
            "baseline": None,
            "reasons": [features.sentence(self._names[i], explained[i]) for i in ranked],
            "contributions": {self._names[i]: round(contributions[i], 3) for i in ranked},
            "model_trained_at": self._model.doc.training.trained_at,
            "sample_event_ids": [],
        }
