"""The default rule pack against simulated personas: each story fires its rules, healthy accounts none.

A month of ``preempt simulate`` traffic is backtested with the pack (the pure backtest, no files)
for several seeds and start weekdays. Each persona has rules it must fire and rules it may fire
(side effects of its story, e.g. a decaying account's admin also goes quiet); anything else is a
false alarm and fails the test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from rules.backtest import BacktestResult, run_backtest
from rules.engine import RuleEngine
from rules.loader import RuleSet, load_rules
from rules.models import KINDS
from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.local_time import DAY_MS
from streams.simulate.personas import Persona

PACK = Path(__file__).resolve().parents[3] / "rules" / "packs" / "default"
MONDAY_MS = 1_791_158_400_000  # 2026-10-05T00:00:00Z, a Monday
DAYS = 30
ACCOUNTS = 24  # two of each story

P = Persona
MUST: dict[Persona, frozenset[str]] = {
    P.HEALTHY: frozenset(),
    P.PROMOTER: frozenset(),
    P.ONBOARDING_SUCCESS: frozenset(),
    P.PAYMENT_RECOVERED: frozenset(),
    P.ONBOARDING_STALLED: frozenset({"onboarding-stalled", "key-feature-not-adopted"}),
    P.INTEGRATION_ERRORS: frozenset({"api-error-spike", "api-error-rate-high", "integration-disconnected"}),
    P.DECAYING: frozenset({"weekly-active-users-drop", "nps-detractor", "at-risk-usage-drop-and-detractor"}),
    P.GONE_DARK: frozenset(
        {"account-inactive-14d", "champion-gone-quiet", "weekly-active-users-drop", "engagement-score-low"}
    ),
    P.PAYMENT_NOT_RECOVERED: frozenset({"payment-not-recovered", "cancel-after-payment-failure"}),
    P.DETRACTOR: frozenset({"nps-detractor"}),
    P.LOW_SEAT_UTILISATION: frozenset({"seat-utilisation-low"}),
    P.CHAMPION_QUIET: frozenset({"champion-gone-quiet"}),
}
MAY: dict[Persona, frozenset[str]] = {
    # a new team that never finishes onboarding barely logs in and leaves most seats unused
    P.ONBOARDING_STALLED: frozenset(
        {"champion-gone-quiet", "engagement-score-low", "seat-utilisation-low", "account-inactive-14d"}
    ),
    # fading usage takes the admins with it, for small teams every login, and the score falls
    # below 40 (or 40 points within a week) only when the fade is steep
    P.DECAYING: frozenset({"champion-gone-quiet", "engagement-score-low", "account-inactive-14d"}),
}

Backtest = Callable[[int, int], tuple[Simulation, BacktestResult]]


@pytest.fixture(scope="module")
def pack() -> RuleSet:
    """The shipped default pack."""
    return load_rules(PACK)


@pytest.fixture(scope="module")
def backtest(pack: RuleSet) -> Backtest:
    """Factory: ``backtest(seed, start_ms)`` simulates a month and backtests it to the month's end."""

    def run(seed: int, start_ms: int) -> tuple[Simulation, BacktestResult]:
        sim = Simulation(SimulationConfig(seed=seed, accounts=ACCOUNTS, start_ms=start_ms, days=DAYS))
        engine = RuleEngine(pack)
        events = enumerate(sim.events(), start=1)
        accounts = {a.account_id: a.account for a in sim.accounts}
        return sim, run_backtest(
            engine, events, accounts, until=(start_ms + DAYS * DAY_MS) / 1000, allowed_lateness=5.0
        )

    return run


def _fired_by_account(result: BacktestResult) -> dict[str, set[str]]:
    fired: dict[str, set[str]] = defaultdict(set)
    for alert in result.alerts:
        fired[alert.account_id].add(alert.rule_id)
    return fired


# Several seeds, starting on different weekdays (Monday, Thursday, Saturday).
RUNS = [(11, MONDAY_MS), (22, MONDAY_MS + 3 * DAY_MS), (33, MONDAY_MS + 5 * DAY_MS + 7 * 3_600_000)]


@pytest.mark.parametrize(("seed", "start_ms"), RUNS)
def test_each_persona_fires_exactly_its_rules(backtest: Backtest, seed: int, start_ms: int) -> None:
    """Every account fires all rules its persona must and nothing outside must ∪ may."""
    sim, result = backtest(seed, start_ms)
    fired = _fired_by_account(result)
    problems = []
    for acc in sim.accounts:
        must, may = MUST[acc.persona], MAY.get(acc.persona, frozenset())
        got = fired.get(acc.account_id, set())
        if not must <= got or not got <= must | may:
            problems.append(
                f"{acc.account_id} ({acc.persona}): missing {sorted(must - got)}, extra {sorted(got - must - may)}"
            )
    assert not problems, "\n".join(problems)


