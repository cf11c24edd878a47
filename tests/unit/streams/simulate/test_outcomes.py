"""Simulated outcomes: they follow the personas with noise, and the lifecycle ends churned accounts."""

from __future__ import annotations

from collections import Counter

import pytest

from rules.evaluation import AlertPoint, evaluate
from schemas.event import format_ts
from schemas.outcome import AccountOutcome, collect
from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.local_time import DAY_MS
from streams.simulate.outcomes import churn_between, signal_day
from streams.simulate.personas import Persona, Plan

START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z


def _sim(lifecycle: bool, accounts: int = 40, days: int = 90, seed: int = 3) -> Simulation:
    return Simulation(SimulationConfig(seed=seed, accounts=accounts, start_ms=START_MS, days=days, lifecycle=lifecycle))


def test_outcomes_follow_the_personas_with_noise() -> None:
    """Over many accounts troubled personas mostly churn, healthy ones mostly renew, and neither always."""
    accounts = _sim(False, accounts=1000, days=180).accounts
    by_persona: dict[Persona, Counter[str]] = {}
    for acc in accounts:
        by_persona.setdefault(acc.persona, Counter())[acc.outcome.outcome] += 1
    gone_dark, healthy = by_persona[Persona.GONE_DARK], by_persona[Persona.HEALTHY]
    decaying = by_persona[Persona.DECAYING]
    assert gone_dark["churned"] > 0.7 * gone_dark.total()
    assert 0 < healthy["churned"] < 0.15 * healthy.total()  # silent churn exists, but is rare
    assert 0 < decaying["renewed"] < decaying["churned"]  # some decaying accounts recover
    assert by_persona[Persona.PROMOTER]["expanded"] > 0


def test_decaying_accounts_that_renew_recover_in_their_usage() -> None:
    """A decaying account that renews has a recovery day before its renewal; one that churns has none."""
    for acc in _sim(False, accounts=1000, days=180).accounts:
        if acc.persona is Persona.DECAYING and acc.outcome.outcome == "renewed":
            assert acc.plan.recover_day is not None
            assert acc.plan.recover_day < acc.outcome.day
        elif acc.outcome.churned:
            assert acc.plan.recover_day is None


def test_outcomes_are_deterministic_and_leave_other_draws_alone() -> None:
    """Same seed → same outcomes; and the plans of accounts are those the seed always gave."""
    one, two = _sim(False), _sim(False)
    assert [a.outcome for a in one.accounts] == [a.outcome for a in two.accounts]
    assert [a.plan for a in one.accounts] == [a.plan for a in two.accounts]


def test_lifecycle_silences_churned_accounts_and_announces_outcomes() -> None:
    """With the lifecycle, a churned account's last event is its Subscription Cancelled, at its churn time."""
    sim = _sim(True)
    last: dict[str, tuple[float, str]] = {}
    announced: dict[str, str] = {}
    for event in sim.events():
        last[event.account_id] = max(last.get(event.account_id, (0.0, "")), (event.ts, event.event))
        if event.event.startswith("Subscription ") and event.event != "Subscription Downgraded":
            announced[event.account_id] = event.event
    end_ms = START_MS + 90 * DAY_MS
    for acc in sim.accounts:
        at_ms = acc.outcome.at_ms(START_MS)
        if acc.outcome.churned and at_ms < end_ms:
            assert last[acc.account_id] == (at_ms / 1000, "Subscription Cancelled")
        if at_ms < end_ms:
            expected = {
                "churned": "Subscription Cancelled",
                "renewed": "Subscription Renewed",
                "contracted": "Subscription Contracted",
                "expanded": "Subscription Expanded",
            }
            assert announced[acc.account_id] == expected[acc.outcome.outcome]
        else:
            assert acc.account_id not in announced


def test_without_lifecycle_events_do_not_change() -> None:
    """Outcomes decided or not, a run without the lifecycle sends no Subscription events."""
    assert not any(e.event == "Subscription Cancelled" for e in _sim(False, accounts=30, days=60).events())


def test_account_records_carry_the_contract_the_outcomes_keep() -> None:
    """Every record has seats, customer_since and renewal_date; renewals and silent churns fall on that date."""
    from datetime import UTC, datetime, timedelta

    sim = _sim(False, accounts=300, days=180)
    start = datetime.fromtimestamp(START_MS / 1000, tz=UTC)
    on_the_date = 0
    for acc in sim.accounts:
        record = acc.account
        assert record.seats == acc.seats
        assert record.customer_since is not None
        assert record.renewal_date is not None
        assert record.customer_since <= record.renewal_date
        assert record.renewal_date == (start + timedelta(days=acc.outcome.renewal_day)).date()
        if not acc.outcome.churned or acc.outcome.reason not in {"unhappy", "usage faded", "champion left"}:
            on_the_date += acc.outcome.day == acc.outcome.renewal_day
        if not acc.outcome.churned:
            assert acc.outcome.day == acc.outcome.renewal_day  # renewed, contracted, expanded: on the contract date
        if acc.plan.joined_day is not None:  # a new account became a customer the day it joined
            assert record.customer_since == (start + timedelta(days=acc.plan.joined_day)).date()
    assert on_the_date > 200


