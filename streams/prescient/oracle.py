"""The story oracle: an upper bound, in expectation, on what a rule can catch at a given alert volume.

In the simulator an account's *story* (its persona and dates: when onboarding stalls, when the
champion goes quiet, when an invoice fails) shows in its usage, but *how the story ends* is a
separate random draw (``streams.simulate.outcomes``): a quiet champion's account churns 40 % of
the time, however its usage looks. So no rule that reads usage — and not the outcome events
themselves (``Subscription Renewed``…), which the risk model never uses — can expect to catch
more than an oracle that knows every account's story from the day its trouble shows, but not its
ending, and spends the alert volume on the accounts most likely to churn in time. One seed's own
draw may give a rule a little more than the oracle: the bound holds for the expectation.

:func:`story_oracle` is that oracle. Volume counts alerted *accounts*, so it alerts a chosen
account as often as it needs: on days from the first day it could know the story (the day the
account's trouble shows, and never before its first events) to the last day of the history, which
warns in time of a churn on any day from that first day + ``lead`` up to the last + ``horizon``
(``streams.simulate.outcomes.churn_between``). It chooses the ``volume`` accounts with the best
chance of such a churn (ties by account id) and alerts each on the fewest days that cover its
chance. ``expected_caught`` is the sum of the chances; the seed's own draw gives the evaluation's
``caught_at_lead``.

It reads the simulator's personas and plans, which no rule ever sees: a yardstick for the report,
never a rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules.evaluation import AlertPoint
from streams.simulate.accounts import SimAccount
from streams.simulate.local_time import DAY_MS
from streams.simulate.outcomes import churn_between, signal_day

ORACLE_RULE = "story-oracle"


@dataclass(frozen=True, slots=True)
class OracleAlerts:
    """The oracle's alerts (on the chosen accounts) and the catch it expects."""

    alerts: tuple[AlertPoint, ...]
    expected_caught: float


def best_alerts(acc: SimAccount, days: int, lead_days: int, horizon_days: int) -> tuple[float, tuple[int, ...]]:
    """The account's best chance of a churn warned in time by alerts within the history, and the days of the
    fewest alerts that give it (no days when the chance is 0)."""
    trouble = signal_day(acc.persona, acc.plan)
    first = max(acc.plan.joined_day or 0, trouble if trouble is not None else 0)
    last = days - 1
    if first > last:
        return 0.0, ()

    def chance(a: int, b: int) -> float:  # alerts on the days a…b
        return churn_between(acc.persona, acc.plan, acc.outcome.renewal_day, a + lead_days, b + horizon_days)

    best = chance(first, last)
    if best <= 0:
        return 0.0, ()
    step = horizon_days - lead_days  # one alert covers this many churn days
    alert_days = [d for d in range(first, last + 1, step) if chance(d, d) > 0]  # windows side by side
    if sum(chance(d, d) for d in alert_days) < best:  # the last window, cut short by the end of the history
        alert_days.append(last)
    return best, tuple(alert_days)


def story_oracle(
    accounts: list[SimAccount], start_ms: int, days: int, volume: int, lead_days: int, horizon_days: int
) -> OracleAlerts:
    """Alerts on the ``volume`` accounts with the best chance of a churn warned in time (module docstring)."""
    if lead_days >= horizon_days:
        raise ValueError("the lead must be shorter than the horizon")
    ranked = sorted(
        ((*best_alerts(acc, days, lead_days, horizon_days), acc.account_id) for acc in accounts),
        key=lambda item: (-item[0], item[2]),
    )
    chosen = [item for item in ranked[: max(volume, 0)] if item[0] > 0]
    alerts = tuple(
        AlertPoint(ORACLE_RULE, account_id, (start_ms + day * DAY_MS) / 1000)
        for _, alert_days, account_id in chosen
        for day in alert_days
    )
    return OracleAlerts(alerts, sum(chance for chance, _, _ in chosen))
