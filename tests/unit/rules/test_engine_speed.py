"""The engine's speed work keeps its results: dispatch by event name, cooldown checked before a
finding is built, ratio's running totals, fused ``where`` checks, forgetting old seen ids, shared where tests."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rules.engine import RuleEngine
from rules.kinds import base as kind_base
from rules.loader import RuleSet, parse_rule
from rules.models import Match
from rules.paths import compile_path
from rules.predicates import _on_path, _op_tests, compile_match, compile_where
from rules.state import AccountState
from schemas.event import Event
from tests.unit.rules.conftest import HOUR, MIN, MONDAY, with_version_1_rule_state


def test_dispatch_routes_an_event_name_only_to_the_rules_that_can_match_it(make_rule, make_engine):
    """Each event name maps once to the rules naming it plus the rules that match every name."""
    named = make_rule("threshold", id="errors")  # match: Error
    everything = make_rule("inactivity", id="quiet")  # match: {} (every event)
    engine = make_engine(named, everything)
    assert [step[0] for step in engine._route("Error")] == ["errors", "quiet"]
    assert [step[0] for step in engine._route("Login")] == ["quiet"]
    assert engine._route("Login") is engine._route("Login")  # computed once per name


def test_cooldown_is_checked_before_the_finding_is_built(make_rule, make_engine, run, at, monkeypatch):
    """Events inside the cooldown build no finding, yet are counted as suppressed exactly as before."""
    built: list[Any] = []
    real = kind_base.make_finding  # every event-time finding is built through EvaluatorBase.event_finding
    monkeypatch.setattr(kind_base, "make_finding", lambda **kw: built.append(kw) or real(**kw))
    engine = make_engine(make_rule("any", cooldown="1h"))
    events = [at(i * MIN, "NPS", properties={"score": 1}) for i in range(10)] + [
        at(2 * HOUR, "NPS", properties={"score": 2})
    ]
    result = run(engine, events, until=MONDAY + 3 * HOUR)
    assert result.fired == [("any-rule", MONDAY), ("any-rule", MONDAY + 2 * HOUR)]
    assert len(built) == 2
    assert engine.suppressed_by_cooldown == 9


def test_ratio_running_totals_equal_the_kept_buckets(make_rule, make_engine, run, at):
    """After many calls across window boundaries the totals equal the sum of the kept buckets."""
    engine = make_engine(make_rule("ratio", min_ratio=0.9))
    rng = random.Random(3)
    events = [at(i * 7.0, "Call", properties={"status": rng.choice([200, 500])}) for i in range(600)]
    state = run(engine, events).state
    keyed = state.rules["ratio-rule"].keys[""]
    assert keyed.numerator_total == sum(v for _, v in keyed.numerators)
    assert keyed.denominator_total == sum(v for _, v in keyed.denominators)


def test_ratio_state_without_running_totals_reads_the_same(make_rule, make_engine, run, at):
    """State written before running totals (version 1 without ``t``) gives the same findings as state that has them."""
    engine = make_engine(make_rule("ratio"))
    first = [at(i * 10.0, "Call", properties={"status": 200}) for i in range(4)]
    second = [at(40 + i * 10.0, "Call", properties={"status": 500}) for i in range(4)]
    with_totals = engine.new_state()
    for event in first:
        engine.on_event(with_totals, event, event.ts)
    keyed = with_totals.rules["ratio-rule"].keys[""]
    v1 = {"k": {"": {"n": keyed.numerators, "d": keyed.denominators, "s": keyed.samples}}}
    without = engine.loads(with_version_1_rule_state(engine, with_totals, "ratio-rule", v1))
    fired = []
    for state in (with_totals, without):
        findings = [f for e in second for f in engine.on_event(state, e, e.ts)[1]]
        fired.append([f.alert_id for f in findings + engine.advance(state, MONDAY + HOUR)])
    assert fired[0] == fired[1] != []
    assert without.rules == with_totals.rules


def test_dedup_purge_keeps_exactly_the_ids_within_the_horizon(make_rule, make_engine, at):
    """After many ids were forgotten from its front, the seen-id map holds the ids of the horizon, oldest first."""
    engine = make_engine(make_rule("any"), dedup_horizon=100.0)
    state = engine.new_state()
    events = [at(float(i)) for i in range(3000)]
    for event in events:
        engine.on_event(state, event, event.ts)
    assert list(state.seen) == list(state.seen_order) == [e.event_id for e in events if e.ts >= events[-1].ts - 100.0]


_VALUES = st.one_of(
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.none(),
    st.sampled_from(["a", "b", "admin", "error", "500", ""]),
    st.lists(st.sampled_from(["a", 1]), max_size=2),
)
_WHERES = [
    {"gte": 500},
    {"lt": 2.5},
    {"gt": "b"},
    {"lte": 6, "gte": 1},
    {"eq": "admin"},
    {"in": ["auth_expired", "error", "a"]},
    {"eq": "a", "gt": "0"},
]


@given(
    value=_VALUES,
    present=st.booleans(),
    where=st.sampled_from(_WHERES),
    root=st.sampled_from(["properties", "context"]),
)
def test_fused_where_checks_agree_with_the_generic_ones(value, present, where, root):
    """The one-closure checks of the common shapes give the generic path-and-op result for any value."""
    path = f"{root}.x"
    match = Match.model_validate({"event": "E", "where": {path: where}})
    fields = {root: {"x": value} if present else {}}
    event = Event(event_id="e1", event="E", account_id="a", ts=MONDAY, **fields)
    (ops,) = match.where.values()
    generic = all(_on_path(compile_path(path), test)(event) for test in _op_tests(ops))
    fused = compile_where(match)
    assert fused is not None
    assert fused(event) is generic
    assert compile_match(match)(event) is generic


@given(
    indexes=st.lists(st.integers(0, 40), max_size=25, unique=True),
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=25, max_size=25),
    boundary=st.integers(-1, 42),
)
def test_split_totals_equal_two_window_totals(indexes, values, boundary):
    """One pass over pruned buckets gives exactly the two ``total`` calls' results (sums and distinct)."""
    from rules import windows

    numbers = [[i, v] for i, v in zip(sorted(indexes), values, strict=False)]
    assert windows.split_totals(numbers, boundary, "sum") == (
        windows.total(numbers, -1, boundary - 1, "sum"),
        windows.total(numbers, boundary, 99, "sum"),
    )
    names = [[i, [str(int(v) % 7), str(i % 3)]] for i, v in zip(sorted(indexes), values, strict=False)]
    assert windows.split_totals(names, boundary, "distinct") == (
        windows.total(names, -1, boundary - 1, "distinct"),
        windows.total(names, boundary, 99, "distinct"),
    )


