"""Customer personas: who each simulated account is, in what proportion, and its story's dates.

Every account gets one persona. The persona decides the account's tier range and a ``Plan``:
the day (counted from ``--start``) on which its story happens — the day onboarding starts,
the invoice fails, the champion stops logging in, usage starts to decay… The day-by-day
behaviour that plays the plan out lives in ``streams.simulate.behaviour``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Persona(StrEnum):
    """The stories the simulator tells. The value is the ``persona:<value>`` tag on the account."""

    HEALTHY = "healthy"
    PROMOTER = "promoter"
    ONBOARDING_SUCCESS = "onboarding-success"
    ONBOARDING_STALLED = "onboarding-stalled"
    INTEGRATION_ERRORS = "integration-errors"
    DECAYING = "decaying"
    GONE_DARK = "gone-dark"
    PAYMENT_RECOVERED = "payment-recovered"
    PAYMENT_NOT_RECOVERED = "payment-not-recovered"
    DETRACTOR = "detractor"
    LOW_SEAT_UTILISATION = "low-seat-utilisation"
    CHAMPION_QUIET = "champion-quiet"


#: Fixed proportions of the persona mix (they sum to 1). Healthy accounts dominate, as in life.
MIX: dict[Persona, float] = {
    Persona.HEALTHY: 0.36,
    Persona.PROMOTER: 0.08,
    Persona.ONBOARDING_SUCCESS: 0.05,
    Persona.ONBOARDING_STALLED: 0.06,
    Persona.INTEGRATION_ERRORS: 0.06,
    Persona.DECAYING: 0.06,
    Persona.GONE_DARK: 0.04,
    Persona.PAYMENT_RECOVERED: 0.05,
    Persona.PAYMENT_NOT_RECOVERED: 0.05,
    Persona.DETRACTOR: 0.06,
    Persona.LOW_SEAT_UTILISATION: 0.07,
    Persona.CHAMPION_QUIET: 0.06,
}

#: Tier weights (enterprise, growth, starter) per persona; stories that need several users or an
#: API integration are never on the starter tier.
_TIER_WEIGHTS: dict[Persona, tuple[float, float, float]] = {
    Persona.ONBOARDING_SUCCESS: (0.0, 0.5, 0.5),
    Persona.ONBOARDING_STALLED: (0.0, 0.4, 0.6),
    Persona.INTEGRATION_ERRORS: (0.5, 0.5, 0.0),
    Persona.DECAYING: (0.3, 0.7, 0.0),
    Persona.GONE_DARK: (0.3, 0.7, 0.0),
    Persona.LOW_SEAT_UTILISATION: (0.5, 0.5, 0.0),
    Persona.CHAMPION_QUIET: (0.3, 0.5, 0.2),
}
_DEFAULT_TIER_WEIGHTS = (0.2, 0.45, 0.35)


def persona_counts(accounts: int) -> dict[Persona, int]:
    """How many accounts get each persona: largest remainder of ``MIX``, at least one each when
    there are enough accounts, so that even a small simulation shows every story."""
    counts = dict.fromkeys(MIX, 0)
    remaining = accounts
    if accounts >= len(MIX):
        counts = dict.fromkeys(MIX, 1)
        remaining -= len(MIX)
    quotas = {p: share * remaining for p, share in MIX.items()}
    for persona, quota in quotas.items():
        counts[persona] += int(quota)
    leftover = accounts - sum(counts.values())
    # Ties broken by the declaration order of MIX, so the result is stable.
    by_remainder = sorted(MIX, key=lambda p: -(quotas[p] - int(quotas[p])))
    for persona in by_remainder[:leftover]:
        counts[persona] += 1
    return counts


def assign_personas(accounts: int, rng: random.Random) -> list[Persona]:
    """One persona per account index, in the proportions of ``persona_counts``, shuffled by ``rng``."""
    personas = [p for p, n in persona_counts(accounts).items() for _ in range(n)]
    rng.shuffle(personas)
    return personas


def pick_tier(persona: Persona, rng: random.Random) -> str:
    """The tier of an account with this persona."""
    weights = _TIER_WEIGHTS.get(persona, _DEFAULT_TIER_WEIGHTS)
    return rng.choices(("enterprise", "growth", "starter"), weights=weights)[0]


@dataclass(frozen=True, slots=True)
class Incident:
    """A stretch of hours in which the account's integration calls fail (day, UTC hour, hours)."""

    day: int
    hour: int
    hours: int


