"""How early and how precisely alerts warned of churn: pure arithmetic over alerts and outcomes.

Who calls it: ``preempt evaluate`` and the prescient report. Definitions (docs/prescient.md):

* An alert **counts** for an account when it fired strictly before the account churned (alerts
  after a churn are about a customer who has left: they are reported as ``after_churn`` and
  otherwise ignored). Accounts that did not churn count every alert.
* **precision** — of the accounts a rule alerted on, the share that churned within ``horizon``
  after one of its alerts (``0 < churn − alert ≤ horizon``).
* **alert precision** — the same per alert instead of per account.
* **recall at lead L** — of the churned accounts, the share with an alert fired at least ``L``
  and at most ``horizon`` before the churn.
* **median lead** — over churned accounts warned within the horizon, the median of the longest
  warning each got (churn − its earliest alert within the horizon), in days.
* **alerts per owner per week** — a rule's alerts on owned accounts / (owners × weeks), where
  owners are the distinct account owners in the whole alerts file and weeks its span (first to
  last alert, at least one week), so rules compare on one scale. Alerts on accounts without an
  owner reach no CSM's desk: they are counted apart (``alerts_without_owner``), never as one more
  owner, and with no owner at all the figure is None.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from schemas.formatting import plural
from schemas.outcome import Outcomes

DAY = 86400.0
WEEK = 7 * DAY
ALL_RULES = "(all rules)"


@dataclass(frozen=True, slots=True)
class AlertPoint:
    """What evaluation needs of one alert."""

    rule_id: str
    account_id: str
    fired_at: float
    owner: str | None = None
    """Who owns the account, as an identity (its email, else Slack id, else name); None: no owner on record."""


@dataclass(frozen=True, slots=True)
class RuleScore:
    """The figures of one rule (or of all rules together)."""

    rule_id: str
    alerts: int
    alerted_accounts: int
    true_positive_accounts: int
    precision: float | None
    alert_precision: float | None
    caught_at_lead: int
    recall_at_lead: float | None
    median_lead_days: float | None
    alerts_per_owner_week: float | None
    """Alerts on owned accounts per owner per week; None when no alert names an owner."""
    after_churn: int
    alerts_without_owner: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (rounded to 4 decimals)."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Per rule (sorted by id) and all rules together, with the scale they were measured on."""

    horizon: float
    lead: float
    churned_accounts: int
    owners: int
    weeks: float
    rules: tuple[RuleScore, ...]
    overall: RuleScore

    def to_json(self) -> dict[str, Any]:
        """The ``preempt evaluate --json`` document."""
        return {
            "horizon_days": round(self.horizon / DAY, 4),
            "lead_days": round(self.lead / DAY, 4),
            "churned_accounts": self.churned_accounts,
            "owners": self.owners,
            "weeks": round(self.weeks, 4),
            "rules": [score.to_json() for score in self.rules],
            "all": self.overall.to_json(),
        }


def evaluate(alerts: Sequence[AlertPoint], outcomes: Outcomes, horizon: float, lead: float) -> Evaluation:
    """Score every rule in ``alerts``, and all of them together, against ``outcomes``."""
    if horizon <= 0:
        raise ValueError("horizon must be positive")
    if lead < 0 or lead > horizon:
        raise ValueError("lead must lie between 0 and the horizon")
    churned = outcomes.churned
    owners = len({a.owner for a in alerts if a.owner is not None})
    if alerts:
        span = max(a.fired_at for a in alerts) - min(a.fired_at for a in alerts)
        weeks = max(1.0, span / WEEK)
    else:
        weeks = 1.0
    by_rule: dict[str, list[AlertPoint]] = defaultdict(list)
    for alert in alerts:
        by_rule[alert.rule_id].append(alert)
    scale = owners * weeks if owners else None
    rules = tuple(_score(rule_id, by_rule[rule_id], churned, horizon, lead, scale) for rule_id in sorted(by_rule))
    overall = _score(ALL_RULES, alerts, churned, horizon, lead, scale)
    return Evaluation(horizon, lead, len(churned), owners, weeks, rules, overall)


def _score(
    rule_id: str,
    alerts: Iterable[AlertPoint],
    churned: Mapping[str, float],
    horizon: float,
    lead: float,
    scale: float | None,
) -> RuleScore:
    count = 0
    unowned = 0
    after_churn = 0
    hits = 0
    counted = 0
    alerted: set[str] = set()
    warned: set[str] = set()
    longest_warning: dict[str, float] = {}
    for alert in alerts:
        count += 1
        if alert.owner is None:
            unowned += 1
        churn = churned.get(alert.account_id)
        if churn is not None and alert.fired_at >= churn:
            after_churn += 1
            continue
        counted += 1
        alerted.add(alert.account_id)
        if churn is None:
            continue
        ahead = churn - alert.fired_at
        if ahead <= horizon:
            hits += 1
            warned.add(alert.account_id)
            longest_warning[alert.account_id] = max(ahead, longest_warning.get(alert.account_id, 0.0))
    caught = sum(1 for ahead in longest_warning.values() if ahead >= lead)
    leads = [ahead / DAY for ahead in longest_warning.values()]
    return RuleScore(
        rule_id=rule_id,
        alerts=count,
        alerted_accounts=len(alerted),
        true_positive_accounts=len(warned),
        precision=len(warned) / len(alerted) if alerted else None,
        alert_precision=hits / counted if counted else None,
        caught_at_lead=caught,
        recall_at_lead=caught / len(churned) if churned else None,
        median_lead_days=statistics.median(leads) if leads else None,
        alerts_per_owner_week=None if scale is None else (count - unowned) / scale,
        after_churn=after_churn,
        alerts_without_owner=unowned,
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def render_table(evaluation: Evaluation) -> str:
    """The terminal table of ``preempt evaluate``."""
    lead_days = f"{evaluation.lead / DAY:g}d"
    width = max([36, *(len(score.rule_id) + 2 for score in evaluation.rules)])  # ids may be 64; there may be none
    header = (
        f"{'rule':<{width}}{'alerts':>8}{'accounts':>10}{'precision':>11}{'recall@' + lead_days:>12}"
        f"{'median lead':>13}{'/owner/wk':>11}"
    )
    lines = [header, "-" * len(header)]
    for score in (*evaluation.rules, evaluation.overall):
        if score is evaluation.overall:
            lines.append("-" * len(header))
        median = "—" if score.median_lead_days is None else f"{score.median_lead_days:.1f}d"
        volume = "—" if score.alerts_per_owner_week is None else f"{score.alerts_per_owner_week:.2f}"
        lines.append(
            f"{score.rule_id:<{width}}{score.alerts:>8}{score.alerted_accounts:>10}{_pct(score.precision):>11}"
            f"{_pct(score.recall_at_lead):>12}{median:>13}{volume:>11}"
        )
    unowned = evaluation.overall.alerts_without_owner
    lines.append(
        f"{evaluation.churned_accounts} churned accounts; horizon {evaluation.horizon / DAY:g}d, lead {lead_days}; "
        f"{plural(evaluation.owners, 'owner')} over {evaluation.weeks:.1f} weeks"
        + (f"; {plural(unowned, 'alert')} on accounts without an owner, not in /owner/wk" if unowned else "")
    )
    return "\n".join(lines)
