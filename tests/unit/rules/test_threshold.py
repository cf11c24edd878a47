"""``threshold``: the measure over the last window reaches ``min``."""

from __future__ import annotations

from rules.engine import EventOutcome
from tests.unit.rules.conftest import HOUR, MIN, MONDAY


def test_fires_exactly_at_min(make_rule, make_engine, run, at):
    """The third error within the window fires, with the value and threshold as evidence."""
    engine = make_engine(make_rule("threshold"))
    result = run(engine, [at(0, "Error"), at(60, "Error"), at(120, "Error")], until=MONDAY + 200)
    assert result.fired == [("threshold-rule", MONDAY + 120)]
    evidence = result.findings[0].evidence
    assert (evidence["value"], evidence["threshold"]) == (3.0, 3.0)
    assert len(evidence["sample_event_ids"]) == 3


def test_one_below_min_does_not_fire(make_rule, make_engine, run, at):
    """Two errors against a minimum of three fire nothing."""
    engine = make_engine(make_rule("threshold"))
    assert run(engine, [at(0, "Error"), at(60, "Error")], until=MONDAY + 9999).fired == []


def test_event_just_outside_the_window_does_not_count(make_rule, make_engine, run, at):
    """With 10 s buckets, an event a full window (600 s) earlier has left the window."""
    engine = make_engine(make_rule("threshold"))
    result = run(engine, [at(0, "Error"), at(300, "Error"), at(600, "Error")], until=MONDAY + 700)
    assert result.fired == []


def test_event_inside_the_last_bucket_still_counts(make_rule, make_engine, run, at):
    """An event 590 s earlier is still inside a 10 m window."""
    engine = make_engine(make_rule("threshold"))
    result = run(engine, [at(0, "Error"), at(300, "Error"), at(590, "Error")], until=MONDAY + 700)
    assert result.fired == [("threshold-rule", MONDAY + 590)]


def test_out_of_order_within_lateness_matches_sorted(make_rule, make_engine, run, at):
    """Events shuffled within the allowed lateness fire exactly as when sorted."""
    events = [at(0, "Error"), at(3, "Error"), at(6, "Error")]
    engine = make_engine(make_rule("threshold"))
    shuffled = run(engine, [events[2], events[0], events[1]], until=MONDAY + 100, lateness=10)
    ordered = run(make_engine(make_rule("threshold")), events, until=MONDAY + 100, lateness=10)
    assert shuffled.fired == ordered.fired == [("threshold-rule", MONDAY + 6)]


def test_late_event_is_ignored_and_reported(make_rule, make_engine, run, at):
    """An event older than the watermark is LATE and does not count toward the window."""
    engine = make_engine(make_rule("threshold"))
    result = run(engine, [at(0, "Error"), at(100, "Error"), at(50, "Error")], until=MONDAY + 200, lateness=5)
    assert result.outcomes == [EventOutcome.ACCEPTED, EventOutcome.ACCEPTED, EventOutcome.LATE]
    assert result.fired == []


def test_duplicate_event_counts_once(make_rule, make_engine, run, at):
    """A redelivered event id is a DUPLICATE and does not count twice."""
    first, second = at(0, "Error"), at(60, "Error")
    engine = make_engine(make_rule("threshold"))
    result = run(engine, [first, second, first], until=MONDAY + 200)
    assert result.outcomes[-1] is EventOutcome.DUPLICATE
    assert result.fired == []


def test_cooldown_suppresses_until_it_has_passed(make_rule, make_engine, run, at):
    """After firing, the rule stays quiet for the cooldown, then fires again."""
    rule = make_rule("threshold", min=1, cooldown="5m")
    engine = make_engine(rule)
    result = run(engine, [at(0, "Error"), at(299, "Error"), at(300, "Error")], until=MONDAY + 400)
    assert result.fired == [("threshold-rule", MONDAY), ("threshold-rule", MONDAY + 300)]
    assert engine.suppressed_by_cooldown == 1