def _forget_old_ids_by_the_loop(seen: dict[str, float], cutoff: float, cap: int) -> dict[str, float]:
    """The purge as first written: drop the oldest id while it is older than the cutoff or the map is over the cap."""
    kept = dict(seen)
    while kept:
        oldest, ts = next(iter(kept.items()))
        if ts >= cutoff and len(kept) <= cap:
            break
        del kept[oldest]
    return kept


@given(
    times=st.lists(st.sampled_from([1.0, 5.0, 9.0, 10.0, 11.0, 20.0]), max_size=40),
    cap=st.integers(1, 30),
)
def test_dedup_purge_drops_what_the_loop_drops(times, cap):
    """Forgetting from the arrival-order queue keeps exactly the ids the loop over the map keeps, over the cap too."""
    rule = parse_rule({"id": "r", "kind": "any", "title": "t", "severity": "high", "priority": 1, "match": {}})
    engine = RuleEngine(RuleSet((rule,)), dedup_horizon=10.0, max_seen_ids=cap)
    state = AccountState(seen={f"e{i}": ts for i, ts in enumerate(times)})
    expected = _forget_old_ids_by_the_loop(state.seen, 20.0 - 10.0, cap)
    engine._forget_old_ids(state, 20.0)
    assert list(state.seen.items()) == list(expected.items())
    assert list(state.seen_order) == list(expected)


