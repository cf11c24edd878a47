"""``score``: a 0–100 engagement score computed daily; fires below ``below`` or on a fall."""

from __future__ import annotations

import pytest

from tests.unit.rules.conftest import DAY, HOUR, MONDAY, with_version_1_rule_state


def _logins(at, day, count):
    return [at(day * DAY + HOUR + i, "Login") for i in range(count)]


def test_score_below_threshold_fires_at_the_tick(make_rule, make_engine, run, at):
    """One login in the window (target 4) scores 25 < 50 at the first tick after the warm-up."""
    engine = make_engine(make_rule("score"))
    result = run(engine, _logins(at, 0, 1), until=MONDAY + 2 * DAY)
    assert result.fired == [("score-rule", MONDAY + 2 * DAY)]
    assert result.findings[0].evidence["value"] == 25.0


def test_not_before_the_tick(make_rule, make_engine, run, at):
    """No score is computed between ticks."""
    engine = make_engine(make_rule("score"))
    assert run(engine, _logins(at, 0, 1), until=MONDAY + 2 * DAY - 1).fired == []


def test_exactly_at_below_does_not_fire(make_rule, make_engine, run, at):
    """Two logins of four is exactly 50, which is not below 50."""
    engine = make_engine(make_rule("score"))
    assert run(engine, _logins(at, 0, 2), until=MONDAY + 2 * DAY).fired == []


def test_drop_points_within_window(make_rule, make_engine, run, at):
    """A fall of 50 points from the recent peak fires even above ``below``."""
    rule = make_rule("score", below=None, drop_points=50)
    engine = make_engine(rule)
    result = run(engine, _logins(at, 0, 4), until=MONDAY + 3 * DAY)
    # day 1: 100 (warm-up); day 2: still 100 (2-day window); day 3: 0 → fell 100 points
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
    quiet = run(engine, _logins(at, 0, 2), until=MONDAY + 2 * DAY)  # (50 + 100) / 2 = 75
    assert quiet.fired == []
    engine = make_engine(make_rule("score", components=components))
    events = [*_logins(at, 0, 2), at(2 * HOUR, "NPS", properties={"score": 2})]  # (50 + 20) / 2 = 35
    result = run(engine, events, until=MONDAY + 2 * DAY)
    assert result.fired == [("score-rule", MONDAY + 2 * DAY)]
    assert result.findings[0].evidence["components"] == {"activity": 50.0, "nps": 20.0}


def test_design_spellings_latest_measure_and_scale(make_rule, make_engine, run, at):
    """DESIGN.md's "measure or latest value, target/scale": ``measure: latest:<path>`` and ``scale`` load
    and score as ``latest: <path>`` and ``target``."""
    components = [
        {"name": "activity", "weight": 1, "match": {"event": "Login"}, "measure": "count", "scale": 4},
        {"name": "nps", "weight": 1, "match": {"event": "NPS"}, "measure": "latest:properties.score", "scale": 10},
    ]
    rule = make_rule("score", components=components)
    assert [(c.measure, c.latest, c.target) for c in rule.components] == [
        ("count", None, 4.0),
        (None, "properties.score", 10.0),
    ]
    events = [*_logins(at, 0, 2), at(2 * HOUR, "NPS", properties={"score": 2})]  # (50 + 20) / 2 = 35
    result = run(make_engine(rule), events, until=MONDAY + 2 * DAY)
    assert result.findings[0].evidence["components"] == {"activity": 50.0, "nps": 20.0}


def test_target_and_scale_together_are_refused(make_rule):
    """``scale`` is another name for ``target``: giving both is an error that says so."""
    components = [{"name": "a", "weight": 1, "match": {"event": "Login"}, "measure": "count", "target": 4, "scale": 5}]
    with pytest.raises(ValueError, match="target or scale"):
        make_rule("score", components=components)


def test_inverse_component_fewer_is_better(make_rule, make_engine, run, at):
    """``target`` below ``zero_at`` scores errors: more errors, fewer points."""
    errors = {"name": "errors", "weight": 1, "match": {"event": "Error"}, "measure": "count", "target": 0, "zero_at": 4}
    components = [errors]
    engine = make_engine(make_rule("score", components=components))
    result = run(engine, [at(HOUR + i, "Error") for i in range(3)], until=MONDAY + 2 * DAY)
    assert result.findings[0].evidence["value"] == 25.0