def test_default_cooldown_is_the_window(make_rule):
    """Without a cooldown the rule waits one window between alerts."""
    assert make_rule("threshold").effective_cooldown == 10 * MIN


def test_nothing_fires_before_the_watermark_passes_the_event(make_rule, make_engine, at):
    """An event is evaluated only once the watermark is past its time."""
    engine = make_engine(make_rule("threshold", min=1))
    state = engine.new_state()
    event = at(0, "Error")
    assert engine.on_event(state, event, event.ts) == (EventOutcome.ACCEPTED, [])
    assert [f.rule_id for f in engine.advance(state, event.ts + 0.001)] == ["threshold-rule"]


def test_group_by_user_counts_each_user_apart(make_rule, make_engine, run, at):
    """Per-user grouping fires only for the user who reached the minimum."""
    engine = make_engine(make_rule("threshold", group_by="user"))
    events = [at(0, "Error", user_id="u1"), at(1, "Error", user_id="u2"), at(2, "Error", user_id="u1")]
    events += [at(3, "Error", user_id="u1"), at(4, "Error")]  # no user: not counted per user
    result = run(engine, events, until=MONDAY + 100)
    assert [(f.user_id, f.fired_at) for f in result.findings] == [("u1", MONDAY + 3)]


def test_distinct_measure_counts_unique_values(make_rule, make_engine, run, at):
    """``distinct:user_id`` counts users, not events."""
    engine = make_engine(make_rule("threshold", measure="distinct:user_id", min=2))
    same = [at(0, "Error", user_id="u1"), at(1, "Error", user_id="u1")]
    assert run(engine, same, until=MONDAY + 100).fired == []
    engine = make_engine(make_rule("threshold", measure="distinct:user_id", min=2))
    both = [at(0, "Error", user_id="u1"), at(1, "Error", user_id="u2")]
    assert run(engine, both, until=MONDAY + 100).fired == [("threshold-rule", MONDAY + 1)]


def test_sum_measure_adds_numbers_and_skips_non_numbers(make_rule, make_engine, run, at):
    """``sum:properties.amount`` adds numeric values; strings and missing values add nothing."""
    engine = make_engine(make_rule("threshold", measure="sum:properties.amount", min=100))
    events = [
        at(0, "Error", properties={"amount": 60}),
        at(1, "Error", properties={"amount": "40"}),
        at(2, "Error"),
        at(3, "Error", properties={"amount": 40.0}),
    ]
    result = run(engine, events, until=MONDAY + 100)
    assert result.fired == [("threshold-rule", MONDAY + 3)]
    assert result.findings[0].evidence["value"] == 100.0


def test_sum_measure_counts_and_logs_the_values_it_cannot_add(make_rule, make_engine, run, at):
    """A string amount, a null and a missing amount add nothing, and none of them is silent: each is counted
    by reason, and the log has the first of each measure and reason, then the 10th, 100th… (not one per event)."""
    from prometheus_client import REGISTRY
    from structlog.testing import capture_logs

    import streams.runtime.metrics  # noqa: F401  (subscribes the metric to rules' reports)

    def skipped(reason: str) -> float:
        return REGISTRY.get_sample_value("preempt_measure_values_skipped_total", {"reason": reason}) or 0.0

    before = {reason: skipped(reason) for reason in ("not_a_number", "missing")}
    engine = make_engine(make_rule("threshold", measure="sum:properties.refund_total", min=1000))
    events = [at(i, "Error", properties={"refund_total": "49.99"}) for i in range(12)] + [
        at(12, "Error", properties={"refund_total": None}),
        at(13, "Error"),
        at(14, "Error", properties={"refund_total": 5}),
    ]
    with capture_logs() as logs:
        result = run(engine, events, until=MONDAY + 100)
    assert result.fired == []
    assert skipped("not_a_number") == before["not_a_number"] + 12
    assert skipped("missing") == before["missing"] + 2  # absent, or null
    warnings = [line for line in logs if line["event"] == "sum value skipped"]
    lines = [(line["reason"], line["skipped_so_far"]) for line in warnings]
    assert lines[:2] == [("not_a_number", 1), ("not_a_number", 10)]
    assert ("missing", 1) in lines
    assert {line["measure"] for line in warnings} == {"sum:properties.refund_total"}


