"""Property tests: the alerts depend only on the events, never on arrival order within the
allowed lateness, on how the clock advances are batched, or on state being saved and restored."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.engine import EventOutcome, Finding, RuleEngine
from rules.loader import RuleSet, parse_rule
from schemas.event import Event
from tests.unit.rules.conftest import MONDAY

LATENESS = 120.0

_RULES: list[dict[str, Any]] = [
    {"id": "thr", "kind": "threshold", "window": "10m", "min": 3, "match": {"event": "Error"}},
    {"id": "thr-users", "kind": "threshold", "window": "10m", "min": 2, "group_by": "user",
     "measure": "distinct:properties.page", "match": {"event": ["Error", "Login"]}},
    {"id": "rat", "kind": "ratio", "window": "10m", "min_ratio": 0.5, "min_denominator": 2,
     "match": {"event": "Call", "where": {"properties.status": {"gte": 500}}}, "denominator": {"event": "Call"}},
    {"id": "spk", "kind": "spike", "window": "5m", "factor": 2, "min": 2, "match": {"event": "Error"}},
    {"id": "drp", "kind": "drop", "window": "1h", "baseline_windows": 2, "drop_pct": 50, "min_baseline": 1,
     "match": {"event": "Login"}},
    {"id": "idle", "kind": "inactivity", "after": "30m", "match": {}},
    {"id": "idle-user", "kind": "inactivity", "after": "20m", "group_by": "user", "match": {"event": "Login"}},
    {"id": "abs", "kind": "absence", "start": {"event": "Started"}, "expect": {"event": "Completed"}, "within": "20m"},
    {"id": "seq", "kind": "sequence", "within": "30m", "steps": [{"event": "Failed"}, {"event": "Cancel"}]},
    {"id": "nps", "kind": "any", "match": {"event": "NPS", "where": {"properties.score": {"lte": 6}}}},
    {"id": "scr", "kind": "score", "window": "2h", "every": "1h", "below": 50, "drop_points": 30,
     "components": [
         {"name": "act", "weight": 2, "match": {"event": "Login"}, "measure": "count", "target": 3},
         {"name": "nps", "weight": 1, "match": {"event": "NPS"}, "latest": "properties.score", "target": 10},
     ]},
    {"id": "combo", "kind": "composite", "all_of": ["thr", "nps"], "within": "1h"},
    {"id": "combo-clock", "kind": "composite", "all_of": ["idle", "idle-user", "abs"], "within": "3h"},
]  # fmt: skip


def _engine() -> RuleEngine:
    rules = tuple(parse_rule({"title": "t", "severity": "low", "priority": 1, **data}) for data in _RULES)
    return RuleEngine(RuleSet(rules))


_names = st.sampled_from(["Error", "Login", "Call", "NPS", "Started", "Completed", "Failed", "Cancel", "Other"])
_times = st.one_of(st.integers(0, 6 * 3600), st.integers(0, 36).map(lambda k: k * 600))


@st.composite
def _event_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event": draw(_names),
        "account_id": draw(st.sampled_from(["a", "b"])),
        "user_id": draw(st.sampled_from([None, "u1", "u2"])),
        "offset": draw(_times),
        "properties": {
            "status": draw(st.sampled_from([200, 500])),
            "score": draw(st.integers(0, 10)),
            "page": draw(st.sampled_from(["x", "y", "z"])),
        },
    }


_histories = st.lists(_event_fields(), min_size=1, max_size=60)


def _events(fields: list[dict[str, Any]]) -> list[Event]:
    events = [
        Event(
            event_id=f"e{i:03d}",
            event=f["event"],
            account_id=f["account_id"],
            user_id=f["user_id"],
            ts=MONDAY + f["offset"],
            properties=f["properties"],
        )
        for i, f in enumerate(fields)
    ]
    return sorted(events, key=lambda e: (e.ts, e.event_id))


def _key(finding: Finding) -> tuple[Any, ...]:
    return (
        finding.fired_at,
        finding.account_id,
        finding.rule_id,
        finding.user_id or "",
        finding.alert_id,
        orjson.dumps(finding.evidence, option=orjson.OPT_SORT_KEYS),
    )


def _drive(
    events: list[Event],
    advance_after: frozenset[int] = frozenset(),
    save_after: frozenset[int] = frozenset(),
) -> list[tuple[Any, ...]]:
    """Feed events with one global clock; optionally advance everyone or round-trip state after some."""
    engine = _engine()
    states: dict[str, Any] = {}
    out: list[Finding] = []
    newest = -math.inf
    for index, event in enumerate(events):
        newest = max(newest, event.ts)
        watermark = newest - LATENESS
        state = states.setdefault(event.account_id, engine.new_state())
        outcome, findings = engine.on_event(state, event, watermark)
        assert outcome is EventOutcome.ACCEPTED
        out.extend(findings)
        if index in advance_after:
            for account in sorted(states):
                out.extend(engine.advance(states[account], watermark))
        if index in save_after:
            states = {account: engine.loads(engine.dumps(s)) for account, s in states.items()}
    final = newest + 8 * 3600  # far enough for every deadline of the history to come due
    for account in sorted(states):
        out.extend(engine.advance(states[account], final))
    return sorted(_key(f) for f in out)


_settings = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(_histories, st.data())
def test_reordering_within_lateness_never_changes_alerts(fields, data):
    """Any arrival order in which no event is later than the allowed lateness gives the same alerts."""
    events = _events(fields)
    delays = data.draw(st.lists(st.floats(0, LATENESS - 1e-3), min_size=len(events), max_size=len(events)))
    arrival = [e for _, e in sorted(zip(delays, events, strict=True), key=lambda p: (p[1].ts + p[0], p[1].event_id))]
    assert _drive(arrival) == _drive(events)


@_settings
@given(_histories, st.data())
def test_batch_splits_never_change_alerts(fields, data):
    """Extra clock advances between any events (any batching of the stream) give the same alerts."""
    events = _events(fields)
    points = data.draw(st.frozensets(st.integers(0, len(events) - 1)))
    assert _drive(events, advance_after=points) == _drive(events)


@_settings
@given(_histories, st.data())
def test_save_and_restore_between_events_never_changes_alerts(fields, data):
    """Serializing and restoring every account's state between any two events gives the same alerts."""
    events = _events(fields)
    points = data.draw(st.frozensets(st.integers(0, len(events) - 1)))
    advance = data.draw(st.frozensets(st.integers(0, len(events) - 1)))
    assert _drive(events, advance_after=advance, save_after=points) == _drive(events)


def test_the_property_histories_do_fire_alerts():
    """The rules of these properties do fire on a plain history (so the properties test something)."""
    fields = [
        {"event": "Error", "account_id": "a", "user_id": None, "offset": i * 10, "properties": {"score": 3}}
        for i in range(4)
    ]
    fields.append({"event": "NPS", "account_id": "a", "user_id": "u1", "offset": 100, "properties": {"score": 2}})
    fired = {key[2] for key in _drive(_events(fields))}
    assert {"thr", "nps", "combo", "idle", "spk"} <= fired