def test_ticks_stop_after_activity_leaves_the_window(make_rule, make_engine, run, at):
    """A silent key is ticked until its events left the window, then costs nothing."""
    engine = make_engine(make_rule("score", cooldown="1s"))
    result = run(engine, _logins(at, 0, 4), until=MONDAY + 30 * DAY)
    assert result.fired == [("score-rule", MONDAY + 3 * DAY)]
    assert result.state is not None
    assert engine.next_wakeup(result.state) is None


def _daily_logins(at, days):
    return [at(day * DAY + 9 * HOUR, "Login", user_id="u1") for day in range(days)]


def _one_user_rule(make_rule, **overrides):
    components = [
        {"name": "users", "weight": 1, "match": {"event": "Login"}, "measure": "distinct:user_id", "target": 4}
    ]
    return make_rule("score", window="7d", components=components, **overrides)


def test_below_waits_until_the_window_is_fully_observed(make_rule, make_engine, run, at):
    """A key that scores 25 every day fires nothing on the six ticks before its first full 7-day window."""
    engine = make_engine(_one_user_rule(make_rule, cooldown="1s"))
    result = run(engine, _daily_logins(at, 8), until=MONDAY + 8 * DAY)
    assert result.fired == [("score-rule", MONDAY + 7 * DAY), ("score-rule", MONDAY + 8 * DAY)]
    assert result.findings[0].evidence["reason"] == "below"


def test_warm_up_counts_from_the_first_events_bucket(make_rule, make_engine, run, at):
    """A first event late on day 2 makes the tick of day 9, whose window starts on day 2, the first that fires."""
    engine = make_engine(_one_user_rule(make_rule))
    events = [at(2 * DAY + 23 * HOUR, "Login", user_id="u1")]
    result = run(engine, events, until=MONDAY + 9 * DAY)
    assert result.fired == [("score-rule", MONDAY + 9 * DAY)]


def test_drop_waits_for_the_warm_up_and_remembers_warm_up_scores(make_rule, make_engine, run, at):
    """A fall during the warm-up fires at the first warm tick, measured from the warm-up peak."""
    nps = {"name": "nps", "weight": 1, "match": {"event": "NPS"}, "latest": "properties.score", "target": 10}
    rule = make_rule("score", window="3d", below=None, drop_points=30, components=[nps])
    engine = make_engine(rule)
    events = [at(HOUR, "NPS", properties={"score": 10}), at(DAY + HOUR, "NPS", properties={"score": 0})]
    result = run(engine, events, until=MONDAY + 3 * DAY)
    # day 1: 100 (warm-up); day 2: 0, a fall of 100 but still warming up; day 3: first full window
    assert result.fired == [("score-rule", MONDAY + 3 * DAY)]
    assert result.findings[0].evidence["baseline"] == 100.0


def test_a_key_active_again_after_silence_is_not_warmed_up_again(make_rule, make_engine, run, at):
    """The first tick is kept while a key is silent, so a returning key is scored at once."""
    engine = make_engine(_one_user_rule(make_rule, cooldown="1s"))
    events = [*_daily_logins(at, 8), at(30 * DAY + HOUR, "Login", user_id="u1")]
    result = run(engine, events, until=MONDAY + 31 * DAY)
    assert ("score-rule", MONDAY + 31 * DAY) in result.fired


def test_warm_up_survives_dumps_and_loads(make_rule, make_engine, at):
    """State saved in the middle of the warm-up, reloaded, fires at the same tick as without a restart."""
    engine = make_engine(_one_user_rule(make_rule))
    state = engine.new_state()
    events = _daily_logins(at, 10)
    findings = []
    for event in events[:4]:
        findings.extend(engine.on_event(state, event, event.ts)[1])
    findings.extend(engine.advance(state, MONDAY + 4 * DAY))
    assert findings == []
    state = engine.loads(engine.dumps(state))
    for event in events[4:]:
        findings.extend(engine.on_event(state, event, event.ts)[1])
    findings.extend(engine.advance(state, MONDAY + 10 * DAY))
    assert [f.fired_at for f in findings][:1] == [MONDAY + 7 * DAY]


def _without_first_tick(engine, state):
    """The state as an engine from before the warm-up wrote it: version 1, no ``f`` in the key."""
    rule_state = state.rules["score-rule"]
    keyed = rule_state.keys[""]
    v1 = {"b": keyed.buckets, "l": keyed.latest, "h": keyed.history, "e": keyed.last_event_ts, "t": keyed.next_tick}
    return engine.loads(
        with_version_1_rule_state(engine, state, "score-rule", {"k": {"": v1}, "n": rule_state.deadline})
    )


