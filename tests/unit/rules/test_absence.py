"""``absence``: a start event not followed by the expected event within ``within``."""

from __future__ import annotations

from rules.findings import alert_id_for
from tests.unit.rules.conftest import HOUR, MONDAY


def test_missing_follow_up_fires_at_the_deadline(make_rule, make_engine, at):
    """Onboarding started and never completed fires at start + within, not before."""
    engine = make_engine(make_rule("absence"))
    state = engine.new_state()
    engine.on_event(state, at(0, "Started"), MONDAY)
    assert engine.advance(state, MONDAY + HOUR - 1) == []
    fired = engine.advance(state, MONDAY + HOUR)
    assert [(f.fired_at, f.window_start) for f in fired] == [(MONDAY + HOUR, MONDAY)]


def test_follow_up_in_time_cancels(make_rule, make_engine, run, at):
    """Completion before the deadline means no alert."""
    engine = make_engine(make_rule("absence"))
    assert run(engine, [at(0, "Started"), at(HOUR - 1, "Completed")], until=MONDAY + 5 * HOUR).fired == []


def test_follow_up_exactly_at_the_deadline_is_too_late(make_rule, make_engine, run, at):
    """An expect stamped exactly at start + within comes after the deadline fired."""
    engine = make_engine(make_rule("absence"))
    result = run(engine, [at(0, "Started"), at(HOUR, "Completed")], until=MONDAY + 5 * HOUR)
    assert result.fired == [("absence-rule", MONDAY + HOUR)]


def test_expect_before_start_does_nothing_and_first_start_sets_deadline(make_rule, make_engine, run, at):
    """An expect with nothing pending is ignored; a second start does not move the deadline."""
    engine = make_engine(make_rule("absence"))
    events = [at(0, "Completed"), at(10, "Started"), at(1000, "Started")]
    assert run(engine, events, until=MONDAY + 5 * HOUR).fired == [("absence-rule", MONDAY + 10 + HOUR)]


def test_late_completion_is_ignored(make_rule, make_engine, run, at):
    """A completion behind the watermark does not cancel the pending start."""
    engine = make_engine(make_rule("absence"))
    events = [at(0, "Started"), at(100, "Login"), at(50, "Completed")]
    assert run(engine, events, until=MONDAY + 2 * HOUR, lateness=5).fired == [("absence-rule", MONDAY + HOUR)]


def test_episode_is_the_start(make_rule, make_engine, run, at):
    """The alert id comes from the start time, so it does not depend on when the clock moved."""
    engine = make_engine(make_rule("absence"))
    finding = run(engine, [at(0, "Started")], until=MONDAY + 9 * HOUR).findings[0]
    assert finding.episode == "2026-11-23T00:00:00.000Z"


def test_an_expect_stamped_at_the_starts_instant_clears_it_whatever_the_event_ids(make_rule, make_engine, run, at):
    """A start and its expect stamped at the same instant (a day-granular import) give no alert, whichever of
    the two the engine applies first (events of one instant go in event_id order)."""
    for start_id, expect_id in (("b-start", "a-paid"), ("a-start", "b-paid")):
        engine = make_engine(make_rule("absence"))
        events = [at(0, "Started", event_id=start_id), at(0, "Completed", event_id=expect_id)]
        result = run(engine, events, until=MONDAY + 5 * HOUR)
        assert result.fired == [], (start_id, expect_id)


def test_an_expect_one_instant_before_the_start_does_not_clear_it(make_rule, make_engine, run, at):
    """The expect must come at or after the start: one a millisecond before leaves the start pending."""
    engine = make_engine(make_rule("absence"))
    events = [at(0, "Completed", event_id="a-paid"), at(0.001, "Started", event_id="b-start")]
    assert run(engine, events, until=MONDAY + 5 * HOUR).fired == [("absence-rule", MONDAY + 0.001 + HOUR)]


def test_a_per_user_rule_remembers_expects_of_the_newest_instant_only(make_rule, make_engine, run, at):
    """Expects with nothing pending are remembered per user, but only the newest instant's once many users
    sent one: the state stays bounded however many users there are."""
    engine = make_engine(make_rule("absence", group_by="user"))
    events = [at(float(i), "Completed", user_id=f"u{i}") for i in range(200)]
    result = run(engine, events, until=MONDAY + HOUR)
    assert result.state is not None
    assert len(result.state.rules["absence-rule"].expected) <= 40
    assert result.state.rules["absence-rule"].expected["u199"] == MONDAY + 199


