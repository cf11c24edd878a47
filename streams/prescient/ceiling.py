"""The report's upper bound: what any rule could catch at a given alert volume on a simulated history.

In the simulator an account's *story* (its persona and dates: when onboarding stalls, when the
champion goes quiet, when an invoice fails) shows in its usage, but *how the story ends* is a
separate random draw (``streams.simulate.outcomes``): a quiet champion's account churns 40 % of
the time, whatever its usage looks like. So no rule that reads usage can expect to do better
than an oracle that knows every account's story the day its trouble starts — but not its
ending — and spends the alert volume on the accounts most likely to churn in time.

:func:`story_oracle` is that oracle: for each account, the day (from the day its trouble shows,
after the rule's warm-up, within the history) on which an alert has the best chance to come
``lead`` to ``horizon`` days before a churn (``streams.simulate.outcomes.churn_chance``); then
the ``accounts`` accounts with the best chances (ties by account id), one alert each on that
day. Its alerts are evaluated like any rule's; ``expected_caught`` is the sum of their chances,
the catch it expects over the outcome draws (the seed's own draw gives ``caught_at_lead``).

It reads the simulator's personas and plans, which no rule ever sees: it is a yardstick for the
report, never a rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules.evaluation import NO_OWNER, AlertPoint
from streams.simulate.accounts import SimAccount
from streams.simulate.local_time import DAY_MS
from streams.simulate.outcomes import churn_chance, trouble_day

ORACLE_RULE = "story-oracle"


@dataclass(frozen=True, slots=True)
class OracleAlerts:
    """The oracle's alerts (one per chosen account) and the catch it expects."""

    alerts: tuple[AlertPoint, ...]
    expected_caught: float


def best_day(acc: SimAccount, days: int, warmup_days: int, lead_days: int, horizon_days: int) -> tuple[float, int]:
    """The account's best chance of a warning in time, and the earliest day that gives it (chance 0: no day)."""
    first = acc.plan.joined_day or 0
    trouble = trouble_day(acc.persona, acc.plan)
    earliest = max(first + warmup_days, trouble if trouble is not None else 0)
    best = (0.0, earliest)
    for day in range(earliest, days):
        chance = churn_chance(acc.persona, acc.plan, acc.outcome.renewal_day, day, lead_days, horizon_days)
        if chance > best[0]:
            best = (chance, day)
    return best


def story_oracle(
    accounts: list[SimAccount],
    start_ms: int,
    days: int,
    volume: int,
    warmup_days: int,
    lead_days: int,
    horizon_days: int,
) -> OracleAlerts:
    """Alerts on the ``volume`` accounts with the best chance of a churn warned in time (module docstring)."""
    ranked = sorted(
        ((*best_day(acc, days, warmup_days, lead_days, horizon_days), acc) for acc in accounts),
        key=lambda item: (-item[0], item[2].account_id),
    )
    chosen = [item for item in ranked[: max(volume, 0)] if item[0] > 0]
    alerts = tuple(
        AlertPoint(ORACLE_RULE, acc.account_id, (start_ms + day * DAY_MS) / 1000, _owner(acc)) for _, day, acc in chosen
    )
    return OracleAlerts(alerts, sum(chance for chance, _, _ in chosen))


def _owner(acc: SimAccount) -> str:
    owner = acc.account.owner  # labelled as ``streams.cli.evaluate.alert_point`` labels an alert's owner
    return owner.name or owner.email or owner.slack or NO_OWNER