def test_state_without_first_tick_of_a_young_key_still_warms_up(make_rule, make_engine, at):
    """State written before the warm-up existed takes a young key's first tick from its score history."""
    engine = make_engine(_one_user_rule(make_rule, cooldown="1s"))
    state = engine.new_state()
    findings = []
    for event in _daily_logins(at, 3):
        findings.extend(engine.on_event(state, event, event.ts)[1])
    findings.extend(engine.advance(state, MONDAY + 3 * DAY))
    state = _without_first_tick(engine, state)
    findings.extend(engine.advance(state, MONDAY + 7 * DAY))
    assert [f.fired_at for f in findings] == [MONDAY + 7 * DAY]


def test_state_without_first_tick_of_an_old_key_counts_as_warm(make_rule, make_engine, at):
    """A key whose kept score history spans the window keeps firing after the old state is read."""
    engine = make_engine(_one_user_rule(make_rule, cooldown="1s"))
    state = engine.new_state()
    findings = []
    for event in _daily_logins(at, 8):
        findings.extend(engine.on_event(state, event, event.ts)[1])
    findings.extend(engine.advance(state, MONDAY + 8 * DAY))
    assert [f.fired_at for f in findings] == [MONDAY + 7 * DAY, MONDAY + 8 * DAY]
    state = _without_first_tick(engine, state)
    assert [f.fired_at for f in engine.advance(state, MONDAY + 9 * DAY)] == [MONDAY + 9 * DAY]


_TWO_TENTHS = [
    {"name": "activity", "weight": 0.1, "match": {"event": "Login"}, "measure": "count", "target": 10},
    {"name": "exports", "weight": 0.1, "match": {"event": "Export"}, "measure": "count", "target": 1},
]
"""Seven logins and no export score exactly 35, which floating point computes as 34.99999999999999."""


def test_a_score_exactly_at_below_does_not_fire_despite_float_rounding(make_rule, make_engine, run, at):
    """A score of exactly 35 is not below ``below: 35``, though its weighted sum rounds under 35."""
    engine = make_engine(make_rule("score", below=35, components=_TWO_TENTHS))
    assert run(engine, _logins(at, 0, 7), until=MONDAY + 2 * DAY).fired == []
    engine = make_engine(make_rule("score", below=35, components=_TWO_TENTHS))
    assert run(engine, _logins(at, 0, 6), until=MONDAY + 2 * DAY).fired == [("score-rule", MONDAY + 2 * DAY)]


def test_a_fall_of_exactly_drop_points_fires_despite_float_rounding(make_rule, make_engine, run, at):
    """A fall from exactly 35 to 0 is a fall of ``drop_points: 35`` and fires."""
    engine = make_engine(make_rule("score", below=None, drop_points=35, components=_TWO_TENTHS))
    result = run(engine, _logins(at, 0, 7), until=MONDAY + 3 * DAY)
    assert result.fired == [("score-rule", MONDAY + 3 * DAY)]
    assert (result.findings[0].evidence["reason"], result.findings[0].evidence["baseline"]) == ("drop", 35.0)


def test_a_latest_value_that_is_not_a_number_is_counted_and_the_last_number_kept(
    make_rule, make_engine, run, at, monkeypatch
):
    """An NPS score sent as a string ("2") or without its score was ignored silently and the component kept its
    default; it is still not taken (a string is not a number, as for ``sum:``), but counted and logged like a
    ``sum:`` value (preempt_measure_values_skipped_total{reason})."""
    from rules import measures

    reported: list[tuple[object, str]] = []
    monkeypatch.setattr(measures, "report", lambda anomaly, reason="": reported.append((anomaly, reason)))
    components = [
        {"name": "activity", "weight": 1, "match": {"event": "Login"}, "measure": "count", "target": 4},
        {"name": "nps", "weight": 1, "match": {"event": "NPS"}, "latest": "properties.score", "target": 10},
    ]
    engine = make_engine(make_rule("score", components=components))
    events = [
        *_logins(at, 0, 2),
        at(2 * HOUR, "NPS", properties={"score": 2}),
        at(3 * HOUR, "NPS", properties={"score": "9"}),
        at(4 * HOUR, "NPS", properties={"comment": "slow"}),
        at(5 * HOUR, "NPS", properties={"score": True}),
    ]
    result = run(engine, events, until=MONDAY + 2 * DAY)
    assert result.findings[0].evidence["components"] == {"activity": 50.0, "nps": 20.0}  # the last number: 2
    assert [reason for _, reason in reported] == ["not_a_number", "missing", "not_a_number"]
