"""How each simulated account's story ends: churned, renewed, contracted or expanded, and when.

The outcome follows the persona's trajectory with the noise real books of business have:

* trouble usually ends in churn some weeks after it shows (a decaying account cancels 3–6 weeks
  after its usage starts to fade) — but not always: some decaying accounts recover (their usage
  comes back, see ``Plan.recover_day``) and renew;
* some accounts churn for reasons that never show in usage (budget cuts, an acquisition): they
  look healthy and leave on their contract date;
* everyone else renews (or contracts, or expands) on the contract date, ``renewal_day``, which
  the account record carries as ``renewal_date`` (drawn alike for every account, whatever its
  outcome: the date says when a decision falls, never which).

Each account draws its outcome from its own ``random.Random`` seeded with ``(seed, account_id,
"outcome")``, so adding outcomes changed no other random draw of the simulation. Days may lie
beyond the simulated history (a churn that happens after the run still counts for lead time).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Literal

from streams.simulate.local_time import DAY_MS, HOUR_MS
from streams.simulate.personas import Persona, Plan

SimOutcomeKind = Literal["churned", "renewed", "contracted", "expanded"]


@dataclass(frozen=True, slots=True)
class SimOutcome:
    """The end of one account's story: what, on which day, at which millisecond of that day."""

    outcome: SimOutcomeKind
    day: int
    offset_ms: int
    reason: str
    renewal_day: int
    """The contract date (days from the start): the account record's ``renewal_date``. Every outcome
    but a churn the account's trouble brings on early happens on it."""

    def at_ms(self, start_ms: int) -> int:
        """Epoch milliseconds of the outcome for a run that starts at ``start_ms``."""
        return start_ms + self.day * DAY_MS + self.offset_ms

    @property
    def churned(self) -> bool:
        """Whether the account leaves."""
        return self.outcome == "churned"


# persona → (churn probability, reason of a trajectory churn, lag range in days after the signal).
# Personas without a signal (healthy, promoter…) churn only "silently", on their contract date.
_TRAJECTORY: dict[Persona, tuple[float, str, tuple[int, int]]] = {
    Persona.ONBOARDING_STALLED: (0.7, "never got value", (25, 50)),
    Persona.INTEGRATION_ERRORS: (0.2, "integration unreliable", (14, 35)),
    Persona.DECAYING: (0.8, "usage faded", (18, 45)),
    Persona.GONE_DARK: (0.9, "stopped using the product", (20, 50)),
    Persona.PAYMENT_NOT_RECOVERED: (0.85, "payment never recovered", (12, 30)),
    Persona.DETRACTOR: (0.35, "unhappy", (20, 45)),
    Persona.CHAMPION_QUIET: (0.4, "champion left", (25, 55)),
}
_SILENT_CHURN: dict[Persona, float] = {
    Persona.HEALTHY: 0.05,
    Persona.PROMOTER: 0.02,
    Persona.ONBOARDING_SUCCESS: 0.05,
    Persona.PAYMENT_RECOVERED: 0.08,
    Persona.LOW_SEAT_UTILISATION: 0.25,
}
_SILENT_REASONS = ("budget cut", "acquired by a competitor's customer", "consolidated tools", "new leadership")


def signal_day(persona: Persona, plan: Plan) -> int | None:
    """The day a trajectory churn's lag counts from: the day the account's trouble shows in its usage (for
    integration errors, its last incident); ``None`` for a persona without trouble."""
    match persona:
        case Persona.ONBOARDING_STALLED:
            return plan.joined_day
        case Persona.INTEGRATION_ERRORS:
            return max((i.day for i in plan.incidents), default=None)
        case Persona.DECAYING:
            return plan.decay_day
        case Persona.GONE_DARK:
            return plan.dark_day
        case Persona.PAYMENT_NOT_RECOVERED:
            return plan.billing_day
        case Persona.DETRACTOR:
            return plan.detractor_day
        case Persona.CHAMPION_QUIET:
            return plan.champion_quiet_day
    return None


def last_renewal_day(days: int) -> int:
    """The latest contract date an account of a ``days``-long run can have: up to a third of the run past its end."""
    return days + days // 3


def decide_outcome(seed: int, account_id: str, persona: Persona, plan: Plan, days: int) -> tuple[SimOutcome, Plan]:
    """The account's outcome, and its plan (a decaying account that recovers gets a ``recover_day``)."""
    rng = random.Random(f"preempt-simulate/{seed}/{account_id}/outcome")
    renewal_day = rng.randint(days // 2, last_renewal_day(days))
    business_hours_ms = rng.randint(9, 17) * HOUR_MS + rng.randrange(HOUR_MS)
    trajectory = _TRAJECTORY.get(persona)
    signal = signal_day(persona, plan)
    if trajectory is not None and signal is not None:
        churn_p, reason, (lo, hi) = trajectory
        if rng.random() < churn_p:
            return SimOutcome("churned", signal + rng.randint(lo, hi), business_hours_ms, reason, renewal_day), plan
        if persona is Persona.DECAYING and plan.decay_day is not None:
            # the CSM (or a new champion) turned it around: usage comes back (in a long enough run,
            # before the renewal; in a short one the customer renews on the promise of it)
            recover = plan.decay_day + rng.randint(21, 35)
            reason = "recovered" if recover < renewal_day else "renewed before its usage recovered"
            return SimOutcome("renewed", renewal_day, 0, reason, renewal_day), _recovering(plan, recover)
        kind: SimOutcomeKind = "contracted" if persona is Persona.PAYMENT_NOT_RECOVERED else "renewed"
        return SimOutcome(kind, renewal_day, 0, "renewed despite trouble", renewal_day), plan
    if rng.random() < _SILENT_CHURN.get(persona, 0.03):
        return SimOutcome("churned", renewal_day, business_hours_ms, rng.choice(_SILENT_REASONS), renewal_day), plan
    if persona is Persona.PROMOTER:
        return SimOutcome("expanded", renewal_day, 0, "grew", renewal_day), plan
    if persona is Persona.LOW_SEAT_UTILISATION and rng.random() < 0.6:
        return SimOutcome("contracted", renewal_day, 0, "right-sized seats", renewal_day), plan
    return SimOutcome("renewed", renewal_day, 0, "renewed", renewal_day), plan


def churn_between(persona: Persona, plan: Plan, renewal_day: int, first_day: int, end_day: int) -> float:
    """The chance, by the outcome model alone, that an account with this story churns on a day from
    ``first_day`` up to (not including) ``end_day``: what someone who knew the account's persona and story
    dates, but not how its story ends, could know (``decide_outcome`` draws the same odds and days).

    A churn falls at business hours, so an alert at the start of day ``d`` warns of a churn on day ``c`` at
    least ``lead`` and at most ``horizon`` days ahead exactly when ``lead <= c - d < horizon``: alerts on the
    days ``a``…``b`` cover the churn days ``a + lead`` up to ``b + horizon`` (``streams.prescient.oracle``).
    """
    trajectory = _TRAJECTORY.get(persona)
    signal = signal_day(persona, plan)
    if trajectory is not None and signal is not None:
        churn_p, _, (lo, hi) = trajectory
        in_range = sum(1 for lag in range(lo, hi + 1) if first_day <= signal + lag < end_day)
        return churn_p * in_range / (hi - lo + 1)
    silent_p = _SILENT_CHURN.get(persona, 0.03)
    return silent_p if first_day <= renewal_day < end_day else 0.0


def _recovering(plan: Plan, day: int) -> Plan:
    return replace(plan, recover_day=day)
