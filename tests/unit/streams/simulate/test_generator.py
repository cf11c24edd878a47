"""The deterministic generator: same seed → same bytes, realistic and well-formed events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from schemas.account import Account
from schemas.event import UsageEvent
from streams.simulate import catalogue as c
from streams.simulate.files import account_line, event_line
from streams.simulate.generator import MAX_JITTER_MS, Simulation, SimulationConfig
from streams.simulate.local_time import DAY_MS
from streams.simulate.personas import Persona

START_MS = 1_795_392_000_000  # 2026-11-23T00:00:00Z, a Monday

SimFactory = Callable[..., Simulation]


@pytest.fixture
def make_sim() -> SimFactory:
    """Factory: ``make_sim(seed=1, accounts=12, days=7)``."""

    def factory(seed: int = 1, accounts: int = 12, days: int | None = 7, start_ms: int = START_MS) -> Simulation:
        return Simulation(SimulationConfig(seed=seed, accounts=accounts, start_ms=start_ms, days=days))

    return factory


def _dump(sim: Simulation) -> bytes:
    return b"".join(event_line(e) for e in sim.events())


def test_same_seed_gives_byte_identical_output(make_sim: SimFactory) -> None:
    """Two runs with the same seed, start and size write the same bytes."""
    assert _dump(make_sim(seed=5)) == _dump(make_sim(seed=5))
    assert [account_line(a) for a in make_sim(seed=5).accounts] == [account_line(a) for a in make_sim(seed=5).accounts]


def test_another_seed_gives_other_events(make_sim: SimFactory) -> None:
    """The seed changes the traffic and the event ids."""
    first, second = list(make_sim(seed=5).events()), list(make_sim(seed=6).events())
    assert {e.event_id for e in first}.isdisjoint(e.event_id for e in second)


def test_event_ids_are_unique(make_sim: SimFactory) -> None:
    """No two events of a run share an id (the pipeline would drop one as a duplicate)."""
    ids = [e.event_id for e in make_sim(accounts=20, days=10).events()]
    assert len(ids) == len(set(ids))


def test_events_are_in_time_order_up_to_a_small_jitter(make_sim: SimFactory) -> None:
    """No event is stamped more than the SDK jitter before one already written (well under 5 s)."""
    newest = 0.0
    worst = 0.0
    for event in make_sim(accounts=20, days=10).events():
        newest = max(newest, event.ts)
        worst = max(worst, newest - event.ts)
    assert 0 < worst <= MAX_JITTER_MS / 1000
    assert MAX_JITTER_MS / 1000 < 5.0


def test_events_stay_inside_the_simulated_period(make_sim: SimFactory) -> None:
    """Every event lies in [start, start + days)."""
    times = [e.ts for e in make_sim(days=5).events()]
    assert min(times) >= START_MS / 1000
    assert max(times) < (START_MS + 5 * DAY_MS) / 1000


def test_every_event_passes_the_event_contract(make_sim: SimFactory) -> None:
    """Written lines validate as UsageEvent (the same check ingestion applies)."""
    for event in make_sim(days=3).events():
        parsed = UsageEvent.model_validate_json(event_line(event))
        assert parsed.account_id == event.account_id


def test_accounts_are_complete_records_tagged_with_their_persona(make_sim: SimFactory) -> None:
    """Each Account has name, tier, plan, MRR, an owner with email and Slack, and a persona tag."""
    sim = make_sim(accounts=len(Persona))
    personas = set()
    for acc in sim.accounts:
        record = Account.model_validate_json(account_line(acc))
        assert record.name
        assert record.tier in ("enterprise", "growth", "starter")
        assert record.plan
        assert record.mrr
        assert record.owner.email
        assert record.owner.slack
        assert record.links.crm
        assert f"persona:{acc.persona.value}" in record.tags
        personas.add(acc.persona)
    assert personas == set(Persona)


def test_traffic_uses_a_real_tracking_plan(make_sim: SimFactory) -> None:
    """A month of traffic contains the product, API, billing, onboarding and NPS events CS rules need."""
    names = Counter(e.event for e in make_sim(accounts=len(Persona), days=30).events())
    for name in (
        c.LOGIN,
        c.DASHBOARD_VIEWED,
        c.FEATURE_USED,
        c.REPORT_EXPORTED,
        c.API_REQUEST,
        c.ONBOARDING_STARTED,
        c.ONBOARDING_STEP_COMPLETED,
        c.ONBOARDING_COMPLETED,
        c.INVOICE_PAID,
        c.INVOICE_PAYMENT_FAILED,
        c.CANCEL_PAGE_VIEWED,
        c.NPS_SUBMITTED,
        c.LICENSE_USAGE_REPORTED,
        c.INTEGRATION_CONNECTED,
    ):
        assert names[name] > 0, name


def test_properties_carry_what_rules_match_on(make_sim: SimFactory) -> None:
    """API calls have an integer status, NPS answers a 0–10 score, feature use a feature name."""
    for event in make_sim(accounts=len(Persona), days=30).events():
        if event.event == c.API_REQUEST:
            assert isinstance(event.properties["status"], int)
        elif event.event == c.NPS_SUBMITTED:
            assert 0 <= event.properties["score"] <= 10
        elif event.event == c.FEATURE_USED:
            assert event.properties["feature"] in c.FEATURES


def test_thirty_days_of_a_hundred_accounts_is_a_realistic_volume(make_sim: SimFactory) -> None:
    """Healthy accounts average hundreds to a few thousand events a month, not millions."""
    sim = make_sim(accounts=len(Persona), days=30)
    per_account = Counter(e.account_id for e in sim.events())
    average = sum(per_account.values()) / len(sim.accounts)
    assert 300 < average < 5000


def test_live_mode_runs_on_past_any_horizon(make_sim: SimFactory) -> None:
    """With no day limit the generator keeps producing (live mode stops it from outside)."""
    events = make_sim(accounts=3, days=None).events()
    times = [next(events).ts for _ in range(3000)]
    assert max(times) > (START_MS + 7 * DAY_MS) / 1000
