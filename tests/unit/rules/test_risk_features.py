"""Risk features on hand-computed histories: own baseline, active users, adoption, numeric properties."""

from __future__ import annotations

import math

import orjson
import pytest

from rules.risk import features, reasons
from rules.risk.features import FeatureSpec, NumericProp, Term
from schemas.event import Event
from tests.unit.rules.risk_support import SPEC

DAY = 86400.0
T0 = 1_795_392_000.0  # a UTC midnight


def _event(day: float, name: str = "Login", user: str | None = "u1", n: int = 0, **props: object) -> Event:
    return Event(f"{name}-{day}-{user}-{n}", name, "acme", T0 + day * DAY + 60 + n, user, dict(props))


def _features(events: list[Event], tick_day: int) -> dict[str, features.Explained]:
    ((_, explained),) = features.replay(SPEC, events, [T0 + tick_day * DAY])
    return dict(zip(SPEC.names, explained, strict=True))


def test_activity_and_users_against_the_accounts_own_baseline() -> None:
    """Eight baseline weeks with 2 users and ~10.5 events a week, then a quiet fortnight with 1 user."""
    events = [_event(d, user="u1") for d in range(56)] + [_event(d, user="u2") for d in range(0, 56, 2)]
    events += [_event(d, user="u1") for d in range(56, 70, 2)]  # 7 events, 1 user, in the last 14 days
    got = _features(events, 70)
    weekly_base = (56 + 28) / 8
    assert got["activity_vs_baseline"].before == pytest.approx(weekly_base)
    assert got["activity_vs_baseline"].now == pytest.approx(3.5)
    assert got["activity_vs_baseline"].value == pytest.approx(math.log(4.5 / (weekly_base + 1)))
    assert got["active_users_vs_baseline"].before == pytest.approx(2.0)
    assert got["active_users_7d"].now == 1
    assert reasons.sentence("active_users_vs_baseline", got["active_users_vs_baseline"]).startswith(
        "active users down 50% against the last 8 weeks"
    )


def test_a_tick_sees_only_the_days_before_it() -> None:
    """An event stamped after midnight of the tick's day is not counted at that tick."""
    events = [_event(0), _event(1), _event(2)]
    got = _features(events, 2)
    assert got["count28:Login"].now == 2
    assert got["days_since_last_event"].value == pytest.approx(1 - 60 / DAY)


def test_terms_narrow_by_property_value_and_keep_types_apart() -> None:
    """``Login[role=admin]`` counts only admin logins; the string "1" is not the number 1."""
    spec = FeatureSpec((Term("Login", "role", "admin"), Term("Call", "status", 500)))
    events = [
        _event(0, role="admin"),
        _event(0, role="member", n=1),
        _event(0, "Call", None, status=500),
        _event(0, "Call", None, n=1, status="500"),
    ]
    ((_, explained),) = features.replay(spec, events, [T0 + DAY])
    got = dict(zip(spec.names, explained, strict=True))
    assert got["count28:Login[role=admin]"].now == 1
    assert got["count28:Call[status=500]"].now == 1


def test_numeric_properties_keep_the_28_day_low_and_the_latest() -> None:
    """NPS 9 long ago, then 3 and 8 recently: the 28-day low is 3 and the latest 8."""
    events = [_event(0, "NPS", score=9), _event(40, "NPS", score=3), _event(45, "NPS", score=8)]
    got = _features(events, 50)
    assert got["min28:NPS.score"].value == 3
    assert got["last:NPS.score"].value == 8
    assert reasons.sentence("min28:NPS.score", got["min28:NPS.score"]) == (
        "NPS with score as low as 3 in the last 28 days"
    )


def test_state_keeps_only_the_days_the_features_need() -> None:
    """Old day buckets are dropped as new days arrive: the state is bounded."""
    state = features.new_state(SPEC)
    for day in range(200):
        features.observe(SPEC, state, _event(day))
    assert len(state["days"]) == features.KEEP_DAYS
    assert state["days"][0][0] == math.floor(T0 / DAY) + 200 - features.KEEP_DAYS


def test_a_young_account_has_no_baseline_and_neutral_ratios() -> None:
    """With under a week of baseline, ratio features are 0 (neither up nor down)."""
    got = _features([_event(0), _event(1)], 5)
    assert got["activity_vs_baseline"].value == 0.0
    assert got["activity_vs_baseline"].before is None
    assert got["tenure_days"].now == pytest.approx(5 - 60 / DAY)


