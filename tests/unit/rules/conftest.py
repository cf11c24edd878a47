"""Factories for rule tests: rules from a few fields, engines, and a replay helper."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from rules.engine import EventOutcome, Finding, RuleEngine
from rules.loader import RuleSet, parse_rule
from rules.models import RuleBase
from rules.state import AccountState
from schemas.event import Event

GOLDEN_RISK_MODEL = Path(__file__).parent / "golden" / "risk-model.json"
MONDAY = 1_795_392_000.0  # 2026-11-23T00:00:00Z, a Monday: windows and buckets align to it
MIN = 60.0
HOUR = 3600.0
DAY = 86400.0

_DEFAULTS: dict[str, dict[str, Any]] = {
    "threshold": {"window": "10m", "min": 3, "match": {"event": "Error"}},
    "ratio": {
        "window": "10m",
        "min_ratio": 0.5,
        "min_denominator": 4,
        "match": {"event": "Call", "where": {"properties.status": {"gte": 500}}},
        "denominator": {"event": "Call"},
    },
    "spike": {"window": "10m", "factor": 3, "min": 3, "match": {"event": "Error"}},
    "drop": {"window": "1d", "baseline_windows": 2, "drop_pct": 50, "min_baseline": 2, "match": {"event": "Login"}},
    "inactivity": {"after": "1h", "match": {}},
    "absence": {"start": {"event": "Started"}, "expect": {"event": "Completed"}, "within": "1h"},
    "sequence": {"steps": [{"event": "Payment Failed"}, {"event": "Cancel Page"}], "within": "1h"},
    "any": {"match": {"event": "NPS", "where": {"properties.score": {"lte": 6}}}},
    "score": {
        "window": "2d",
        "every": "1d",
        "below": 50,
        "components": [{"name": "activity", "weight": 1, "match": {"event": "Login"}, "measure": "count", "target": 4}],
    },
    "composite": {"all_of": ["a", "b"], "within": "1h"},
    "risk": {"model": str(GOLDEN_RISK_MODEL), "threshold": 0.5},
}


@pytest.fixture
def make_rule() -> Callable[..., RuleBase]:
    """Factory: ``make_rule("threshold", min=5)`` — a valid rule of the kind with overrides."""

    def factory(kind: str, **overrides: Any) -> RuleBase:
        data: dict[str, Any] = {
            "id": f"{kind}-rule",
            "kind": kind,
            "title": f"{kind} for {{{{ account.name }}}}",
            "severity": "high",
            "priority": 1,
        }
        data.update(_DEFAULTS[kind])
        data.update(overrides)
        return parse_rule(data)

    return factory


@pytest.fixture
def make_engine() -> Callable[..., RuleEngine]:
    """Factory: ``make_engine(rule, ..., dedup_horizon=…)``."""

    def factory(*rules: RuleBase, **kwargs: Any) -> RuleEngine:
        return RuleEngine(RuleSet(tuple(rules)), **kwargs)

    return factory


@dataclass
class Replay:
    """What a replay produced: findings in emission order, outcomes per event, final state."""

    findings: list[Finding] = field(default_factory=list)
    outcomes: list[EventOutcome] = field(default_factory=list)
    state: AccountState | None = None

    @property
    def fired(self) -> list[tuple[str, float]]:
        """``(rule_id, fired_at)`` pairs, the usual thing to assert on."""
        return [(f.rule_id, f.fired_at) for f in self.findings]


def replay(engine: RuleEngine, events: Iterable[Event], until: float | None = None, lateness: float = 0.0) -> Replay:
    """Feed events in the given order with the watermark = newest − ``lateness``; advance to ``until``."""
    result = Replay(state=engine.new_state())
    assert result.state is not None
    newest = float("-inf")
    for event in events:
        newest = max(newest, event.ts)
        outcome, findings = engine.on_event(result.state, event, newest - lateness)
        result.outcomes.append(outcome)
        result.findings.extend(findings)
    final = until if until is not None else newest - lateness
    result.findings.extend(engine.advance(result.state, final))
    return result


def with_version_1_rule_state(engine: RuleEngine, state: AccountState, rule_id: str, rule_doc: Any) -> bytes:
    """``state`` as stored by the code before typed rule state (version 1), ``rule_id``'s state as ``rule_doc``."""
    doc = orjson.loads(engine.dumps(state))
    doc["v"] = 1
    doc["r"][rule_id][1] = rule_doc
    return orjson.dumps(doc)


@pytest.fixture
def at() -> Callable[..., Event]:
    """Factory: ``at(seconds_after_monday, event="Login", **fields)`` — an event on the Monday clock."""
    counter = iter(range(1, 10**9))

    def factory(offset: float, event: str = "Login", **fields: Any) -> Event:
        values: dict[str, Any] = {"event_id": f"e{next(counter):06d}", "account_id": "acme"}
        values.update(fields)
        return Event(event=event, ts=MONDAY + offset, **values)

    return factory


@pytest.fixture
def run() -> Callable[..., Replay]:
    """``run(engine, events, until=None, lateness=0)`` — see :func:`replay`."""
    return replay
