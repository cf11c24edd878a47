"""The default pack over 30 simulated days: each problem persona gets its alert, healthy ones none.

This is the issue's acceptance check, run on the backtest core with in-process simulated events
(no files): the same rules, simulator personas and engine as `preempt backtest`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rules.backtest import run_backtest
from rules.engine import RuleEngine
from rules.loader import load_rules
from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.personas import Persona

PACK = Path(__file__).resolve().parents[3] / "rules" / "packs" / "default"
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30

# persona → rules that must fire for every account of that persona
EXPECTED: dict[Persona, set[str]] = {
    Persona.CHAMPION_QUIET: {"champion-gone-quiet"},
    Persona.DECAYING: {"weekly-active-users-drop"},
    Persona.DETRACTOR: {"nps-detractor"},
    Persona.GONE_DARK: {"account-inactive-14d"},
    Persona.INTEGRATION_ERRORS: {"api-error-spike", "api-error-rate-high"},
    Persona.LOW_SEAT_UTILISATION: {"seat-utilisation-low"},
    Persona.ONBOARDING_STALLED: {"onboarding-stalled"},
    Persona.PAYMENT_NOT_RECOVERED: {"payment-not-recovered", "cancel-after-payment-failure"},
}
SILENT = {Persona.HEALTHY, Persona.PROMOTER, Persona.PAYMENT_RECOVERED}


@pytest.fixture(scope="module")
def fired_by_persona() -> tuple[dict[str, Persona], dict[str, set[str]]]:
    """Run the default pack over 100 simulated accounts; rules fired per account."""
    simulation = Simulation(SimulationConfig(seed=7, accounts=100, start_ms=int(START.timestamp() * 1000), days=DAYS))
    personas = {
        account.account.account_id: Persona(tag.removeprefix("persona:"))
        for account in simulation.accounts
        for tag in account.account.tags
        if tag.startswith("persona:")
    }
    engine = RuleEngine(load_rules(PACK))
    until = START.timestamp() + DAYS * 86400
    result = run_backtest(engine, enumerate(simulation.events(), start=1), until=until, allowed_lateness=5.0)
    fired: dict[str, set[str]] = defaultdict(set)
    for alert in result.alerts:
        fired[alert.account_id].add(alert.rule_id)
    return personas, fired


@pytest.mark.parametrize("persona", sorted(EXPECTED), ids=str)
def test_problem_persona_gets_its_alert(fired_by_persona, persona: Persona):
    """Every account of a problem persona gets the rule(s) written for that problem."""
    personas, fired = fired_by_persona
    accounts = [a for a, p in personas.items() if p is persona]
    assert accounts, f"the simulation has no {persona} account"
    for account in accounts:
        assert EXPECTED[persona] <= fired[account], f"{account} ({persona}) fired {sorted(fired[account])}"


def test_healthy_accounts_get_no_alert(fired_by_persona):
    """Healthy, promoter and recovered-payment accounts get no alert at all."""
    personas, fired = fired_by_persona
    noisy = {a: sorted(fired[a]) for a, p in personas.items() if p in SILENT and fired[a]}
    assert noisy == {}
