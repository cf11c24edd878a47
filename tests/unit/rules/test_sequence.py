"""``sequence``: the steps happen in order within ``within``."""

from __future__ import annotations

from tests.unit.rules.conftest import HOUR, MONDAY


def test_steps_in_order_fire_at_the_last_step(make_rule, make_engine, run, at):
    """Payment failed, then the cancel page: fires at the cancel page."""
    engine = make_engine(make_rule("sequence"))
    result = run(engine, [at(0, "Payment Failed"), at(600, "Cancel Page")], until=MONDAY + HOUR * 2)
    assert result.fired == [("sequence-rule", MONDAY + 600)]
    assert len(result.findings[0].evidence["sample_event_ids"]) == 2


def test_wrong_order_does_not_fire(make_rule, make_engine, run, at):
    """The cancel page before the failed payment is not the sequence."""
    engine = make_engine(make_rule("sequence"))
    assert run(engine, [at(0, "Cancel Page"), at(600, "Payment Failed")], until=MONDAY + HOUR * 2).fired == []


def test_exactly_within_fires_and_one_second_more_does_not(make_rule, make_engine, run, at):
    """The last step exactly ``within`` after the first still counts; later does not."""
    engine = make_engine(make_rule("sequence"))
    assert run(engine, [at(0, "Payment Failed"), at(HOUR, "Cancel Page")], MONDAY + 3 * HOUR).fired == [
        ("sequence-rule", MONDAY + HOUR)
    ]
    engine = make_engine(make_rule("sequence"))
    assert run(engine, [at(0, "Payment Failed"), at(HOUR + 1, "Cancel Page")], MONDAY + 3 * HOUR).fired == []


def test_latest_start_is_used(make_rule, make_engine, run, at):
    """A fresh first step restarts the clock, so a late second step can still complete it."""
    engine = make_engine(make_rule("sequence"))
    events = [at(0, "Payment Failed"), at(3000, "Payment Failed"), at(4000, "Cancel Page")]
    assert run(engine, events, until=MONDAY + 3 * HOUR).fired == [("sequence-rule", MONDAY + 4000)]


def test_one_event_advances_one_step(make_rule, make_engine, run, at):
    """An event matching two steps does not complete the run on its own."""
    rule = make_rule("sequence", steps=[{"event": "Visit"}, {"event": "Visit"}, {"event": "Cancel Page"}])
    engine = make_engine(rule)
    assert run(engine, [at(0, "Visit"), at(10, "Cancel Page")], until=MONDAY + HOUR).fired == []
    engine = make_engine(rule)
    assert run(engine, [at(0, "Visit"), at(5, "Visit"), at(10, "Cancel Page")], MONDAY + HOUR).fired == [
        ("sequence-rule", MONDAY + 10)
    ]


def test_late_step_is_ignored(make_rule, make_engine, run, at):
    """A first step that arrives behind the watermark does not start a run."""
    engine = make_engine(make_rule("sequence"))
    events = [at(100, "Login"), at(50, "Payment Failed"), at(200, "Cancel Page")]
    assert run(engine, events, until=MONDAY + HOUR, lateness=5).fired == []


def test_per_user_runs_that_expired_are_swept(make_rule, make_engine, run, at):
    """Unfinished runs of many users do not accumulate once they can no longer complete."""
    engine = make_engine(make_rule("sequence", group_by="user"))
    events = [at(i * 600, "Payment Failed", user_id=f"u{i}") for i in range(100)]
    result = run(engine, events, until=MONDAY + 100 * 600)
    assert result.state is not None
    assert len(result.state.rules["sequence-rule"].keys) <= 32


def test_the_evidence_and_the_sentence_name_the_steps(make_rule, make_engine, run, at):
    """A rule without a summary said "both steps happened in order within 40 minutes": a CSM could not tell
    which steps. The evidence names each step's events as written (None: any event) and the sentence every
    channel shows says "'Order Placed', then 'Refund Issued' or 'Chargeback' within 40 minutes"."""
    from schemas.formatting import evidence_sentence

    rule = make_rule(
        "sequence",
        within="3h",
        steps=[{"event": "Order Placed"}, {"event": ["Refund Issued", "Chargeback"]}, {"where": {"properties.x": 1}}],
    )
    events = [at(0, "Order Placed"), at(1200, "Chargeback"), at(2400, "Anything", properties={"x": 1})]
    [finding] = run(make_engine(rule), events, until=MONDAY + 4 * HOUR).findings
    assert finding.evidence["steps"] == [["Order Placed"], ["Refund Issued", "Chargeback"], None]
    assert evidence_sentence("sequence", finding.evidence) == (
        "'Order Placed', then 'Refund Issued' or 'Chargeback', then any event within 40 minutes (limit 3 hours)"
    )
