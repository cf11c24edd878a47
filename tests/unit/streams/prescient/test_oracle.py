"""The story oracle: the report's upper bound on what a rule can expect to catch at a given alert volume."""

from __future__ import annotations

import pytest

from rules.evaluation import DAY, evaluate
from schemas.outcome import collect
from streams.prescient.oracle import ORACLE_RULE, best_alerts, story_oracle
from streams.simulate.files import account_outcome
from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.outcomes import churn_between, signal_day

START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z


def _sim(accounts: int, seed: int) -> Simulation:
    return Simulation(SimulationConfig(seed=seed, accounts=accounts, start_ms=START_MS, days=180, lifecycle=True))


def test_the_oracle_alerts_the_likeliest_churns_never_before_their_trouble_shows() -> None:
    """The oracle spends the volume on the accounts with the best chances, alerting each at the start of days
    within the history, never before the account's trouble shows or its first events."""
    sim = _sim(200, 21)
    found = story_oracle(sim.accounts, START_MS, 180, 40, 14, 60)
    assert {a.rule_id for a in found.alerts} == {ORACLE_RULE}
    chosen = {a.account_id for a in found.alerts}
    assert len(chosen) == 40
    chances = {acc.account_id: best_alerts(acc, 180, 14, 60)[0] for acc in sim.accounts}
    weakest_chosen = min(chances[a] for a in chosen)
    assert all(chances[i] <= weakest_chosen for i in chances.keys() - chosen)
    assert found.expected_caught == pytest.approx(sum(chances[a] for a in chosen))
    by_id = {acc.account_id: acc for acc in sim.accounts}
    for alert in found.alerts:
        acc = by_id[alert.account_id]
        offset_ms = alert.fired_at * 1000 - START_MS
        assert offset_ms % (DAY * 1000) == 0  # at the start of a day
        day = round(offset_ms / (DAY * 1000))
        assert (acc.plan.joined_day or 0) <= day < 180
        trouble = signal_day(acc.persona, acc.plan)
        assert trouble is None or day >= trouble
    assert story_oracle(sim.accounts, START_MS, 180, 0, 14, 60).alerts == ()


def test_the_oracles_alerts_cover_its_chance_with_few_alerts() -> None:
    """With a warning window narrower than a persona's spread of churn days, the oracle alerts an account on
    several days, and those days give the whole chance it ranked the account by."""
    sim = _sim(200, 23)
    spread = 0
    for acc in sim.accounts:
        chance, days = best_alerts(acc, 180, 14, 30)
        if not days:
            assert chance == 0
            continue
        covered = {c for day in days for c in range(day + 14, day + 30)}  # churn days the alerts warn of in time
        renewal = acc.outcome.renewal_day
        assert sum(churn_between(acc.persona, acc.plan, renewal, c, c + 1) for c in covered) == pytest.approx(chance)
        assert len(days) <= (179 - days[0]) // 16 + 2  # side-by-side windows, and one cut short at the end
        spread = max(spread, len(days))
    assert spread >= 2  # a 16-day window cannot hold a quiet champion's 31 days of possible churn


def test_the_oracle_catches_about_what_it_expects() -> None:
    """On a large history the oracle's alerts, evaluated like any rule's, catch in time about the churns its
    chances add up to, at a precision above 70 %."""
    sim = _sim(1000, 22)
    outcomes = collect(account_outcome(a, START_MS) for a in sim.accounts)
    found = story_oracle(sim.accounts, START_MS, 180, 220, 14, 60)
    score = evaluate(list(found.alerts), outcomes, 60 * DAY, 14 * DAY).overall
    assert score.alerted_accounts == 220
    assert abs(score.caught_at_lead - found.expected_caught) < 0.1 * found.expected_caught
    assert score.precision is not None
    assert score.precision > 0.7
