"""The persona mix and each persona's story dates."""

from __future__ import annotations

import random

import pytest

from streams.simulate.personas import MIX, Persona, assign_personas, make_plan, persona_counts


def test_mix_proportions_sum_to_one() -> None:
    """The fixed proportions describe the whole population."""
    assert sum(MIX.values()) == pytest.approx(1.0)
    assert set(MIX) == set(Persona)


@pytest.mark.parametrize("accounts", [1, 5, 12, 13, 40, 100, 1000])
def test_counts_add_up_to_the_number_of_accounts(accounts: int) -> None:
    """Every account gets exactly one persona."""
    assert sum(persona_counts(accounts).values()) == accounts


def test_every_persona_appears_once_there_are_enough_accounts() -> None:
    """With at least one account per persona, each story is told at least once."""
    counts = persona_counts(len(Persona))
    assert all(n == 1 for n in counts.values())


def test_large_runs_follow_the_fixed_proportions() -> None:
    """For 1,000 accounts the mix is within one account of the declared shares (after the minimum of one)."""
    counts = persona_counts(1000)
    for persona, share in MIX.items():
        assert abs(counts[persona] - (1 + share * (1000 - len(MIX)))) <= 1


def test_assignment_is_a_seeded_shuffle_of_the_counts() -> None:
    """The same seed assigns the same personas to the same account indexes."""
    first = assign_personas(50, random.Random(1))
    assert first == assign_personas(50, random.Random(1))
    assert sorted(first) == sorted(assign_personas(50, random.Random(2)))


@pytest.mark.parametrize("persona", list(Persona))
@pytest.mark.parametrize("days", [3, 30, 90])
def test_story_dates_fall_inside_the_run(persona: Persona, days: int) -> None:
    """Every date of every plan is a day of the simulated period."""
    for seed in range(20):
        plan = make_plan(persona, days, random.Random(seed))
        dates = [plan.joined_day, plan.decay_day, plan.dark_day, plan.champion_quiet_day, plan.detractor_day]
        dates += [plan.billing_day, plan.nps_day, *(i.day for i in plan.incidents)]
        assert all(0 <= d < days for d in dates if d is not None)


def test_thirty_day_stories_leave_room_for_the_pack_deadlines() -> None:
    """In 30 days, stalled onboarding starts early enough for the 14-day adoption deadline to pass."""
    for seed in range(50):
        plan = make_plan(Persona.ONBOARDING_STALLED, 30, random.Random(seed))
        assert plan.joined_day is not None
        assert plan.joined_day + 14 < 30
        dark = make_plan(Persona.GONE_DARK, 30, random.Random(seed)).dark_day
        assert dark is not None
        assert dark + 14 < 30
