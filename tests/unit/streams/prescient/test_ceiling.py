"""The story oracle: the report's upper bound on what any rule can catch at a given alert volume."""

from __future__ import annotations

from rules.evaluation import DAY, evaluate
from schemas.outcome import collect
from streams.prescient.ceiling import ORACLE_RULE, best_day, story_oracle
from streams.simulate.files import account_outcome
from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.outcomes import churn_chance, trouble_day

START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z


def _sim(accounts: int, seed: int) -> Simulation:
    return Simulation(SimulationConfig(seed=seed, accounts=accounts, start_ms=START_MS, days=180, lifecycle=True))


def test_the_oracle_alerts_the_likeliest_churns_once_each_never_before_their_trouble_shows() -> None:
    """The oracle spends the volume on the accounts with the best chances, one alert each, on a day within the
    history, after the warm-up and never before the account's trouble shows."""
    sim = _sim(200, 21)
    found = story_oracle(sim.accounts, START_MS, 180, 40, 7, 14, 60)
    assert len(found.alerts) == 40
    assert {a.rule_id for a in found.alerts} == {ORACLE_RULE}
    by_id = {acc.account_id: acc for acc in sim.accounts}
    assert len({a.account_id for a in found.alerts}) == 40
    chances = {acc.account_id: best_day(acc, 180, 7, 14, 60)[0] for acc in sim.accounts}
    weakest_chosen = min(chances[a.account_id] for a in found.alerts)
    assert all(chances[i] <= weakest_chosen for i in chances.keys() - {a.account_id for a in found.alerts})
    assert found.expected_caught == sum(chances[a.account_id] for a in found.alerts)
    for alert in found.alerts:
        acc = by_id[alert.account_id]
        day = round((alert.fired_at * 1000 - START_MS) / (DAY * 1000))
        assert (alert.fired_at * 1000 - START_MS) % (DAY * 1000) == 0  # at the start of a day
        assert (acc.plan.joined_day or 0) + 7 <= day < 180
        trouble = trouble_day(acc.persona, acc.plan)
        assert trouble is None or day >= trouble
        assert churn_chance(acc.persona, acc.plan, acc.outcome.renewal_day, day, 14, 60) == chances[acc.account_id]
    assert story_oracle(sim.accounts, START_MS, 180, 0, 7, 14, 60).alerts == ()


def test_the_oracle_catches_about_what_it_expects() -> None:
    """On a large history the oracle's alerts, evaluated like any rule's, catch in time about the churns its
    chances add up to, at a precision well above what a troubled persona's odds alone would give."""
    sim = _sim(1000, 22)
    outcomes = collect(account_outcome(a, START_MS) for a in sim.accounts)
    found = story_oracle(sim.accounts, START_MS, 180, 220, 7, 14, 60)
    score = evaluate(list(found.alerts), outcomes, 60 * DAY, 14 * DAY).overall
    assert score.alerted_accounts == 220
    assert abs(score.caught_at_lead - found.expected_caught) < 0.1 * found.expected_caught
    assert score.precision is not None
    assert score.precision > 0.7