def test_per_user_state_forgets_users_whose_events_left_the_window(make_rule, make_engine, run, at):
    """Many users over time do not grow the state: stale users are swept when new ones arrive."""
    engine = make_engine(make_rule("threshold", group_by="user"))
    events = [at(i * 60, "Error", user_id=f"u{i}") for i in range(200)]
    result = run(engine, events, until=MONDAY + 200 * MIN)
    assert result.state is not None
    assert len(result.state.rules["threshold-rule"].keys) <= 32


def test_sum_measure_ignores_values_that_could_overflow_and_the_state_round_trips(make_rule, make_engine, run, at):
    """Values above 2^53 in magnitude are skipped (and counted): the sum stays finite and the state reloads."""
    import math

    from prometheus_client import REGISTRY

    import streams.runtime.metrics  # noqa: F401  (subscribes the metric to rules' reports)

    skipped = REGISTRY.get_sample_value("preempt_measure_values_skipped_total", {"reason": "out_of_range"}) or 0.0
    engine = make_engine(make_rule("threshold", measure="sum:properties.amount", min=100))
    events = [at(i, "Error", properties={"amount": 1.7e308}) for i in range(3)] + [
        at(3, "Error", properties={"amount": 50}),
        at(4, "Error", properties={"amount": 50}),
    ]
    result = run(engine, events, until=MONDAY + 100)
    assert result.fired == [("threshold-rule", MONDAY + 4)]
    assert math.isfinite(result.findings[0].evidence["value"])
    assert REGISTRY.get_sample_value("preempt_measure_values_skipped_total", {"reason": "out_of_range"}) == skipped + 3
    assert result.state is not None
    assert engine.loads(engine.dumps(result.state)).rules == result.state.rules


def test_a_sum_exactly_at_min_fires_despite_float_rounding(make_rule, make_engine, run, at):
    """Ten amounts of 0.1 reach ``min: 1`` on the tenth, though they add up to 0.9999999999999999
    in floating point; nine do not."""
    engine = make_engine(make_rule("threshold", measure="sum:properties.amount", min=1, match={"event": "Paid"}))
    events = [at(float(i), "Paid", properties={"amount": 0.1}) for i in range(10)]
    assert run(engine, events, until=MONDAY + 60).fired == [("threshold-rule", MONDAY + 9)]
    assert run(engine, events[:9], until=MONDAY + 60).fired == []


def test_cooldown_zero_lets_every_finding_through(make_rule, make_engine, run, at):
    """``cooldown: 0s`` is accepted and means none: every event at or over ``min`` alerts."""
    rule = make_rule("threshold", cooldown="0s")
    assert rule.effective_cooldown == 0.0
    result = run(make_engine(rule), [at(float(i), "Error") for i in range(5)], until=MONDAY + 60)
    assert result.fired == [("threshold-rule", MONDAY + i) for i in (2.0, 3.0, 4.0)]


def test_without_cooldown_two_events_of_one_instant_give_two_alert_ids(make_rule, make_engine, run, at):
    """With ``cooldown: 0s`` two events at the same instant over ``min`` are two alerts with two ids."""
    engine = make_engine(make_rule("threshold", min=1, cooldown="0s"))
    result = run(engine, [at(5.0, "Error"), at(5.0, "Error")], until=MONDAY + 60)
    assert result.fired == [("threshold-rule", MONDAY + 5.0)] * 2
    assert len({finding.alert_id for finding in result.findings}) == 2