@dataclass(frozen=True, slots=True)
class Plan:
    """The dates of one account's story, in days since the start of the simulation.

    ``None`` means the story element does not happen to this account.
    """

    joined_day: int | None = None  # new account: no usage before this day, then onboarding
    onboarding_completes: bool = True
    billing_day: int = 0  # monthly invoice
    payment_fails: bool = False
    payment_recovers: bool = True
    decay_day: int | None = None
    recover_day: int | None = None  # a decaying account whose usage comes back (streams.simulate.outcomes)
    dark_day: int | None = None
    champion_quiet_day: int | None = None
    nps_day: int = 0
    detractor_day: int | None = None
    promoter: bool = False
    incidents: tuple[Incident, ...] = ()
    auth_expiry: Incident | None = None
    utilisation: tuple[float, float] = (0.7, 0.95)
    extra_tags: tuple[str, ...] = field(default=())


def make_plan(persona: Persona, days: int, rng: random.Random) -> Plan:
    """Draw the story dates of one account. Dates scale with ``days`` so that deadlines of the
    default pack (3, 7, 14 days) fall inside a 30-day simulation."""
    last = max(days - 1, 1)

    def day_in(lo: float, hi: float) -> int:
        return min(last, max(0, rng.randint(int(lo * days), max(int(lo * days), int(hi * days)))))

    base = Plan(billing_day=rng.randrange(max(days, 1)), nps_day=day_in(0.1, 0.8))
    match persona:
        case Persona.HEALTHY:
            return base
        case Persona.PROMOTER:
            return replace(base, promoter=True)
        case Persona.ONBOARDING_SUCCESS:
            return replace(base, joined_day=day_in(0.03, 0.35))
        case Persona.ONBOARDING_STALLED:
            return replace(base, joined_day=day_in(0.03, 0.3), onboarding_completes=False, utilisation=(0.2, 0.4))
        case Persona.INTEGRATION_ERRORS:
            first = day_in(0.1, 0.45)
            second = day_in(0.55, 0.9)
            incidents: tuple[Incident, ...] = (Incident(first, rng.randint(13, 17), rng.randint(2, 4)),)
            if rng.random() < 0.6:
                incidents += (Incident(second, rng.randint(13, 17), rng.randint(2, 5)),)
            expiry = Incident(day_in(0.3, 0.7), rng.randint(14, 18), rng.randint(3, 6))
            return replace(base, incidents=incidents, auth_expiry=expiry)
        case Persona.DECAYING:
            decay = day_in(0.12, 0.25)
            return replace(base, nps_day=0, decay_day=decay, detractor_day=min(last, decay + rng.randint(8, 11)))
        case Persona.GONE_DARK:
            return replace(base, dark_day=day_in(0.15, 0.35))
        case Persona.PAYMENT_RECOVERED:
            return replace(base, billing_day=day_in(0.07, 0.8), payment_fails=True)
        case Persona.PAYMENT_NOT_RECOVERED:
            return replace(base, billing_day=day_in(0.07, 0.65), payment_fails=True, payment_recovers=False)
        case Persona.DETRACTOR:
            return replace(base, detractor_day=day_in(0.1, 0.85))
        case Persona.LOW_SEAT_UTILISATION:
            return replace(base, utilisation=(0.12, 0.28))
        case Persona.CHAMPION_QUIET:
            return replace(base, champion_quiet_day=day_in(0.15, 0.45))
    raise AssertionError(persona)  # pragma: no cover - every persona is matched above
