"""Simulated outcomes: they follow the personas with noise, and the lifecycle ends churned accounts."""

from __future__ import annotations

from collections import Counter

from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.local_time import DAY_MS
from streams.simulate.personas import Persona

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
