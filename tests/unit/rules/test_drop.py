"""``drop``: at each window end, the window's measure falls ``drop_pct`` below the baseline."""

from __future__ import annotations

from tests.unit.rules.conftest import DAY, HOUR, MONDAY


def _logins(at, day, count):
    return [at(day * DAY + HOUR + i, "Login") for i in range(count)]


def test_fires_at_window_end_when_half_of_baseline(make_rule, make_engine, run, at):
    """Four logins on each of two days, then two: a 50 % drop fires at the third day's end."""
    engine = make_engine(make_rule("drop"))
    events = _logins(at, 0, 4) + _logins(at, 1, 4) + _logins(at, 2, 2)
    result = run(engine, events, until=MONDAY + 3 * DAY)
    assert result.fired == [("drop-rule", MONDAY + 3 * DAY)]
    evidence = result.findings[0].evidence
    assert (evidence["value"], evidence["baseline"], evidence["drop_pct"]) == (2.0, 4.0, 50.0)


def test_not_before_the_window_ends(make_rule, make_engine, run, at):
    """Just before midnight the open window is not judged."""
    engine = make_engine(make_rule("drop"))
    events = _logins(at, 0, 4) + _logins(at, 1, 4) + _logins(at, 2, 2)
    assert run(engine, events, until=MONDAY + 3 * DAY - 1).fired == []


def test_small_drop_does_not_fire(make_rule, make_engine, run, at):
    """Three logins against a baseline of four is a 25 % drop."""
    engine = make_engine(make_rule("drop"))
    events = _logins(at, 0, 4) + _logins(at, 1, 4) + _logins(at, 2, 3)
    assert run(engine, events, until=MONDAY + 3 * DAY).fired == []


def test_total_silence_fires_by_the_clock(make_rule, make_engine, run, at):
    """An account that stops completely still alerts when the empty window closes."""
    engine = make_engine(make_rule("drop"))
    result = run(engine, _logins(at, 0, 4) + _logins(at, 1, 4), until=MONDAY + 3 * DAY)
    assert result.fired == [("drop-rule", MONDAY + 3 * DAY)]
    assert result.findings[0].evidence["value"] == 0.0


def test_no_alert_without_enough_history(make_rule, make_engine, run, at):
    """A key seen for fewer windows than baseline_windows is never judged."""
    engine = make_engine(make_rule("drop"))
    assert run(engine, _logins(at, 0, 10), until=MONDAY + 2 * DAY).fired == []


def test_min_baseline(make_rule, make_engine, run, at):
    """A baseline below min_baseline is too small to call a drop."""
    engine = make_engine(make_rule("drop", min_baseline=5))
    assert run(engine, _logins(at, 0, 4) + _logins(at, 1, 4), until=MONDAY + 4 * DAY).fired == []


def test_late_login_does_not_count(make_rule, make_engine, run, at):
    """A login behind the watermark does not lift the window."""
    engine = make_engine(make_rule("drop"))
    events = _logins(at, 0, 4) + _logins(at, 1, 4) + _logins(at, 2, 2)
    events += [at(3 * DAY + HOUR, "Other"), at(2 * DAY + 2 * HOUR, "Login"), at(2 * DAY + 2 * HOUR + 1, "Login")]
    result = run(engine, events, until=MONDAY + 4 * DAY, lateness=60)
    assert ("drop-rule", MONDAY + 3 * DAY) in result.fired


def test_state_is_forgotten_after_long_silence(make_rule, make_engine, run, at):
    """Once the whole history is zero the key's state is dropped (bounded state)."""
    engine = make_engine(make_rule("drop"))
    result = run(engine, _logins(at, 0, 4), until=MONDAY + 30 * DAY)
    assert result.state is not None
    assert result.state.rules["drop-rule"].keys == {}
    assert engine.next_wakeup(result.state) is None


def test_a_drop_of_exactly_drop_pct_fires_despite_float_rounding(make_rule, make_engine, run, at):
    """Ten logins a day, then two, is exactly an 80 % drop and fires, though 10 × (1 − 0.8) is
    1.9999999999999996 in floating point."""
    engine = make_engine(make_rule("drop", drop_pct=80))
    events = _logins(at, 0, 10) + _logins(at, 1, 10) + _logins(at, 2, 2)
    result = run(engine, events, until=MONDAY + 3 * DAY)
    assert result.fired == [("drop-rule", MONDAY + 3 * DAY)]
    assert result.findings[0].evidence["drop_pct"] == 80.0
    three_left = _logins(at, 0, 10) + _logins(at, 1, 10) + _logins(at, 2, 3)
    assert run(make_engine(make_rule("drop", drop_pct=80)), three_left, until=MONDAY + 3 * DAY).fired == []
