"""``score``: a 0–100 engagement score computed daily; fires below ``below`` or on a fall."""

from __future__ import annotations

from tests.unit.rules.conftest import DAY, HOUR, MONDAY


def _logins(at, day, count):
    return [at(day * DAY + HOUR + i, "Login") for i in range(count)]


def test_score_below_threshold_fires_at_the_tick(make_rule, make_engine, run, at):
    """One login in the window (target 4) scores 25 < 50 at the next midnight."""
    engine = make_engine(make_rule("score"))
    result = run(engine, _logins(at, 0, 1), until=MONDAY + DAY)
    assert result.fired == [("score-rule", MONDAY + DAY)]
    assert result.findings[0].evidence["value"] == 25.0


def test_not_before_the_tick(make_rule, make_engine, run, at):
    """No score is computed between ticks."""
    engine = make_engine(make_rule("score"))
    assert run(engine, _logins(at, 0, 1), until=MONDAY + DAY - 1).fired == []


def test_exactly_at_below_does_not_fire(make_rule, make_engine, run, at):
    """Two logins of four is exactly 50, which is not below 50."""
    engine = make_engine(make_rule("score"))
    assert run(engine, _logins(at, 0, 2), until=MONDAY + DAY).fired == []


def test_drop_points_within_window(make_rule, make_engine, run, at):
    """A fall of 50 points from the recent peak fires even above ``below``."""
    rule = make_rule("score", below=None, drop_points=50)
    engine = make_engine(rule)
    result = run(engine, _logins(at, 0, 4), until=MONDAY + 3 * DAY)
    # day 1: 100; day 2: still 100 (2-day window); day 3: 0 → fell 100 points
    assert result.fired == [("score-rule", MONDAY + 3 * DAY)]
    assert result.findings[0].evidence["reason"] == "drop"


def test_latest_value_component_and_default(make_rule, make_engine, run, at):
    """A latest-value component uses the newest property value; its default applies before any."""
    components = [
        {"name": "activity", "weight": 1, "match": {"event": "Login"}, "measure": "count", "target": 4},
        {
            "name": "nps",
            "weight": 1,
            "match": {"event": "NPS"},
            "latest": "properties.score",
            "target": 10,
            "default": 10,
        },
    ]
    engine = make_engine(make_rule("score", components=components))
    quiet = run(engine, _logins(at, 0, 2), until=MONDAY + DAY)  # (50 + 100) / 2 = 75
    assert quiet.fired == []
    engine = make_engine(make_rule("score", components=components))
    events = [*_logins(at, 0, 2), at(2 * HOUR, "NPS", properties={"score": 2})]  # (50 + 20) / 2 = 35
    result = run(engine, events, until=MONDAY + DAY)
    assert result.fired == [("score-rule", MONDAY + DAY)]
    assert result.findings[0].evidence["components"] == {"activity": 50.0, "nps": 20.0}


def test_inverse_component_fewer_is_better(make_rule, make_engine, run, at):
    """``target`` below ``zero_at`` scores errors: more errors, fewer points."""
    errors = {"name": "errors", "weight": 1, "match": {"event": "Error"}, "measure": "count", "target": 0, "zero_at": 4}
    components = [errors]
    engine = make_engine(make_rule("score", components=components))
    result = run(engine, [at(HOUR + i, "Error") for i in range(3)], until=MONDAY + DAY)
    assert result.findings[0].evidence["value"] == 25.0


def test_ticks_stop_after_activity_leaves_the_window(make_rule, make_engine, run, at):
    """A silent key is ticked until its events left the window, then costs nothing."""
    engine = make_engine(make_rule("score", cooldown="1s"))
    result = run(engine, _logins(at, 0, 4), until=MONDAY + 30 * DAY)
    assert result.fired == [("score-rule", MONDAY + 3 * DAY)]
    assert result.state is not None
    assert engine.next_wakeup(result.state) is None