def test_distinct_long_values_are_counted_by_digest_and_keep_the_state_small(make_rule, make_engine, run, at):
    """``distinct:`` over long values (10,000-character URLs) counts them exactly, and the state keeps
    a short digest of each, not the value: thousands of them would outgrow what the worker may store."""
    rule = make_rule("threshold", measure="distinct:properties.url", min=3, match={"event": "Page Viewed"})
    engine = make_engine(rule)
    urls = ["https://example.com/" + letter * 10_000 for letter in "aab"]
    events = [at(float(i), "Page Viewed", properties={"url": url}) for i, url in enumerate(urls)]
    result = run(engine, events, until=MONDAY + 60)
    assert result.fired == []  # two different URLs, not three
    third = at(5.0, "Page Viewed", properties={"url": "https://example.com/" + "c" * 10_000})
    result = run(make_engine(rule), [*events, third], until=MONDAY + 60)
    assert result.fired == [("threshold-rule", MONDAY + 5.0)]
    assert result.state is not None
    assert len(engine.dumps(result.state)) < 2_000


def test_distinct_counts_numbers_by_value_as_where_compares_them(make_rule, make_engine, run, at):
    """``500`` and ``500.0`` are one distinct value (``where`` calls them equal); ``true`` and ``1`` are two."""
    rule = make_rule("threshold", measure="distinct:properties.code", min=3, match={"event": "Error"})
    same = [at(0.0, "Error", properties={"code": 500}), at(1.0, "Error", properties={"code": 500.0})]
    assert run(make_engine(rule), [*same, at(2.0, "Error", properties={"code": 502})], until=MONDAY + 60).fired == []
    apart = [at(0.0, "Error", properties={"code": 1}), at(1.0, "Error", properties={"code": True})]
    three = [*apart, at(2.0, "Error", properties={"code": 2.5})]
    assert run(make_engine(rule), three, until=MONDAY + 60).fired == [("threshold-rule", MONDAY + 2.0)]


def test_a_whole_number_sum_one_below_a_large_min_does_not_fire(make_rule, make_engine, run, at):
    """The slack that lets rounding reach a limit is relative and tiny: 9,999,999,999 is below ``min``
    10,000,000,000 (a slack of 1e-9 made it fire)."""
    engine = make_engine(
        make_rule("threshold", measure="sum:properties.amount", min=10_000_000_000, match={"event": "Paid"})
    )
    events = [at(0, "Paid", properties={"amount": 9_999_999_999})]
    assert run(engine, events, until=MONDAY + 2 * HOUR).fired == []


def test_distinct_never_counts_a_number_and_a_string_as_one_value(make_rule, make_engine, run, at):
    """``500`` and ``"500"``, ``true`` and ``"True"`` are different values (``where`` tells them apart),
    on every path shape: a top-level property, a nested one, and a string that looks like the mark."""
    for measure in ("distinct:properties.code", "distinct:properties.who.code"):
        rule = make_rule("threshold", measure=measure, min=2, match={"event": "Error"})

        def props(value, measure=measure):
            return {"code": value} if measure.endswith(".code") and "who" not in measure else {"who": {"code": value}}

        for one, other in ((500, "500"), (True, "True"), (2.5, "2.5"), ("=500", 500), ("==500", "=500")):
            events = [at(0.0, "Error", properties=props(one)), at(1.0, "Error", properties=props(other))]
            assert run(make_engine(rule), events, until=MONDAY + 60).fired == [("threshold-rule", MONDAY + 1.0)], (
                measure,
                one,
                other,
            )


def test_a_per_user_sum_does_not_count_events_without_a_user_as_skipped_values(make_rule, make_engine, run, at):
    """A per-user rule ignores events without a user before its measure reads them: their amounts are not
    'missing' values (the metric counts values a sum could have added, not events the rule never keys)."""
    from prometheus_client import REGISTRY

    import streams.runtime.metrics  # noqa: F401  (subscribes the metric to rules' reports)

    def skipped() -> float:
        return REGISTRY.get_sample_value("preempt_measure_values_skipped_total", {"reason": "missing"}) or 0.0

    before = skipped()
    rule = make_rule("threshold", measure="sum:properties.seats_removed", min=10, group_by="user")
    run(make_engine(rule), [at(i, "Error") for i in range(5)], until=MONDAY + 100)
    assert skipped() == before
    run(make_engine(rule), [at(0, "Error", user_id="u1")], until=MONDAY + 100)
    assert skipped() == before + 1