def test_the_champion_away_and_regular_users_retained() -> None:
    """The baseline's most active user silent for the last 16 days, a second regular still active."""
    events = [_event(d, user="champ") for d in range(10, 54)]
    events += [_event(d, user="u2", n=1) for d in range(10, 70, 3)]
    got = _features(events, 70)
    assert got["top_user_days_away"].value == 70 - 53
    assert reasons.sentence("top_user_days_away", got["top_user_days_away"]) == (
        "the most active user of the 46 days before has not been seen for 17 days"
    )  # 46 days of baseline: the account's first event was 60 days before the tick
    assert got["baseline_users_retained"].value == 0.5
    assert (got["baseline_users_retained"].now, got["baseline_users_retained"].before) == (1, 2)


def test_days_since_each_term_and_never_seen() -> None:
    """``since:`` counts whole days back to the term's last day; a term never seen sits at the kept span."""
    events = [_event(d) for d in range(30)] + [_event(5, "Error", n=1)]
    got = _features(events, 40)
    assert got["since:Login"].value == 40 - 29
    assert got["since:Error"].value == 35
    assert got["since:Login[role=admin]"].value == features.KEEP_DAYS
    assert reasons.sentence("since:Login[role=admin]", got["since:Login[role=admin]"]) == (
        "login (role: admin) not once in the last 40 days"
    )
    assert reasons.sentence("since:Error", got["since:Error"]) == "last error 35 days ago"


def test_last_week_and_four_week_trend_of_activity() -> None:
    """Two events a day for 60 days, then one a day: the last week is down and the trend falls."""
    events = [_event(d, n=n) for d in range(60) for n in range(2)] + [_event(d) for d in range(60, 70)]
    got = _features(events, 70)
    assert got["activity_7d_vs_baseline"].now == 7
    assert got["activity_7d_vs_baseline"].value == pytest.approx(math.log(8 / 15))
    weekly = [math.log1p(x) for x in (14, 14, 11, 7)]  # oldest first: weeks ending 21, 14, 7 and 0 days ago
    slope = sum(x * y for x, y in zip((-1.5, -0.5, 0.5, 1.5), weekly, strict=True)) / 5
    assert got["activity_trend_4w"].value == pytest.approx(slope)
    assert got["activity_trend_4w"].value < 0
    young = _features(events[:40], 20)  # under 4 weeks of history: no trend yet
    assert young["activity_trend_4w"].value is None


def test_a_version_1_model_keeps_its_features_and_values() -> None:
    """A spec of version 1 (models trained before the version 2 features) names and computes exactly the v1 subset."""
    v1 = FeatureSpec(SPEC.terms, SPEC.numerics, version=1)
    assert v1.to_json()["version"] == 1
    assert FeatureSpec.from_json(v1.to_json()) == v1
    assert not any(name.startswith("since:") for name in v1.names)
    assert set(v1.names) < set(SPEC.names)
    events = [_event(d, user=f"u{d % 3}") for d in range(60)] + [_event(50, "NPS", score=4)]
    ((_, old),) = features.replay(v1, events, [T0 + 61 * DAY])
    ((_, new),) = features.replay(SPEC, events, [T0 + 61 * DAY])
    by_name = dict(zip(SPEC.names, features.values(new), strict=True))
    assert features.values(old) == [by_name[name] for name in v1.names]
    with pytest.raises(ValueError, match="version"):
        FeatureSpec.from_json({**v1.to_json(), "version": 4})


def _account(**fields: object) -> features.AccountFacts:
    from schemas.account import Account

    return features.AccountFacts.of(Account.model_validate({"account_id": "acme", **fields}))