class _CountingProperties(dict[str, Any]):
    """Event properties that count how often a rule reads them."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        type(self).reads += 1
        return super().get(key, default)


def test_rules_with_the_same_where_test_an_event_once(make_rule, make_engine, at):
    """Two consecutive rules with equal ``where`` blocks run their shared test once per event, and both still see it."""
    errors = {"event": "Call", "where": {"properties.status": {"gte": 500}}}
    first = make_rule("threshold", id="first", window="10m", min=2, match=errors)
    second = make_rule("threshold", id="second", window="10m", min=2, match=errors)
    engine = make_engine(first, second)
    state = engine.new_state()
    _CountingProperties.reads = 0
    events = [at(i * 10.0, "Call", properties=_CountingProperties(status=503)) for i in range(3)]
    findings = [f for e in events for f in engine.on_event(state, e, e.ts)[1]]
    findings += engine.advance(state, MONDAY + HOUR)
    assert sorted(f.rule_id for f in findings) == ["first", "second"]  # then each in its cooldown
    assert _CountingProperties.reads == len(events)


def test_equal_where_blocks_compile_to_one_test():
    """``compile_where`` gives equal ``where`` blocks the same callable and different ones their own."""
    five = Match.model_validate({"event": "A", "where": {"properties.status": {"gte": 500}}})
    same = Match.model_validate({"event": "B", "where": {"properties.status": {"gte": 500}}})
    four = Match.model_validate({"event": "A", "where": {"properties.status": {"gte": 400}}})
    assert compile_where(five) is compile_where(same)
    assert compile_where(five) is not compile_where(four)


@given(
    indexes=st.lists(st.integers(0, 40), max_size=12, unique=True),
    lo=st.integers(-1, 42),
    hi=st.integers(-1, 42),
)
def test_window_total_equals_the_filtered_sum(indexes, lo, hi):
    """``total`` (shortcut or not) equals the measure of the buckets in ``lo..hi``."""
    from rules import windows

    counts = [[i, i % 5 + 1] for i in sorted(indexes)]
    assert windows.total(counts, lo, hi, "count") == float(sum(v for i, v in counts if lo <= i <= hi))
    names = [[i, [str(i % 3), str(i % 4)]] for i in sorted(indexes)]
    expected = {name for i, values in names if lo <= i <= hi for name in values}
    assert windows.total(names, lo, hi, "distinct") == float(len(expected))


@given(
    value=_VALUES,
    present=st.booleans(),
    user=st.one_of(st.none(), st.sampled_from(["u1", ""])),
    path=st.sampled_from(["user_id", "properties.x"]),
)
def test_inlined_distinct_contributions_agree_with_the_generic_one(value, present, user, path):
    """The inlined ``distinct:user_id`` and ``distinct:properties.<key>`` give the generic contribution always."""
    from rules.measures import compile_measure, distinct_by

    event = Event(
        event_id="e1", event="E", account_id="a", ts=MONDAY, user_id=user, properties={"x": value} if present else {}
    )
    generic = distinct_by(compile_path(path))(event)
    assert compile_measure(f"distinct:{path}").contribution(event) == generic


def test_a_read_state_rebuilds_the_arrival_order_of_its_seen_ids(make_rule, make_engine, at):
    """A state read back from its bytes has its seen ids' arrival order again, so forgetting them resumes exactly."""
    engine = make_engine(make_rule("any"), dedup_horizon=100.0)
    state = engine.new_state()
    events = [at(float(i)) for i in range(300)]
    for event in events[:150]:
        engine.on_event(state, event, event.ts)
    restored = engine.loads(engine.dumps(state))
    assert list(restored.seen_order) == list(restored.seen) == list(state.seen)
    for event in events[150:]:
        engine.on_event(state, event, event.ts)
        engine.on_event(restored, event, event.ts)
    assert list(restored.seen.items()) == list(state.seen.items())
    assert list(restored.seen_order) == list(state.seen_order)
