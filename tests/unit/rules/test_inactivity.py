"""``inactivity``: a key that was active sends nothing for ``after``."""

from __future__ import annotations

from rules.engine import EventOutcome
from tests.unit.rules.conftest import HOUR, MONDAY


def test_fires_at_the_deadline_and_not_before(make_rule, make_engine, at):
    """The clock fires the silence exactly at last event + after, never earlier."""
    engine = make_engine(make_rule("inactivity"))
    state = engine.new_state()
    event = at(0)
    engine.on_event(state, event, event.ts)
    assert engine.advance(state, MONDAY + HOUR - 0.001) == []
    assert engine.next_wakeup(state) == MONDAY + HOUR
    fired = engine.advance(state, MONDAY + HOUR)
    assert [(f.rule_id, f.fired_at) for f in fired] == [("inactivity-rule", MONDAY + HOUR)]
    assert engine.advance(state, MONDAY + 5 * HOUR) == []  # once per silence


def test_activity_moves_the_deadline(make_rule, make_engine, run, at):
    """An event before the deadline restarts the silence."""
    engine = make_engine(make_rule("inactivity"))
    result = run(engine, [at(0), at(HOUR - 1)], until=MONDAY + 2 * HOUR)
    assert result.fired == [("inactivity-rule", MONDAY + 2 * HOUR - 1)]


def test_event_exactly_at_the_deadline_is_too_late(make_rule, make_engine, run, at):
    """Deadlines at t fire before events at t: a silence of exactly ``after`` counts."""
    engine = make_engine(make_rule("inactivity"))
    result = run(engine, [at(0), at(HOUR)], until=MONDAY + HOUR + 1)
    assert result.fired == [("inactivity-rule", MONDAY + HOUR)]


def test_never_active_key_never_fires(make_rule, make_engine, run, at):
    """A rule that never saw a matching event has nothing to miss."""
    engine = make_engine(make_rule("inactivity", match={"event": "Report Exported"}))
    assert run(engine, [at(0, "Login")], until=MONDAY + 10 * HOUR).fired == []


def test_per_user_silences(make_rule, make_engine, run, at):
    """Per-user grouping fires for the user who went quiet, at that user's deadline."""
    engine = make_engine(make_rule("inactivity", group_by="user"))
    events = [at(0, user_id="u1"), at(0, user_id="u2"), at(1800, user_id="u2")]
    result = run(engine, events, until=MONDAY + HOUR + 1)
    assert [(f.user_id, f.fired_at) for f in result.findings] == [("u1", MONDAY + HOUR)]


def test_late_event_does_not_cancel_a_silence(make_rule, make_engine, at):
    """An event older than the watermark is LATE and the silence stands."""
    engine = make_engine(make_rule("inactivity"))
    state = engine.new_state()
    engine.on_event(state, at(0), MONDAY - 10)
    fired = engine.advance(state, MONDAY + HOUR)
    outcome, _ = engine.on_event(state, at(1800), MONDAY + HOUR)
    assert outcome is EventOutcome.LATE
    assert [f.fired_at for f in fired] == [MONDAY + HOUR]


def test_alert_id_is_stable_across_runs(make_rule, make_engine, run, at):
    """The same silence gets the same alert id every time."""
    first = run(make_engine(make_rule("inactivity")), [at(0)], until=MONDAY + 2 * HOUR).findings
    second = run(make_engine(make_rule("inactivity")), [at(0)], until=MONDAY + 3 * HOUR).findings
    assert [f.alert_id for f in first] == [f.alert_id for f in second]


def test_the_evidence_and_the_sentence_name_the_events_that_went_quiet(make_rule, make_engine, run, at):
    """A rule without a summary on a custom event said "no activity for 1 hour": a CSM could not tell what
    stopped. The evidence names the match's events (and whether a ``where`` narrows them), and the sentence
    every channel shows says "no 'Sensor Ping' event for 1 hour"."""
    from schemas.formatting import evidence_sentence

    rule = make_rule("inactivity", match={"event": "Sensor Ping"})
    [finding] = run(make_engine(rule), [at(0, "Sensor Ping")], until=MONDAY + 2 * HOUR).findings
    assert finding.evidence["events"] == ["Sensor Ping"]
    assert finding.evidence["events_filtered"] is False
    sentence = evidence_sentence("inactivity", finding.evidence)
    assert sentence.startswith("no 'Sensor Ping' event for 1 hour; last seen "), sentence

    narrowed = make_rule("inactivity", match={"event": ["Sensor Ping", "Heartbeat"], "where": {"properties.ok": True}})
    [finding] = run(
        make_engine(narrowed), [at(0, "Heartbeat", properties={"ok": True})], until=MONDAY + 2 * HOUR
    ).findings
    assert finding.evidence["events_filtered"] is True
    sentence = evidence_sentence("inactivity", finding.evidence)
    assert sentence.startswith("no matching 'Sensor Ping' or 'Heartbeat' event for 1 hour"), sentence
