"""Simulated accounts: the ``Account`` record CS sees, plus the users and story behind it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from schemas.account import Account, AccountLinks, Owner
from streams.simulate.catalogue import (
    CSM_TEAM,
    FEATURES,
    INTEGRATIONS,
    KEY_FEATURE,
    NAME_HEADS,
    NAME_SECTORS,
    NAME_TAILS,
    TIERS,
    Csm,
)
from streams.simulate.outcomes import SimOutcome, decide_outcome
from streams.simulate.personas import Persona, Plan, assign_personas, make_plan, pick_tier


@dataclass(slots=True)
class SimUser:
    """One person at the customer. Admins are the account's champions."""

    user_id: str
    role: str  # "admin" or "member"
    weekday_p: float  # chance of being active on a weekday
    features: tuple[str, ...]
    invited_day: int | None = None  # new accounts: the day the user joins
    last_active_day: int | None = None


@dataclass(slots=True)
class SimAccount:
    """An account being simulated: its public record, persona, plan, users and random stream."""

    index: int
    account: Account
    persona: Persona
    plan: Plan
    users: list[SimUser]
    seats: int
    api_rate: float  # integration API calls per business hour; 0 = no integration
    integration: str
    rng: random.Random
    outcome: SimOutcome
    seats_added: int = 0
    events: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def account_id(self) -> str:
        """The Kafka key."""
        return self.account.account_id


def build_accounts(seed: int, count: int, days: int, start_ms: int) -> list[SimAccount]:
    """``count`` accounts with personas in the fixed mix; the same seed gives the same accounts.

    ``start_ms`` (the run's first instant) dates the account records' contract fields."""
    root = random.Random(f"preempt-simulate/{seed}")
    personas = assign_personas(count, root)
    names = _company_names(root, count)
    owners = list(CSM_TEAM)
    return [_build_one(seed, i, personas[i], names[i], owners[i % len(owners)], days, start_ms) for i in range(count)]


def _company_names(rng: random.Random, count: int) -> list[str]:
    seen: set[str] = set()
    names: list[str] = []
    while len(names) < count:
        name = f"{rng.choice(NAME_HEADS)}{rng.choice(NAME_TAILS)} {rng.choice(NAME_SECTORS)}"
        if name in seen:
            name = f"{name} {len(names)}"
        seen.add(name)
        names.append(name)
    return names


def _build_one(seed: int, index: int, persona: Persona, name: str, csm: Csm, days: int, start_ms: int) -> SimAccount:
    account_id = f"acc-{index + 1:04d}"
    rng = random.Random(f"preempt-simulate/{seed}/{account_id}")
    tier = TIERS[pick_tier(persona, rng)]
    plan = make_plan(persona, days, rng)
    outcome, plan = decide_outcome(seed, account_id, persona, plan, days)
    seats = rng.randint(*tier.seats)
    users = _users(account_id, seats, plan, tier.name, rng)
    has_api = persona is Persona.INTEGRATION_ERRORS or (
        persona not in (Persona.ONBOARDING_STALLED, Persona.ONBOARDING_SUCCESS)
        and {"enterprise": 1.0, "growth": 0.5, "starter": 0.0}[tier.name] > rng.random()
    )
    owner = Owner(name=csm.name, email=csm.email, slack=csm.slack)
    slug = name.lower().replace(" ", "-")
    renewal = _date_of(start_ms, outcome.renewal_day)
    account = Account(
        account_id=account_id,
        name=name,
        tier=tier.name,
        plan=tier.plan,
        mrr=round(seats * tier.mrr_per_seat, 2),
        seats=seats,
        customer_since=_customer_since(seed, account_id, start_ms, plan, renewal),
        renewal_date=renewal,
        owner=owner,
        timezone=csm.timezone,
        tags=[f"persona:{persona.value}", f"tier:{tier.name}", *plan.extra_tags],
        links=AccountLinks(
            crm=f"https://crm.example.com/accounts/{account_id}",
            admin=f"https://admin.example.com/orgs/{slug}",
        ),
    )
    return SimAccount(
        index=index,
        account=account,
        persona=persona,
        plan=plan,
        users=users,
        seats=seats,
        api_rate=rng.uniform(3.0, 8.0) if has_api else 0.0,
        integration=rng.choice(INTEGRATIONS),
        rng=rng,
        outcome=outcome,
    )


def _date_of(start_ms: int, day: int) -> date:
    """The UTC calendar date of simulated ``day`` (days from the run's start)."""
    return (datetime.fromtimestamp(start_ms / 1000, tz=UTC) + timedelta(days=day)).date()


def _customer_since(seed: int, account_id: str, start_ms: int, plan: Plan, renewal: date) -> date:
    """When the account became a customer: a new account on the day it joins; an established one
    1–5 whole years before its contract date (annual contracts), from its own random stream, so no
    other draw of the simulation changes and the date says nothing of the outcome."""
    if plan.joined_day is not None:
        return _date_of(start_ms, plan.joined_day)
    years = random.Random(f"preempt-simulate/{seed}/{account_id}/contract").randint(1, 5)
    try:
        return renewal.replace(year=renewal.year - years)
    except ValueError:  # 29 February
        return renewal.replace(year=renewal.year - years, day=28)


def _users(account_id: str, seats: int, plan: Plan, tier: str, rng: random.Random) -> list[SimUser]:
    active = max(3 if tier != "starter" else 2, round(seats * rng.uniform(*plan.utilisation)))
    active = min(active, seats)
    admins = 2 if tier == "enterprise" else 1
    users: list[SimUser] = []
    for n in range(active):
        role = "admin" if n < admins else "member"
        others = [f for f in FEATURES if f != KEY_FEATURE]
        features = tuple(rng.sample(others, rng.randint(2, 4)))
        # Established accounts have adopted the key feature; stalled onboarders never do.
        if plan.onboarding_completes and (n == 0 or rng.random() < 0.4):
            features += (KEY_FEATURE,)
        users.append(
            SimUser(
                user_id=f"{account_id}-u{n + 1:02d}",
                role=role,
                weekday_p=0.93 if role == "admin" else rng.uniform(0.55, 0.85),
                features=features,
                last_active_day=None if plan.joined_day is not None else -1,
            )
        )
    if plan.joined_day is not None:
        # The first admin signs up; the team is invited during onboarding (or never, if it stalls).
        users[0].invited_day = plan.joined_day
        for user in users[1:]:
            delay = rng.randint(0, 2) if plan.onboarding_completes else rng.randint(1, 40)
            user.invited_day = plan.joined_day + delay
    return users


def add_members(acc: SimAccount, count: int, invited_day: int) -> None:
    """New members join on ``invited_day`` (promoters buy seats for people who then use them)."""
    rng = acc.rng
    others = [f for f in FEATURES if f != KEY_FEATURE]
    for _ in range(count):
        n = len(acc.users) + 1
        features = (*rng.sample(others, rng.randint(2, 4)), KEY_FEATURE)
        acc.users.append(
            SimUser(
                user_id=f"{acc.account_id}-u{n:02d}",
                role="member",
                weekday_p=rng.uniform(0.55, 0.85),
                features=features,
                invited_day=invited_day,
            )
        )
