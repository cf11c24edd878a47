"""Evaluation arithmetic on small hand-computed cases: precision, recall at lead, median lead, volume."""

from __future__ import annotations

import pytest

from rules.evaluation import ALL_RULES, DAY, AlertPoint, evaluate, render_table
from schemas.event import format_ts
from schemas.outcome import AccountOutcome, collect

T0 = 1_790_000_000.0


def _outcomes(**churn_day: float | None):
    return collect(
        AccountOutcome(
            account_id=account,
            outcome="churned" if day is not None else "renewed",
            at=format_ts(T0 + (day if day is not None else 400) * DAY),
        )
        for account, day in churn_day.items()
    )


def test_hand_computed_case() -> None:
    """Two rules over four accounts, two of which churn, give the figures worked out by hand."""
    outcomes = _outcomes(a=100, b=100, c=None, d=None)
    alerts = [
        AlertPoint("r1", "a", T0 + 70 * DAY, "ann"),  # 30 d before a's churn: a hit, caught at 14 d lead
        AlertPoint("r1", "a", T0 + 90 * DAY, "ann"),  # 10 d before: a hit, not early enough on its own
        AlertPoint("r1", "c", T0 + 50 * DAY, "bob"),  # c never churns: a false alarm
        AlertPoint("r2", "b", T0 + 95 * DAY, "bob"),  # 5 d before b's churn: a hit, too late for 14 d
        AlertPoint("r2", "b", T0 + 20 * DAY, "bob"),  # 80 d before: outside the 60 d horizon
        AlertPoint("r2", "a", T0 + 101 * DAY, "ann"),  # after a churned: ignored
    ]
    result = evaluate(alerts, outcomes, horizon=60 * DAY, lead=14 * DAY)
    r1, r2 = result.rules
    assert (r1.rule_id, r1.alerts, r1.alerted_accounts, r1.true_positive_accounts) == ("r1", 3, 2, 1)
    assert r1.precision == pytest.approx(1 / 2)
    assert r1.alert_precision == pytest.approx(2 / 3)
    assert (r1.caught_at_lead, r1.recall_at_lead) == (1, pytest.approx(1 / 2))
    assert r1.median_lead_days == pytest.approx(30.0)
    assert (r2.alerts, r2.alerted_accounts, r2.true_positive_accounts, r2.after_churn) == (3, 1, 1, 1)
    assert r2.precision == pytest.approx(1.0)
    assert r2.alert_precision == pytest.approx(1 / 2)
    assert (r2.caught_at_lead, r2.recall_at_lead) == (0, pytest.approx(0.0))
    assert r2.median_lead_days == pytest.approx(5.0)
    every = result.overall
    assert every.rule_id == ALL_RULES
    assert (every.alerted_accounts, every.true_positive_accounts, every.caught_at_lead) == (3, 2, 1)
    assert every.median_lead_days == pytest.approx((30.0 + 5.0) / 2)
    # 2 owners; first alert day 20, last day 101: 81 days = 11.57 weeks
    assert (result.owners, result.weeks) == (2, pytest.approx(81 / 7))
    assert r1.alerts_per_owner_week == pytest.approx(3 / (2 * 81 / 7))


def test_no_alerts_and_no_churn_give_empty_figures() -> None:
    """With nothing to measure, ratios are None instead of a misleading zero."""
    result = evaluate([], _outcomes(a=None), horizon=60 * DAY, lead=14 * DAY)
    assert result.rules == ()
    assert result.overall.precision is None
    assert result.overall.recall_at_lead is None
    assert result.overall.median_lead_days is None


def test_lead_longer_than_horizon_is_refused() -> None:
    """A lead beyond the horizon could never count, so it is an error."""
    with pytest.raises(ValueError, match="lead"):
        evaluate([], _outcomes(a=1), horizon=7 * DAY, lead=14 * DAY)


def test_table_has_one_row_per_rule_and_a_total() -> None:
    """The terminal table names every rule, the total, and the scale."""
    alerts = [AlertPoint("r1", "a", T0, "ann")]
    text = render_table(evaluate(alerts, _outcomes(a=20), horizon=60 * DAY, lead=14 * DAY))
    assert "r1" in text
    assert ALL_RULES in text
    assert "100.0%" in text
    assert "1 churned accounts; horizon 60d, lead 14d" in text


def test_table_columns_stay_apart_for_a_64_character_rule_id() -> None:
    """A rule id of the longest allowed length keeps a space before its alert count, so columns still split."""
    long_id = "k" * 64
    alerts = [AlertPoint(long_id, "a", T0, "ann"), AlertPoint("short", "b", T0, "ann")]
    lines = render_table(evaluate(alerts, _outcomes(a=20), horizon=60 * DAY, lead=14 * DAY)).splitlines()
    row = next(line for line in lines if line.startswith(long_id))
    assert row.split()[:2] == [long_id, "1"]
    assert len({len(line) for line in lines[:-1]}) == 1  # header, rules, rulers and total line up


def test_accounts_without_an_owner_are_not_one_more_owner() -> None:
    """Alerts on unowned accounts are counted apart: they neither add an owner nor spread the owned alerts thinner."""
    alerts = [
        AlertPoint("r1", "a", T0, "ann"),
        AlertPoint("r1", "a", T0 + 14 * DAY, "ann"),
        AlertPoint("r1", "b", T0 + 7 * DAY, None),
        AlertPoint("r1", "c", T0 + 7 * DAY, None),
    ]
    result = evaluate(alerts, _outcomes(a=None, b=None, c=None), horizon=60 * DAY, lead=14 * DAY)
    assert result.owners == 1
    assert result.overall.alerts_without_owner == 2
    assert result.overall.alerts_per_owner_week == pytest.approx(2 / (1 * 2))  # ann's 2 alerts over 2 weeks
    assert "2 alerts on accounts without an owner" in render_table(result)


def test_no_owner_at_all_leaves_alerts_per_owner_week_unknown() -> None:
    """With no owner on any alert (a backtest without --accounts) there is no per-owner volume to give, not a
    volume per week that reads as one CSM's load."""
    alerts = [AlertPoint("r1", "a", T0), AlertPoint("r1", "b", T0 + DAY)]
    result = evaluate(alerts, _outcomes(a=None, b=None), horizon=60 * DAY, lead=14 * DAY)
    assert result.owners == 0
    assert result.overall.alerts_per_owner_week is None
    assert result.to_json()["all"]["alerts_per_owner_week"] is None
    total = next(line for line in render_table(result).splitlines() if line.startswith(ALL_RULES))
    assert total.split()[-1] == "—"