def test_account_features_come_from_the_record_at_the_tick() -> None:
    """Days to renewal, tenure, seats used in 28 days, MRR and tier come from the record as it is at the tick."""
    spec = FeatureSpec(SPEC.terms, SPEC.numerics, 3, tiers=("enterprise", "starter"), plans=("Pro",))
    events = [_event(d, user=f"u{d % 4}") for d in range(40)]
    account = _account(
        tier="starter", plan="Pro", mrr=1200.0, seats=10, customer_since="2026-10-01", renewal_date="2027-01-12"
    )
    ((_, explained),) = features.replay(spec, events, [T0 + 40 * DAY], account)  # the tick is 2027-01-02
    got = dict(zip(spec.names, explained, strict=True))
    assert got["days_to_renewal"].now == pytest.approx(10.0)
    assert got["days_to_renewal"].value == pytest.approx(math.log1p(10.0))
    assert (got["renewal_within_30d"].value, got["renewal_within_60d"].value) == (1.0, 1.0)
    assert got["customer_days"].now == pytest.approx(93.0)
    assert (got["seat_use_28d"].now, got["seat_use_28d"].before, got["seat_use_28d"].value) == (4, 10, 0.4)
    assert got["seats"].value == pytest.approx(math.log1p(10))
    assert got["mrr"].value == pytest.approx(math.log1p(1200.0))
    assert [got[n].value for n in ("tier:enterprise", "tier:starter", "plan:Pro")] == [0.0, 1.0, 1.0]
    assert reasons.sentence("seat_use_28d", got["seat_use_28d"]) == "4 of 10 seats used in the last 28 days"
    # the record's tenure and the events' differ (93 vs 40 days): two "customer for" sentences contradicted
    assert reasons.sentence("customer_days", got["customer_days"]) == "customer for 93 days"
    assert reasons.sentence("tenure_days", got["tenure_days"]) == "first event 40 days ago"
    assert reasons.sentence("renewal_within_30d", got["renewal_within_30d"]) == (
        "the contract renews within 30 days (10 days from now)"
    )


def test_unknown_or_stale_account_facts_are_unknown_features() -> None:
    """No record, or a renewal date gone by, gives unknown (None) features, which the model imputes."""
    spec = FeatureSpec(SPEC.terms, SPEC.numerics, 3, tiers=("starter",))
    events = [_event(d) for d in range(10)]
    ((_, unknown),) = features.replay(spec, events, [T0 + 10 * DAY])
    by_name = dict(zip(spec.names, features.values(unknown), strict=True))
    assert [by_name[n] for n in (*features.ACCOUNT_V3, "tier:starter")] == [None] * 8
    ((_, stale),) = features.replay(spec, events, [T0 + 10 * DAY], _account(renewal_date="2026-11-30", tier="gold"))
    by_name = dict(zip(spec.names, features.values(stale), strict=True))
    assert by_name["days_to_renewal"] is None
    assert by_name["renewal_within_30d"] is None
    assert by_name["tier:starter"] == 0.0  # a known record of another tier


def test_spec_version_3_round_trips_and_only_it_has_account_features() -> None:
    """The account vocabulary is stored in the spec; older versions have no account features and refuse one."""
    spec = FeatureSpec(SPEC.terms, SPEC.numerics, 3, tiers=("growth",), plans=("Team",))
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert spec.uses_accounts
    assert spec.names[-2:] == ["tier:growth", "plan:Team"]
    v2 = FeatureSpec(SPEC.terms, SPEC.numerics, 2)
    assert not v2.uses_accounts
    assert "days_to_renewal" not in v2.names
    assert "account" not in v2.to_json()
    with pytest.raises(ValueError, match="spec version 3"):
        FeatureSpec(SPEC.terms, SPEC.numerics, 2, tiers=("growth",))


@pytest.mark.parametrize(("value", "text"), [(-0.04, "0"), (-0.4, "-0.4"), (5.96, "6"), (-12.4, "-12"), (0.0, "0")])
def test_numbers_in_sentences_never_read_minus_zero(value: float, text: str) -> None:
    assert (
        reasons.sentence("min28:NPS Submitted.score", features.Explained(value, value, None))
        == f"NPS submitted with score as low as {text} in the last 28 days"
    )


def test_a_change_from_nothing_to_nothing_is_not_new() -> None:
    """A gone-dark account scored 10 weeks after its last event has 0 events now and 0 in its baseline: the reason
    says it is still at zero, where it said 'new' (which reads as something that appeared)."""
    nothing = features.Explained(0.0, 0.0, 0.0)
    assert reasons.sentence("activity_vs_baseline", nothing) == (
        "activity still at zero against the last 8 weeks (0 vs 0 events a week)"
    )
    assert reasons.sentence("rate:Invoice Sent", nothing) == (
        "invoice sent not once in the last 14 days, nor in the 8 weeks before"
    )
    assert reasons.sentence("rate:Invoice Sent", features.Explained(0.7, 1.0, 0.0)) == (
        "invoice sent once a week in the last 14 days, not once in the 8 weeks before"
    )


