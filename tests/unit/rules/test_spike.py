"""``spike``: the current window is ``factor`` × the previous one, and at least ``min``."""

from __future__ import annotations

from tests.unit.rules.conftest import MONDAY


def _errors(at, count, start, step=1.0):
    return [at(start + i * step, "Error") for i in range(count)]


def test_fires_when_current_reaches_factor_times_previous(make_rule, make_engine, run, at):
    """One error before, then three in the next window (3 × 1) fires on the third."""
    engine = make_engine(make_rule("spike"))
    result = run(engine, _errors(at, 1, 0) + _errors(at, 3, 600), until=MONDAY + 1300)
    assert result.fired == [("spike-rule", MONDAY + 602)]
    assert result.findings[0].evidence["baseline"] == 1.0


def test_below_factor_does_not_fire(make_rule, make_engine, run, at):
    """Two errors before and four now (2×) is below a factor of 3."""
    engine = make_engine(make_rule("spike"))
    assert run(engine, _errors(at, 2, 0) + _errors(at, 4, 600), until=MONDAY + 1300).fired == []


def test_below_min_does_not_fire_even_from_zero(make_rule, make_engine, run, at):
    """Two errors from nothing stay below ``min: 3``; the third fires."""
    engine = make_engine(make_rule("spike"))
    assert run(engine, _errors(at, 2, 0), until=MONDAY + 1300).fired == []
    engine = make_engine(make_rule("spike"))
    assert run(engine, _errors(at, 3, 0), until=MONDAY + 1300).fired == [("spike-rule", MONDAY + 2)]


def test_previous_window_boundary(make_rule, make_engine, run, at):
    """An error two full windows back is not in the previous window."""
    engine = make_engine(make_rule("spike"))
    assert run(engine, _errors(at, 1, 0) + _errors(at, 3, 1200), until=MONDAY + 1900).fired == [
        ("spike-rule", MONDAY + 1202)
    ]


def test_cooldown_applies(make_rule, make_engine, run, at):
    """A continuing burst alerts once per cooldown (the window by default)."""
    engine = make_engine(make_rule("spike"))
    result = run(engine, _errors(at, 10, 0, step=30), until=MONDAY + 1300)
    assert result.fired == [("spike-rule", MONDAY + 60)]


def test_exactly_factor_times_previous_fires_despite_float_rounding(make_rule, make_engine, run, at):
    """55 errors after 50 is exactly ``factor: 1.1`` × the previous window and fires on the 55th,
    though 1.1 × 50 is 55.00000000000001 in floating point; the 54th does not."""
    engine = make_engine(make_rule("spike", factor=1.1, cooldown="1s"))
    result = run(engine, _errors(at, 50, 0, step=0.1) + _errors(at, 55, 600, step=0.1), until=MONDAY + 700)
    spikes = [f for f in result.findings if f.evidence["baseline"] == 50.0]
    assert [(f.fired_at, f.evidence["value"], f.evidence["threshold"]) for f in spikes] == [
        (MONDAY + 605.4, 55.0, 55.0)
    ]


def test_evidence_names_the_bar_that_applied_when_the_previous_window_is_small_or_negative(
    make_rule, make_engine, run, at
):
    """A sum whose previous window was negative (refunds) or tiny: the threshold is ``min`` — the bar the
    window had to reach — and no factor is claimed; it read "-2× as many (alert at -10)"."""
    rule = make_rule("spike", measure="sum:properties.amount", factor=2, min=1, match={"event": "Refund"})
    for before, expected_factor in ((-5.0, None), (0.25, 40.0)):
        engine = make_engine(rule)
        events = [at(0, "Refund", properties={"amount": before}), at(600, "Refund", properties={"amount": 10})]
        findings = run(engine, events, until=MONDAY + 1300).findings
        assert [(f.evidence["value"], f.evidence["threshold"], f.evidence["factor"]) for f in findings] == [
            (10.0, 1, expected_factor)
        ]
