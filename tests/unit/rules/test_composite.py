"""``composite``: every named rule fired for the same account within ``within``."""

from __future__ import annotations

from tests.unit.rules.conftest import HOUR, MONDAY


def _pair(make_rule):
    a = make_rule("any", id="a", match={"event": "A"})
    b = make_rule("any", id="b", match={"event": "B"})
    return a, b


def test_fires_when_the_last_rule_fires_within(make_rule, make_engine, run, at):
    """A then B within the hour fires the composite at B's time."""
    engine = make_engine(*_pair(make_rule), make_rule("composite"))
    result = run(engine, [at(0, "A"), at(1800, "B")], until=MONDAY + 2 * HOUR)
    assert result.fired == [("a", MONDAY), ("b", MONDAY + 1800), ("composite-rule", MONDAY + 1800)]
    assert result.findings[-1].evidence["rules"] == {"a": "2026-11-23T00:00:00.000Z", "b": "2026-11-23T00:30:00.000Z"}


def test_too_far_apart_does_not_fire(make_rule, make_engine, run, at):
    """A and B more than ``within`` apart are two separate stories."""
    engine = make_engine(*_pair(make_rule), make_rule("composite"))
    assert ("composite-rule", MONDAY + HOUR + 1) not in run(engine, [at(0, "A"), at(HOUR + 1, "B")]).fired


def test_exactly_within_fires(make_rule, make_engine, run, at):
    """B exactly ``within`` after A still combines."""
    engine = make_engine(*_pair(make_rule), make_rule("composite"))
    result = run(engine, [at(0, "A"), at(HOUR, "B")], until=MONDAY + 2 * HOUR)
    assert ("composite-rule", MONDAY + HOUR) in result.fired


def test_only_one_rule_never_fires(make_rule, make_engine, run, at):
    """Repeated A without B never fires the composite."""
    engine = make_engine(*_pair(make_rule), make_rule("composite"))
    assert all(rule != "composite-rule" for rule, _ in run(engine, [at(0, "A"), at(10, "A")], MONDAY + HOUR).fired)


def test_composite_cooldown(make_rule, make_engine, run, at):
    """After firing, the composite waits ``within`` (its default cooldown) before firing again."""
    engine = make_engine(*_pair(make_rule), make_rule("composite"))
    events = [at(0, "A"), at(10, "B"), at(20, "A"), at(30, "B")]
    fired = [t for rule, t in run(engine, events, until=MONDAY + HOUR).fired if rule == "composite-rule"]
    assert fired == [MONDAY + 10]


def test_combines_a_deadline_rule_with_an_event_rule(make_rule, make_engine, run, at):
    """A silence (fired by the clock) and a detractor combine."""
    quiet = make_rule("inactivity", id="quiet", match={"event": "Login"})
    nps = make_rule("any", id="nps")
    combo = make_rule("composite", all_of=["quiet", "nps"], within="2h")
    engine = make_engine(quiet, nps, combo)
    events = [at(0, "Login"), at(HOUR + 600, "NPS", properties={"score": 0})]
    result = run(engine, events, until=MONDAY + 3 * HOUR)
    assert ("composite-rule", MONDAY + HOUR + 600) in result.fired


def test_without_a_cooldown_two_completions_of_one_instant_get_two_alert_ids(make_rule, make_engine, run, at):
    """``cooldown: 0s``: A, B, A, B all stamped at one instant complete the composite twice, as two alerts
    with two ids (one id would let the notifier send only one)."""
    a = make_rule("any", id="a", match={"event": "A"}, cooldown="0s")
    b = make_rule("any", id="b", match={"event": "B"}, cooldown="0s")
    engine = make_engine(a, b, make_rule("composite", cooldown="0s"))
    events = [at(0, name, event_id=f"e{i}-{name}") for i, name in enumerate(["A", "B", "A", "B"])]
    found = [f for f in run(engine, events, until=MONDAY + 2 * HOUR).findings if f.rule_id == "composite-rule"]
    assert len(found) == 2
    assert len({f.alert_id for f in found}) == 2