def test_counts_in_reasons_are_words_not_plural_markers() -> None:
    """Invoice sent once / 9 times, 1 active user / 2 active users: never 'time(s)' or 'user(s)'."""
    assert reasons.sentence("count28:Invoice Sent", features.Explained(0.1, 1.0)) == (
        "invoice sent once in the last 28 days"
    )
    assert reasons.sentence("count28:Invoice Sent", features.Explained(0.9, 9.0)) == (
        "invoice sent 9 times in the last 28 days"
    )
    assert reasons.sentence("active_users_7d", features.Explained(1.0, 1.0)) == "1 active user in the last 7 days"
    assert reasons.sentence("active_users_7d", features.Explained(2.0, 2.0)) == "2 active users in the last 7 days"


def test_a_young_accounts_baseline_is_named_by_its_length_not_as_eight_weeks() -> None:
    """Five weeks of history (three of baseline before the last two): the reasons said 'against the last 8 weeks'
    while the baseline held three, as for every account in the first weeks after a worker starts."""
    events = [_event(d, user="u1") for d in range(35)] + [_event(d, user="u2") for d in range(0, 21, 2)]
    got = _features(events, 35)
    assert reasons.sentence("active_users_vs_baseline", got["active_users_vs_baseline"]).startswith(
        "active users down 50% against the last 3 weeks ("
    )
    assert "against the last 3 weeks (" in reasons.sentence("activity_vs_baseline", got["activity_vs_baseline"])
    assert "against the last 3 weeks (" in reasons.sentence("activity_7d_vs_baseline", got["activity_7d_vs_baseline"])
    assert "against the last 3 weeks (" in reasons.sentence("rate:Login", got["rate:Login"])
    assert "regular users of the 3 weeks before " in reasons.sentence(
        "baseline_users_retained", got["baseline_users_retained"]
    )
    assert reasons.sentence("top_user_days_away", got["top_user_days_away"]).startswith(
        "the most active user of the 3 weeks before "
    )
    # the full baseline keeps its words
    full = _features([_event(d, user="u1") for d in range(70)], 70)
    assert "against the last 8 weeks (" in reasons.sentence("rate:Login", full["rate:Login"])


def test_one_day_is_singular_in_reasons() -> None:
    """'last invoice sent 1 days ago', 'customer for 1 days': a CSM reads '1 day'."""
    one = features.Explained(1.0, 1.0)
    assert reasons.sentence("since:Invoice Sent", one) == "last invoice sent 1 day ago"
    assert reasons.sentence("since:Invoice Sent", features.Explained(3.0, 3.0)) == "last invoice sent 3 days ago"
    assert reasons.sentence("since:Invoice Sent", features.Explained(70.0, 70.0, 1.0)) == (
        "invoice sent not once in the last 1 day"
    )
    assert reasons.sentence("days_since_last_event", one) == "no events for 1 day"
    assert reasons.sentence("days_since_last_user_event", one) == "no user activity for 1 day"
    assert reasons.sentence("tenure_days", one) == "first event 1 day ago"
    assert reasons.sentence("customer_days", one) == "customer for 1 day"
    assert reasons.sentence("days_to_renewal", one) == "the contract renews in 1 day"
    assert reasons.sentence("renewal_within_30d", features.Explained(1.0, 1.0)) == (
        "the contract renews within 30 days (1 day from now)"
    )
    assert reasons.sentence("seats", one) == "1 seat bought"
    assert reasons.sentence("top_user_days_away", features.Explained(1.0, 1.0, 5.0)).endswith(
        "has not been seen for 1 day"
    )


def test_money_and_large_numbers_in_reasons_read_as_on_every_channel() -> None:
    """MRR reads "$12,500 MRR" (it read "MRR 12500") and counts of ten thousand or more have separators."""
    assert reasons.sentence("mrr", features.Explained(12500.0, 12500.0)) == "$12,500 MRR"
    assert reasons.sentence("activity_vs_baseline", features.Explained(-0.6, 12000.0, 30000.0)) == (
        "activity down 60% against the last 8 weeks (12,000 vs 30,000 events a week)"
    )


NESTED = FeatureSpec(
    (Term("Payment Failed"), Term("Payment Failed", ("payment", "status"), "failed"), Term("Login", "role", "admin")),
    (NumericProp("NPS Submitted", ("survey", "score")),),
)