def test_healthy_accounts_fire_nothing(backtest: Backtest) -> None:
    """Healthy and promoter accounts, and accounts whose payment recovered, get no alert at all."""
    sim, result = backtest(44, MONDAY_MS + 6 * DAY_MS)  # starts on a Sunday
    quiet = {a.account_id for a in sim.accounts if not MUST[a.persona] and a.persona not in MAY}
    assert quiet
    assert [a for a in result.alerts if a.account_id in quiet] == []


def test_every_rule_of_the_pack_fires_for_some_persona(backtest: Backtest, pack: RuleSet) -> None:
    """A month of simulated traffic exercises every rule of the pack."""
    _, result = backtest(11, MONDAY_MS)
    assert {a.rule_id for a in result.alerts} == {r.id for r in pack.rules}


def test_playbooks_render_with_the_account_context(backtest: Backtest) -> None:
    """Every alert's title and playbook render: account name and owner filled in, no template error."""
    sim, result = backtest(22, MONDAY_MS)
    names = {a.account_id: a.account.name for a in sim.accounts}
    for alert in result.alerts:
        assert names[alert.account_id] in alert.title
        assert alert.account.owner["name"] in alert.playbook or names[alert.account_id] in alert.playbook
        assert "{{" not in alert.title + alert.playbook
        assert "template_error" not in alert.evidence.model_dump()


def test_pack_covers_every_kind_with_at_least_twelve_rules(pack: RuleSet) -> None:
    """The default pack has ≥ 12 rules using all ten hand-written kinds (``risk`` needs a model trained
    on the customer's own history, so no pack can ship one)."""
    assert len(pack.rules) >= 12
    assert {r.kind for r in pack.rules} == set(KINDS) - {"risk"}


def test_pack_is_stack_ranked_and_labelled(pack: RuleSet) -> None:
    """Priorities are unique, more severe rules rank higher, every rule has a team and a playbook."""
    ranked = pack.stack_ranked()
    assert len({r.priority for r in ranked}) == len(ranked)
    order = ["critical", "high", "medium", "low", "info"]
    severities = [order.index(r.severity) for r in ranked]
    assert severities == sorted(severities)
    for rule in ranked:
        assert rule.labels.get("team") in ("support", "cs", "billing")
        assert "{{ account.name }}" in rule.playbook or "{{ account.owner.name }}" in rule.playbook


@pytest.mark.parametrize(("value", "users"), [(1.0, "1 weekly active user "), (0.0, "0 weekly active users ")])
def test_weekly_active_users_are_counted_in_words_that_agree_with_the_number(
    pack: RuleSet, value: float, users: str
) -> None:
    """A drop to one user read "1 weekly active users" in the alert's summary and playbook."""
    from rules.templates import render_template

    rule = pack.by_id("weekly-active-users-drop")
    context = {
        "account": {
            "name": "Acme",
            "timezone": "UTC",
            "owner": {"name": "Dana"},
            "links": {"admin": "https://a.example"},
        },
        "evidence": {"value": value, "baseline": 13.0, "drop_pct": 92.3},
        "window": {"start": "2026-11-15T19:00:00Z", "end": "2026-11-22T19:00:00Z"},
    }
    for template, markdown in ((rule.summary, False), (rule.playbook, True)):
        rendered, error = render_template(template, context, markdown=markdown)
        assert error is None
        assert users in " ".join(rendered.split()) + " ", rendered


def test_the_api_error_rate_title_says_how_many_calls_fail(pack: RuleSet) -> None:
    """Two thirds of the calls failing was titled "a quarter of API calls are failing": the title gives the rate."""
    from rules.templates import render_template

    rule = pack.by_id("api-error-rate-high")
    title, error = render_template(rule.title, {"account": {"name": "Acme"}, "evidence": {"value": 0.667}})
    assert error is None
    assert title == "Acme: 67% of API calls are failing"


def test_a_drop_to_no_weekly_active_users_is_titled_in_plain_words(pack: RuleSet) -> None:
    """Nobody logging in all week was titled "weekly active users fell 100% below normal"."""
    from rules.templates import render_template

    rule = pack.by_id("weekly-active-users-drop")
    for value, title in (
        (0.0, "Acme: nobody logged in this week (usually 5 users)"),
        (1.0, "Acme: weekly active users fell 80% below normal"),
    ):
        rendered, error = render_template(
            rule.title,
            {
                "account": {"name": "Acme"},
                "evidence": {"value": value, "baseline": 5.0, "drop_pct": 100.0 - 20 * value},
            },
        )
        assert error is None
        assert rendered == title
