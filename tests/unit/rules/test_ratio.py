"""``ratio``: matching / denominator events over the window reach ``min_ratio``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rules.loader import parse_rule
from tests.unit.rules.conftest import MONDAY


def _calls(at, statuses, start=0.0, step=10.0):
    return [at(start + i * step, "Call", properties={"status": s}) for i, s in enumerate(statuses)]


def test_fires_exactly_at_min_ratio_with_enough_calls(make_rule, make_engine, run, at):
    """Two failures in four calls is exactly 0.5 and fires on the fourth call."""
    engine = make_engine(make_rule("ratio"))
    result = run(engine, _calls(at, [500, 200, 503, 200]), until=MONDAY + 100)
    assert result.fired == [("ratio-rule", MONDAY + 30)]
    evidence = result.findings[0].evidence
    assert (evidence["value"], evidence["numerator"], evidence["denominator"]) == (0.5, 2.0, 4.0)


def test_below_min_denominator_never_fires(make_rule, make_engine, run, at):
    """Three failing calls out of three are not enough traffic when four are required."""
    engine = make_engine(make_rule("ratio"))
    assert run(engine, _calls(at, [500, 500, 500]), until=MONDAY + 100).fired == []


def test_ratio_just_below_does_not_fire(make_rule, make_engine, run, at):
    """One failure in four calls (0.25) stays quiet."""
    engine = make_engine(make_rule("ratio"))
    assert run(engine, _calls(at, [500, 200, 200, 200]), until=MONDAY + 100).fired == []


def test_old_calls_leave_the_window(make_rule, make_engine, run, at):
    """Failures older than the window no longer count in the numerator."""
    engine = make_engine(make_rule("ratio"))
    events = _calls(at, [500, 500]) + _calls(at, [200, 200], start=700)
    assert run(engine, events, until=MONDAY + 900).fired == []


def test_late_failure_is_ignored(make_rule, make_engine, run, at):
    """A failing call behind the watermark does not tip the ratio."""
    engine = make_engine(make_rule("ratio"))
    events = [*_calls(at, [500, 200, 200], start=100), at(120, "Call", properties={"status": 200})]
    events.append(at(50, "Call", properties={"status": 500}))
    assert run(engine, events, until=MONDAY + 300, lateness=1).fired == []


def test_a_min_ratio_above_one_that_cannot_be_reached_is_refused_at_load():
    """``min_ratio: 20`` written for 20 %: the failing calls are calls too, so the ratio is at most 1 and the
    rule loaded and never fired. Refused when the denominator counts every event the match counts."""
    base = {"id": "r", "kind": "ratio", "title": "t", "severity": "low", "priority": 1, "window": "1h"}
    failing = {"event": "Call", "where": {"properties.status": {"gte": 500}}}
    with pytest.raises(ValidationError, match=r"min_ratio 20 is never reached: .* write a fraction \(0.2 for 20 %\)"):
        parse_rule({**base, "match": failing, "denominator": {"event": "Call"}, "min_ratio": 20})
    with pytest.raises(ValidationError, match=r"min_ratio 1\.5 is never reached"):
        parse_rule({**base, "match": {"event": "Call"}, "denominator": {}, "min_ratio": 1.5})
    # reachable: exactly 1, or a denominator that does not count every matching event
    assert parse_rule({**base, "match": failing, "denominator": {"event": "Call"}, "min_ratio": 1})
    assert parse_rule({**base, "match": {"event": "Error"}, "denominator": {"event": "Call"}, "min_ratio": 3})
    denominator = {"event": "Call", "where": {"properties.tier": "paid"}}
    assert parse_rule({**base, "match": failing, "denominator": denominator, "min_ratio": 2})