def test_nested_terms_and_numerics_are_read_by_their_path() -> None:
    """``Payment Failed[payment.status=failed]`` counts the nested object and its dotted spelling alike, not another
    value, a list or a path elsewhere; ``NPS Submitted.survey.score`` keeps the 28-day low and the latest."""
    events = [
        _event(1, "Payment Failed", None, payment={"status": "failed", "amount": 49}),
        _event(2, "Payment Failed", None, **{"payment.status": "failed"}),
        _event(3, "Payment Failed", None, payment={"status": "retrying"}),
        _event(4, "Payment Failed", None, payment=[{"status": "failed"}]),
        _event(5, "Payment Failed", None, status="failed"),
        _event(6, "NPS Submitted", survey={"score": 3}),
        _event(7, "NPS Submitted", survey={"score": 8, "extra": [1]}),
        _event(8, "NPS Submitted", survey={"score": "9"}),  # a string is no number
        _event(9, "Login", role="admin", plan={"tier": "pro"}),
    ]
    ((_, explained),) = features.replay(NESTED, events, [T0 + 10 * DAY])
    got = dict(zip(NESTED.names, explained, strict=True))
    assert got["count28:Payment Failed"].now == 5
    assert got["count28:Payment Failed[payment.status=failed]"].now == 2
    assert got["min28:NPS Submitted.survey.score"].value == 3
    assert got["last:NPS Submitted.survey.score"].value == 8
    assert got["count28:Login[role=admin]"].now == 1
    assert NESTED.nested_events == {"Payment Failed", "NPS Submitted"}


def test_a_spec_with_paths_round_trips_and_refuses_paths_no_event_gives() -> None:
    """A path is a list in the model file and comes back a path (same digest); a path of one key, a key with a dot,
    ``[``, ``]`` or ``=`` in it, or a property neither a key nor a list is refused in one sentence."""
    doc = NESTED.to_json()
    assert doc["terms"][1] == {"event": "Payment Failed", "property": ["payment", "status"], "value": "failed"}
    assert doc["numerics"] == [{"event": "NPS Submitted", "property": ["survey", "score"]}]
    again = FeatureSpec.from_json(orjson.loads(orjson.dumps(doc)))
    assert again == NESTED
    assert again.digest == NESTED.digest
    assert again.names == NESTED.names
    for bad in (["payment"], ["payment.status", "code"], ["payment", "sta=tus"], ["a", "[0]"], [], 7):
        broken = {**doc, "terms": [{"event": "Payment Failed", "property": bad, "value": "failed"}]}
        with pytest.raises(ValueError, match="property"):
            FeatureSpec.from_json(broken)
    with pytest.raises(ValueError, match="property path"):
        FeatureSpec.from_json({**doc, "numerics": [{"event": "NPS", "property": ["a", "b]"]}]})


def test_a_model_file_from_before_nested_properties_scores_exactly_as_before() -> None:
    """A model trained before nested properties (its dotted keys, ``payment.status``, are top-level keys) loads and
    scores these events to the same risks, bit for bit, as the Preempt that wrote it (computed with it, 2026-12-03):
    it still counts only the flat ``{"payment.status": …}`` spelling, never the nested object it never read."""
    from rules.risk.model import load_risk_model
    from tests.unit.rules.risk_support import GOLDEN

    model = load_risk_model(GOLDEN.with_name("risk-model-top-level-properties.json"))
    events = []
    for day in range(60):
        events.append(_event(day, role="admin", plan={"tier": "pro"}))
        if day % 9 == 0:
            flat = {"payment.status": "failed", "payment.amount": 40 + day}
            events.append(_event(day, "Payment Failed", None, n=60, **flat))
        if day % 4 == 1:
            events.append(_event(day, "Payment Failed", None, n=120, payment={"status": "failed", "amount": 10 + day}))
        if day % 11 == 2:
            events.append(_event(day, "NPS Submitted", n=180, score=day % 10, survey={"score": 9 - day % 10}))
    ticks = [T0 + d * DAY for d in (10, 20, 30, 45, 61)]
    risks = [model.score(features.values(e)).risk for _, e in features.replay(model.spec, events, ticks)]
    assert risks == [
        0.11074401837522925,
        0.13184074033055887,
        0.13755344785385454,
        0.09204631842559916,
        0.09451730305286898,
    ]
