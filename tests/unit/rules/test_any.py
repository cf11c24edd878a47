"""``any``: every matching event fires, subject to cooldown."""

from __future__ import annotations

from tests.unit.rules.conftest import MONDAY


def test_every_matching_event_fires_with_its_properties(make_rule, make_engine, run, at):
    """Each detractor response fires; a promoter does not."""
    engine = make_engine(make_rule("any"))
    events = [at(0, "NPS", properties={"score": 3}), at(5, "NPS", properties={"score": 9})]
    events.append(at(10, "NPS", properties={"score": 6}))
    result = run(engine, events, until=MONDAY + 20)
    assert result.fired == [("any-rule", MONDAY), ("any-rule", MONDAY + 10)]
    assert result.findings[0].evidence["properties"] == {"score": 3}


def test_same_instant_events_get_distinct_alert_ids(make_rule, make_engine, run, at):
    """Two responses in the same millisecond are two episodes."""
    engine = make_engine(make_rule("any"))
    result = run(engine, [at(0, "NPS", properties={"score": 1}), at(0, "NPS", properties={"score": 2})], MONDAY + 1)
    assert len({f.alert_id for f in result.findings}) == 2


def test_cooldown_per_user(make_rule, make_engine, run, at):
    """With a cooldown and per-user grouping, each user alerts once within it."""
    engine = make_engine(make_rule("any", cooldown="1h", group_by="user"))
    events = [
        at(0, "NPS", user_id="u1", properties={"score": 1}),
        at(10, "NPS", user_id="u1", properties={"score": 2}),
        at(20, "NPS", user_id="u2", properties={"score": 2}),
    ]
    result = run(engine, events, until=MONDAY + 30)
    assert [(f.user_id, f.fired_at) for f in result.findings] == [("u1", MONDAY), ("u2", MONDAY + 20)]


def test_duplicate_does_not_fire_twice(make_rule, make_engine, run, at):
    """A redelivered detractor response alerts once."""
    engine = make_engine(make_rule("any"))
    event = at(0, "NPS", properties={"score": 1})
    assert len(run(engine, [event, event], until=MONDAY + 1).findings) == 1