def test_the_contract_fields_say_nothing_of_the_outcome() -> None:
    """Renewal dates are drawn alike whatever the outcome: churned and retained accounts spread over the same range."""
    accounts = [a for seed in (1, 2, 3) for a in _sim(False, accounts=1000, days=180, seed=seed).accounts]
    churned = sorted(a.outcome.renewal_day for a in accounts if a.outcome.churned)
    kept = sorted(a.outcome.renewal_day for a in accounts if not a.outcome.churned)
    assert (churned[0], churned[-1]) == (kept[0], kept[-1]) == (90, 240)
    assert abs(sum(churned) / len(churned) - sum(kept) / len(kept)) < 5  # measured: 2.4 days apart
    assert not any(t.startswith(("outcome:", "churn")) for a in accounts for t in a.account.tags)


def test_churn_between_follows_the_outcome_model() -> None:
    """The chance of a churn in a span of days is the persona's churn odds times the share of its lags that land
    there, and a silent persona's odds only when its renewal does."""
    dark = Plan(dark_day=40)
    assert churn_between(Persona.GONE_DARK, dark, 150, 54, 100) == pytest.approx(0.9)  # lags 20–50: days 60–90
    assert churn_between(Persona.GONE_DARK, dark, 150, 74, 120) == pytest.approx(0.9 * 17 / 31)  # days 74–90 left
    assert churn_between(Persona.GONE_DARK, dark, 150, 114, 160) == 0.0  # every churn gone by then
    unpaid = Plan(billing_day=30, payment_fails=True, payment_recovers=False)
    # lags 12–30 days after the failed invoice: 12 and 13 come before day 44
    assert churn_between(Persona.PAYMENT_NOT_RECOVERED, unpaid, 150, 44, 90) == pytest.approx(0.85 * 17 / 19)
    healthy = Plan()
    assert churn_between(Persona.HEALTHY, healthy, 150, 114, 160) == pytest.approx(0.05)
    assert churn_between(Persona.HEALTHY, healthy, 150, 151, 200) == 0.0  # renewal before the span
    assert churn_between(Persona.HEALTHY, healthy, 150, 94, 150) == 0.0  # the span ends before the renewal
    assert signal_day(Persona.GONE_DARK, dark) == 40
    assert signal_day(Persona.HEALTHY, healthy) is None


def test_churn_between_matches_the_simulated_draws() -> None:
    """Over many simulated accounts, the churns that fall 14–60 days after the day the trouble shows number what
    the chances add up to (within three standard deviations): the chance and the draw tell the same story."""
    expected = variance = 0.0
    happened = 0
    for acc in _sim(False, accounts=2000, days=180, seed=5).accounts:
        day = signal_day(acc.persona, acc.plan)
        if day is None:
            day = acc.outcome.renewal_day - 30
        chance = churn_between(acc.persona, acc.plan, acc.outcome.renewal_day, day + 14, day + 60)
        expected += chance
        variance += chance * (1 - chance)
        happened += acc.outcome.churned and day + 14 <= acc.outcome.day < day + 60
    assert expected > 300  # the study is big enough to mean something
    assert abs(happened - expected) < 3 * variance**0.5, (happened, expected)


def test_the_span_of_churn_days_is_the_evaluations_warning_window() -> None:
    """An alert at the start of day d warns in time (at least 14, at most 60 days ahead) of a churn at business
    hours exactly when the churn's day lies in d + 14 … d + 59, the span the oracle's chances use."""
    acc = next(a for a in _sim(True, accounts=200, days=90, seed=3).accounts if a.outcome.churned)
    churn_day, churn_ms = acc.outcome.day, acc.outcome.at_ms(START_MS)
    outcomes = collect([AccountOutcome(account_id="acc-x", outcome="churned", at=format_ts(churn_ms / 1000))])
    for day in (churn_day - 61, churn_day - 60, churn_day - 59, churn_day - 14, churn_day - 13, churn_day):
        alert = AlertPoint("r", "acc-x", (START_MS + day * DAY_MS) / 1000)
        caught = evaluate([alert], outcomes, 60 * 86400.0, 14 * 86400.0).overall.caught_at_lead == 1
        in_span = churn_between(Persona.HEALTHY, Plan(), churn_day, day + 14, day + 60) > 0
        assert caught == in_span == (churn_day - 59 <= day <= churn_day - 14), day