def test_an_expect_that_clears_an_older_start_also_clears_a_start_of_its_own_instant(make_rule, make_engine, run, at):
    """Started on day 0, then Started and Completed stamped at one later instant: no alert, whichever of the
    two later events the engine applies first (the expect that cleared the older start is remembered too)."""
    for start_id, expect_id in (("b-start", "a-paid"), ("a-start", "b-paid")):
        engine = make_engine(make_rule("absence"))
        events = [
            at(0, "Started", event_id="0-start"),
            at(600, "Started", event_id=start_id),
            at(600, "Completed", event_id=expect_id),
        ]
        result = run(engine, events, until=MONDAY + 5 * HOUR)
        assert result.fired == [], (start_id, expect_id)


def test_the_evidence_names_the_expected_events_and_the_start_as_the_rule_lists_them(make_rule, make_engine, run, at):
    """The finding's evidence carries the expect's event names in the rule's order (and whether its ``where``
    narrows them) and the start's, so the alert can say what is missing; the alert id stays the start's."""
    rule = make_rule(
        "absence",
        start={"event": "Invoice Payment Failed"},
        expect={"event": ["Payment Method Updated", "Invoice Paid"], "where": {"properties.amount": {"gt": 0}}},
    )
    [finding] = run(make_engine(rule), [at(0, "Invoice Payment Failed")], until=MONDAY + 9 * HOUR).findings
    assert finding.evidence["expected"] == ["Payment Method Updated", "Invoice Paid"]
    assert finding.evidence["expected_filtered"] is True
    assert finding.evidence["start"] == ["Invoice Payment Failed"]
    assert finding.alert_id == alert_id_for(rule.id, "acme", None, "2026-11-23T00:00:00.000Z")


def test_a_rule_that_expects_any_event_says_so_in_its_evidence(make_rule, make_engine, run, at):
    """``expect`` without an event name (any event): the evidence's ``expected`` is None, not an empty list."""
    rule = make_rule("absence", start={"event": "Started"}, expect={"where": {"properties.ok": True}})
    [finding] = run(make_engine(rule), [at(0, "Started")], until=MONDAY + 9 * HOUR).findings
    assert finding.evidence["expected"] is None
    assert finding.evidence["start"] == ["Started"]


def test_an_event_that_is_both_the_expect_and_a_start_starts_the_next_wait(make_rule, make_engine, run, at):
    """start and expect both "Invoice Paid", within 1h: each payment clears the wait and starts the next, so
    every gap longer than the hour fires, the second one too (before, the follow-up only cleared the wait:
    the gap after it went unwatched, and only every other gap could fire)."""
    rule = make_rule("absence", start={"event": "Invoice Paid"}, expect={"event": "Invoice Paid"})
    engine = make_engine(rule)
    paid = [at(0, "Invoice Paid"), at(HOUR - 10, "Invoice Paid"), at(2 * HOUR, "Invoice Paid")]
    result = run(engine, paid, until=MONDAY + 10 * HOUR)
    # the second gap (HOUR - 10 to 2 * HOUR, longer than the hour) fires at its deadline, and so does the last wait
    assert result.fired == [("absence-rule", MONDAY + 2 * HOUR - 10), ("absence-rule", MONDAY + 3 * HOUR)]
    assert [f.window_start for f in result.findings] == [MONDAY + HOUR - 10, MONDAY + 2 * HOUR]


def test_a_where_that_tells_the_start_from_the_expect_keeps_one_wait(make_rule, make_engine, run, at):
    """start and expect of one name told apart by a property: a start while one is pending is still ignored."""
    rule = make_rule(
        "absence",
        start={"event": "Payment", "where": {"properties.ok": False}},
        expect={"event": "Payment", "where": {"properties.ok": True}},
    )
    engine = make_engine(rule)
    events = [at(0, "Payment", properties={"ok": False}), at(100, "Payment", properties={"ok": False})]
    assert run(engine, events, until=MONDAY + 5 * HOUR).fired == [("absence-rule", MONDAY + HOUR)]
