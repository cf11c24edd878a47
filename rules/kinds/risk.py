"""``risk``: a learned model's calibrated churn risk for the account, scored at every UTC midnight.

Every event of the account (or those the optional ``match`` accepts) is folded into the feature
state of ``rules.risk.features`` — the same code ``preempt train`` replays history through — and
at each midnight tick the model (``rules.risk.model``, plain JSON) scores it. The rule fires when
the risk reaches ``threshold`` while armed and the account has ``warmup`` of history; it re-arms
when the risk falls below ``threshold − hysteresis``. The engine's cooldown applies on top: a crossing within
the cooldown of the rule's last alert is held back, still armed, and fires at the first tick after the
cooldown while the risk is at or above ``threshold`` (the engine hands ``advance_to`` its cooldown table);
before, the cooldown dropped it and disarmed the rule, so an account that stayed at risk never alerted again.
Ticks stop ``CAP_DAYS`` after the account's last event (nothing can change after that) and
resume with its next event.

An account that has churned is not alerted: after one of the rule's ``outcome_events`` naming a churn
(default ``Subscription Cancelled``, the name ``preempt evaluate`` and ``preempt simulate`` use) a crossing
is counted (``after_churn``; the worker's ``preempt_alerts_suppressed_total{reason="after_churn"}``) and
disarms the rule instead of alerting, until an event of another outcome (a renewal: the account is a
customer again) re-arms it. Its silence after leaving read as rising risk: it alerted the CSM weeks after
the customer had gone. The engine applies an account's events in time order and fires the ticks due
before each event first, so a tick before the churn still alerts, the same in the stream and the backtest.

A model with account features (feature spec version 3) reads the account's record when it scores
a tick: the engine hands the kind its ``accounts`` lookup (``bind_accounts``) — the accounts
topic in the worker, the accounts file in a backtest. Nothing of the record is kept in the state.

Evidence: the risk, the threshold, and the top contributing features as sentences a CSM reads
("active users down 62% against the last 8 weeks (3 this week vs 8 a week before)").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from rules.findings import Finding, make_finding
from rules.kinds.base import BoundedState, EvaluatorBase, user_not_tracked
from rules.models import RiskRule
from rules.predicates import compile_match
from rules.risk import features, reasons
from rules.risk.model import load_risk_model
from schemas.account import Account
from schemas.event import Event
from schemas.observed import Anomaly

DAY = features.DAY


@dataclass
class RiskState(BoundedState):
    """The account's features and alerting state; ``deadline``: the next midnight tick (exact)."""

    features: dict[str, Any] = field(default_factory=dict)
    """The feature state of ``rules.risk.features`` (its layout is that module's)."""
    armed: bool = True
    """Whether crossing the threshold fires (re-armed below threshold − hysteresis)."""
    risk: float | None = None
    """The risk at the latest tick."""
    churned: bool = False
    """Whether the account's latest outcome event was a churn (no alert until another outcome)."""

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        # features kept before the user table get one (rules.risk.features.upgrade); states written before
        # ``churned`` existed have none: not churned
        if version == 1:  # {"x": features, "n": next tick, "a": armed, "p": latest risk, "c"?: churned}
            return cls(doc["n"], features.upgrade(doc["x"]), doc["a"], doc["p"], doc.get("c", False))
        return cls(
            doc["deadline"], features.upgrade(doc["features"]), doc["armed"], doc["risk"], doc.get("churned", False)
        )

    def to_version_1(self) -> dict[str, Any]:
        doc = {"x": features.downgrade(self.features), "n": self.deadline, "a": self.armed, "p": self.risk}
        if self.churned:
            doc["c"] = True
        return doc


