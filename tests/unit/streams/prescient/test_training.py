"""Training's vocabulary and samples on hand-made histories (the fit itself is exercised by test_train)."""

from __future__ import annotations

import math

import pytest

from schemas.event import Event, format_ts
from schemas.outcome import AccountOutcome, collect
from streams.prescient.training import OUTCOME_EVENT_NAMES, build_spec, collect_samples

DAY = 86400.0
T0 = 1_795_392_000.0  # a UTC midnight


def _events() -> list[Event]:
    events = []
    for account in ("a", "b", "c"):
        for day in range(40):
            ts = T0 + day * DAY + 3600
            events.append(
                Event(f"{account}-l{day}", "Login", account, ts, "u1", {"role": "admin", "session": f"s{day}"})
            )
            if day % 10 == 0:
                events.append(Event(f"{account}-n{day}", "NPS", account, ts + 60, "u1", {"score": day % 7 + 2}))
    events.append(Event("c-x", "Subscription Cancelled", "c", T0 + 30 * DAY, None, {}))
    return sorted(events, key=lambda e: e.ts)


def test_vocabulary_comes_from_the_events() -> None:
    """Event names and low-cardinality property values become terms; ids and outcome events do not."""
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES)
    labels = {t.label for t in spec.terms}
    assert {"Login", "NPS"} <= labels
    assert not any(label.startswith("Login[session=") for label in labels)  # 40 distinct values: an id
    assert "Subscription Cancelled" not in labels
    assert [n.label for n in spec.numerics] == ["NPS.score"]


def test_only_listed_events_when_asked() -> None:
    """``only`` restricts the vocabulary to the listed event names."""
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES, only=frozenset({"NPS"}))
    assert {t.event for t in spec.terms} == {"NPS"}


def test_samples_are_labelled_by_churn_within_the_horizon() -> None:
    """Weekly snapshots after the warm-up; 1 when churn follows within the horizon; none after churn."""
    outcomes = collect(
        [
            AccountOutcome(account_id="a", outcome="renewed", at=format_ts(T0 + 90 * DAY)),
            AccountOutcome(account_id="c", outcome="churned", at=format_ts(T0 + 30 * DAY + 7200)),
        ]
    )
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES)
    samples = collect_samples(spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=14 * DAY)
    got = sorted(zip(samples.accounts, [(t - T0) / DAY for t in samples.times], samples.labels, strict=True))
    # ticks on days 8, 15, 22, 29, 36; warm from day 15; b has no outcome; c churns on day 30.08
    assert got == [
        ("a", 15.0, 0),
        ("a", 22.0, 0),
        ("a", 29.0, 0),
        ("a", 36.0, 0),
        ("c", 15.0, 0),
        ("c", 22.0, 1),
        ("c", 29.0, 1),
    ]
    late_left_out = collect_samples(
        spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=14 * DAY, min_lead=7 * DAY
    )
    assert [
        (a, (t - T0) / DAY) for a, t in zip(late_left_out.accounts, late_left_out.times, strict=True) if a == "c"
    ] == [("c", 15.0), ("c", 22.0)]


def test_snapshots_between_the_horizon_and_the_negative_horizon_are_left_out() -> None:
    """With a 10-day horizon and a 20-day negative horizon, c's snapshot 15 days before its churn is neither label."""
    outcomes = collect(
        [
            AccountOutcome(account_id="a", outcome="renewed", at=format_ts(T0 + 90 * DAY)),
            AccountOutcome(account_id="c", outcome="churned", at=format_ts(T0 + 30 * DAY + 7200)),
        ]
    )
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES)
    samples = collect_samples(
        spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=14 * DAY, negative_horizon=20 * DAY
    )
    got = sorted(zip(samples.accounts, [(t - T0) / DAY for t in samples.times], samples.labels, strict=True))
    assert [g for g in got if g[0] == "c"] == [("c", 22.0, 1), ("c", 29.0, 1)]  # day 15 (15.1 d ahead) left out
    assert len([g for g in got if g[0] == "a"]) == 4  # a renews: every snapshot stays a retained example
    with pytest.raises(ValueError, match="negative horizon"):
        collect_samples(spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=0, negative_horizon=DAY)


def test_events_out_of_order_beyond_the_lateness_are_ignored_like_the_engine() -> None:
    """An event older than the watermark is counted as late and not used, as the engine does."""
    events = _events()
    events.append(Event("old", "Login", "a", T0 + 3 * DAY, "u9", {}))
    samples = collect_samples(build_spec(events), events, collect([]), horizon=DAY, every=7 * DAY, warmup=DAY)
    assert samples.late == 1


def test_account_records_add_their_features_and_vocabulary() -> None:
    """With records the spec is version 3 with the tiers enough accounts share; samples carry the record's facts."""
    from datetime import date

    from schemas.account import Account

    records = {
        "a": Account(account_id="a", tier="pro", seats=4, renewal_date=date(2026, 12, 20)),
        "b": Account(account_id="b", tier="pro", seats=8),
        "c": Account(account_id="c", tier="free"),
    }
    events_only = build_spec(_events(), OUTCOME_EVENT_NAMES)
    assert (events_only.version, events_only.uses_accounts) == (2, False)
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES, min_account_share=0.5, accounts_file=records)
    assert (spec.version, spec.tiers, spec.plans) == (3, ("pro",), ())  # "free": 1 of 3 accounts, under 50 %
    outcomes = collect([AccountOutcome(account_id=a, outcome="renewed", at=format_ts(T0 + 90 * DAY)) for a in "abc"])
    samples = collect_samples(
        spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=14 * DAY, accounts_file=records
    )
    column = {name: i for i, name in enumerate(spec.names)}
    first = {
        a: row for a, t, row in zip(samples.accounts, samples.times, samples.rows, strict=True) if t == T0 + 15 * DAY
    }
    assert first["a"][column["days_to_renewal"]] == pytest.approx(math.log1p(12.0))  # day 15 = 2026-12-08
    assert first["b"][column["days_to_renewal"]] is None
    assert [first[a][column["tier:pro"]] for a in "abc"] == [1.0, 1.0, 0.0]
    assert first["a"][column["seat_use_28d"]] == pytest.approx(0.25)  # one user of 4 seats