class RiskEvaluator(EvaluatorBase[RiskState]):
    """Per account: the feature state, the next tick, whether it is armed, and the latest risk."""

    rule: RiskRule

    has_deadlines = True
    takes_deadline_cooldowns = True
    state_type = RiskState

    def __init__(self, rule: RiskRule) -> None:
        self.rule = rule
        # the loader attaches the model read relative to the rule file; a rule built in code reads it here
        self._model = rule.loaded_model or load_risk_model(Path(rule.model))
        self._spec = self._model.spec
        self._digest = features.state_digest(self._spec)
        self._names = self._model.doc.features
        self._subjects = self._spec.subjects
        self._filter = compile_match(rule.match) if rule.match is not None else None
        self._outcomes = rule.outcome_events
        names = rule.match.event_names if rule.match is not None else None
        # the outcome events reach the kind whatever its match (they are not folded in unless it matches them)
        self.event_names = None if names is None else frozenset(names) | frozenset(self._outcomes)
        self.after_churn = 0
        """Crossings not alerted because the account had churned (the engine sums them for the metric)."""
        self._accounts: Callable[[str], Account | None] | None = None
        self._learned = self._spec.event_names
        self.events_seen = 0
        """Events folded into the features since this evaluator was built (after ``match``)."""
        self.learned_events_seen = 0
        """Of those, events whose name the model learned from: none after many means a model of other events
        (another product's, or names renamed since) whose per-event features all read as absent."""
        self.restarted = 0
        """Account states kept under another model's feature spec and started afresh (the worker counts and logs
        the increase: a retrained model with another vocabulary restarts every account's features)."""

    def bind_accounts(self, lookup: Callable[[str], Account | None]) -> None:
        """Where the account records come from (the engine calls it once); unbound, every account is unknown."""
        self._accounts = lookup

    def _facts(self, account_id: str) -> features.AccountFacts:
        if not self._spec.uses_accounts or self._accounts is None:
            return features.UNKNOWN_ACCOUNT
        return features.AccountFacts.of(self._accounts(account_id))

    def new_state(self) -> RiskState:
        return RiskState(features=features.new_state(self._spec))

    def _current(self, state: RiskState) -> None:
        """A state kept under another model's feature spec starts afresh (its layout differs)."""
        if state.features.get("d") != self._digest:
            if state.features:
                self.restarted += 1
            fresh = self.new_state()
            state.features, state.deadline, state.armed, state.risk = (
                fresh.features,
                fresh.deadline,
                fresh.armed,
                fresh.risk,
            )

    def on_event(self, state: RiskState, event: Event) -> list[Finding]:
        outcome = self._outcomes.get(event.event)
        if outcome is not None:
            churned = outcome == "churned"
            if state.churned and not churned:
                state.armed = True  # a customer again: its next crossing alerts
            state.churned = churned
        if self._filter is not None and not self._filter(event):
            return []
        self._current(state)
        self.events_seen += 1
        if event.event in self._learned:
            self.learned_events_seen += 1
        if features.observe(self._spec, state.features, event):  # the day's users became a sketch: counted, logged
            user_not_tracked(self.rule.id, event.account_id, Anomaly.RISK_DAY_SKETCHED)
        if state.deadline is None:
            state.deadline = (math.floor(event.ts / DAY) + 1) * DAY
        return []

    def advance_to(
        self, state: RiskState, now: float, account_id: str, cooldowns: Mapping[str, float] | None = None
    ) -> list[Finding]:
        tick = state.deadline
        if tick is None or tick > now:
            return []
        self._current(state)
        findings: list[Finding] = []
        last = state.features["l"]
        facts = self._facts(account_id)
        # the engine's cooldown table (None: called without an engine, nothing is held back); the findings of this
        # call count too: the engine records them once it has them all
        fired = None if cooldowns is None else cooldowns.get("")
        while tick is not None and tick <= now:
            finding = self._tick(state, tick, account_id, facts, fired if cooldowns is not None else None)
            if finding is not None:
                findings.append(finding)
                fired = tick
            tick = tick + DAY
            if last is None or tick > last + features.CAP_DAYS * DAY:
                tick = None
        state.deadline = tick
        return findings

    def _tick(
        self,
        state: RiskState,
        tick: float,
        account_id: str,
        facts: features.AccountFacts,
        fired: float | None = None,
    ) -> Finding | None:
        rule = self.rule
        explained = features.compute(self._spec, state.features, tick, facts)
        score = self._model.score(features.values(explained))
        risk = score.risk
        previous, state.risk = state.risk, round(risk, 6)
        first = state.features["f"]
        warm = first is not None and tick - first >= rule.warmup
        if risk < rule.threshold:
            if risk < rule.threshold - rule.hysteresis:
                state.armed = True
            return None
        if not (state.armed and warm):
            return None
        cooldown = rule.effective_cooldown
        if fired is not None and cooldown > 0 and tick - fired < cooldown:
            # within the cooldown of the last alert: held back, still armed, so the rule fires at the first tick
            # after the cooldown while the risk stays at or above the threshold (counted once, as it crosses)
            if previous is None or previous < rule.threshold:
                self.suppressed += 1
            return None
        state.armed = False
        if state.churned:  # the customer has left: counted, disarmed as if alerted (re-armed by a renewal)
            self.after_churn += 1
            return None
        return make_finding(
            rule_id=rule.id,
            kind=rule.kind,
            account_id=account_id,
            key="",
            fired_at=tick,
            window_start=tick - features.KEEP_DAYS * DAY,
            window_end=tick,
            newest_event_ts=state.features["l"],
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
            "reasons": [reasons.sentence(self._names[i], explained[i], self._subjects[i]) for i in ranked],
            "contributions": {self._names[i]: round(contributions[i], 3) for i in ranked},
            "model_trained_at": self._model.doc.training.trained_at,
            "sample_event_ids": [],
        }
