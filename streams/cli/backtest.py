"""``preempt backtest`` — replay a JSONL file of events through the rules and count the alerts.

Exit codes: 0 done; 1 an error (bad rules, ``--until`` before the data…); 2 a bad option;
3 done, but ``--budget N`` found an owner with more than N alerts in an ISO week.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from rules.backtest import (
    AlertBudget,
    BacktestResult,
    InvalidLine,
    alert_budget,
    alert_line,
    decode_lines,
    load_accounts,
    run_backtest,
)
from rules.engine import RuleEngine
from rules.kinds.base import MAX_USER_KEYS
from rules.loader import RuleSet
from rules.models import RiskRule
from rules.risk.features import MAX_USERS_PER_DAY
from schemas.account import Account
from schemas.decoder import Rejection
from schemas.event import Event, format_ts
from schemas.formatting import plural
from schemas.jsonl import read_file
from schemas.observed import Anomaly
from schemas.rfc3339 import parse_rfc3339
from streams.cli.input_files import rereadable
from streams.cli.output_paths import refuse_overwriting_inputs, writable_output, writing
from streams.cli.progress import file_progress
from streams.cli.rules import load_rules_or_exit
from streams.runtime.option_types import FiniteFloatRange, InputPath, WholeNumberRange
from streams.runtime.settings import MAX_TOPIC_PARTITIONS, Settings
from streams.worker.processor import partition_for_key

SHOWN_INVALID = 20
OVER_BUDGET_EXIT = 3


def _parse_until(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param_hint="--until") from None  # as simulate --start says it


def _report_invalid(label: str, count: int, invalid: list[InvalidLine]) -> None:
    if not count:
        return
    click.echo(f"{plural(count, f'invalid {label} line')} skipped:", err=True)
    for item in invalid[:SHOWN_INVALID]:
        click.echo(f"  line {item.line}: {item.reason}", err=True)
    if count > SHOWN_INVALID:
        click.echo(f"  … and {count - SHOWN_INVALID} more", err=True)


def _no_valid_event(events_path: Path, result: BacktestResult, skew: float) -> str:
    """Why a file gave nothing to replay, and what to do: a history stamped after today needs --until."""
    shown = result.invalid[:SHOWN_INVALID]
    if shown and all(item.reason.startswith("future_timestamp:") for item in shown):
        return (
            f"{events_path}: its events are stamped more than {skew:g} s (PREEMPT_MAX_FUTURE_SKEW_SECONDS) after "
            "this machine's clock, so the stream would dead-letter them (listed above); to replay a history "
            "that ends later (a simulated one), give --until the time it ends"
        )
    return (
        f"{events_path}: none of its {plural(result.lines, 'line')} is a valid event (listed above); "
        "check it with `preempt events validate` against `preempt events schema`"
    )


def _count(count: int, noun: str) -> str:
    """``1 event``, ``2 events``: the summary's nouns agree with their numbers."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _print_summary(result: BacktestResult, budget: AlertBudget, until: float | None, limit: int | None) -> None:
    span = ""
    if result.first_event_at is not None and result.last_event_at is not None:
        span = f" from {format_ts(result.first_event_at)} to {format_ts(result.last_event_at)}"
    click.echo(
        f"{_count(result.lines, 'line')}: {_count(result.accepted, 'event')} accepted{span} across "
        f"{_count(result.accounts, 'account')}; {_count(result.duplicates, 'duplicate')}, {result.late} late, "
        f"{result.invalid_count} invalid"
    )
    if until is not None:
        stopped = (
            f"; stopped reading at line {result.stopped_at_line}, past --until by more than the lateness"
            if result.stopped_at_line is not None
            else ""
        )
        click.echo(
            f"replay cut at --until {format_ts(until)}: {result.after_until} events at or after it skipped{stopped}"
        )
    if result.final_watermark is not None:
        click.echo(f"clock advanced to {format_ts(result.final_watermark)}")
    click.echo(f"{_count(len(result.alerts), 'alert')} ({result.suppressed_by_cooldown} more suppressed by cooldown)")
    if result.not_built:
        click.echo(
            f"note: {result.not_built} more {'alert was' if result.not_built == 1 else 'alerts were'} too large to "
            "send and not written (the worker "
            f"dead-letters them as alert_build_failed); the first: {result.not_built_reason}",
            err=True,
        )
    _note_at_limit(result.at_limit)
    if not result.alerts:
        return
    click.echo("\nalerts per rule:")
    for rule_id, count in sorted(budget.per_rule.items(), key=lambda item: (-item[1], item[0])):
        click.echo(f"  {count:>6}  {rule_id}")
    click.echo("alerts per severity:")
    for severity in ("critical", "high", "medium", "low", "info"):
        if budget.per_severity[severity]:
            click.echo(f"  {budget.per_severity[severity]:>6}  {severity}")
    _print_budget(budget, limit)


_AT_LIMIT_NOTES = {
    Anomaly.USER_NOT_TRACKED: (
        "{events} of users new to a per-user rule already tracking {limit:,} users of the account were not "
        "evaluated by it, as in the worker (preempt_user_events_not_tracked_total; docs/rules.md, State)",
        "event",
        MAX_USER_KEYS,
    ),
    Anomaly.USER_COOLDOWN_NOT_KEPT: (
        "{events} of per-user rules went out without their cooldown kept (the rule's cooldown table holds "
        "{limit:,} users), as in the worker (preempt_user_cooldowns_not_kept_total)",
        "alert",
        MAX_USER_KEYS,
    ),
    Anomaly.RISK_DAY_SKETCHED: (
        "{events} of risk features had more than {limit} users (or a full user table): counted by sketch, "
        "their user counts are estimates (preempt_risk_days_sketched_total)",
        "account-day",
        MAX_USERS_PER_DAY,
    ),
    Anomaly.USER_MISSING: (
        "{events} without user_id were not evaluated by per-user rules (group_by: user), as in the worker "
        "(preempt_user_events_without_user_total)",
        "event",
        0,
    ),
}


def _note_at_limit(at_limit: dict[tuple[Anomaly, str], int]) -> None:
    """One line per kind of bound a big account met (rules.kinds.base.user_not_tracked), with the rules' counts:
    without it the summary read as if every event had been evaluated."""
    for anomaly, (text, noun, limit) in _AT_LIMIT_NOTES.items():
        rules = sorted(((rule_id, n) for (kind, rule_id), n in at_limit.items() if kind is anomaly), key=lambda x: x[0])
        if not rules:
            continue
        total = sum(n for _, n in rules)
        per_rule = ", ".join(f"{rule_id or '(other rules)'} {n:,}" for rule_id, n in rules)
        line = text.format(events=plural(total, noun), limit=limit)
        click.echo(f"note: {line}: {per_rule}", err=True)


def _print_budget(budget: AlertBudget, limit: int | None) -> None:
    """Per owner: total, then per ISO week the alerts and the rules they came from."""
    click.echo("alert budget (per owner, per ISO week, by rule):")
    totals = budget.per_owner()
    weeks: dict[str, list[tuple[str, int]]] = {}
    for (owner, week), count in sorted(budget.per_owner_week.items()):
        weeks.setdefault(owner, []).append((week, count))
    for owner in sorted(weeks):
        click.echo(f"  {totals[owner]:>6}  {owner}")
        for week, count in weeks[owner]:
            rules = ", ".join(f"{rule} {n}" for rule, n in budget.rules_of(owner, week))
            flag = f"  OVER BUDGET ({limit}/week)" if limit is not None and count > limit else ""
            click.echo(f"  {count:>6}    {week}: {rules}{flag}")
    click.echo(f"  {sum(totals.values()):>6}  total")
    if limit is not None:
        over = budget.over(limit)
        owners = sorted({owner for owner, _week, _n in over})
        click.echo(
            f"\n{plural(len(over), 'owner-week')} over the budget of {plural(limit, 'alert')} a week"
            + (f" ({plural(len(owners), 'owner')}: {', '.join(owners)})" if owners else "")
        )


def _note_models_without_records(ruleset: RuleSet) -> None:
    """A risk model trained with account records scores every account as unknown without --accounts: say so."""
    for rule in ruleset.enabled:
        model = rule.loaded_model if isinstance(rule, RiskRule) else None
        if model is not None and model.spec.uses_accounts:
            click.echo(
                f"note: the model of rule {rule.id!r} reads account records (renewal date, seats, MRR…); without "
                "--accounts every account is unknown to it (give the accounts JSONL the worker reads from its topic)",
                err=True,
            )


Decoded = tuple[int, Event | Rejection]


def _names_seen(events: Iterator[Decoded], seen: set[str]) -> Iterator[Decoded]:
    """The decoded lines, unchanged, adding each event's name to ``seen`` on the way."""
    for number, decoded in events:
        if not isinstance(decoded, Rejection):
            seen.add(decoded.event)
        yield number, decoded


def _note_models_of_other_events(ruleset: RuleSet, seen: set[str], events_path: Path) -> None:
    """A risk model none of whose event names is in the events (trained on another product, or on names since
    renamed) reads every per-event feature as absent: its risk sits near its floor and it stays silent. Say so."""
    if not seen:
        return
    for rule in ruleset.enabled:
        model = rule.loaded_model if isinstance(rule, RiskRule) else None
        learned = model.spec.event_names if model is not None else frozenset()
        if learned and not learned & seen:
            examples = ", ".join(repr(name) for name in sorted(learned)[:3])
            click.echo(
                f"note: none of the {len(learned)} event names the model of rule {rule.id!r} learned from "
                f"({examples}{', …' if len(learned) > 3 else ''}) is in {events_path}: its per-event features read "
                "as absent, so its risk says little; train it on this product's events (preempt train)",
                err=True,
            )


@click.command()
@click.option(
    "--rules",
    "rules_path",
    type=InputPath(exists=True, path_type=Path),
    default=None,
    help="rule file or directory [default: PREEMPT_RULES_PATH, else the default pack]",
)
@click.option(
    "--events",
    "events_path",
    required=True,
    type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    callback=rereadable,
    help="events JSONL (the event contract; - reads stdin), in time order up to the allowed lateness",
)
@click.option(
    "--accounts",
    "accounts_path",
    type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    callback=rereadable,
    help="accounts JSONL: owner, tier, links for the alerts and the alert budget",
)
@click.option(
    "--until",
    metavar="TIME",
    help="RFC 3339 end of the replay: events at or after it are not replayed, and the clock ends there "
    "so deadlines up to it fire. A time before the data is refused. Events up to it are replayed even when "
    "it is after this machine's clock (a simulated history of next quarter).",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, readable=False, path_type=Path),
    callback=writable_output,
    help="alerts JSONL",
)
@click.option(
    "--allowed-lateness",
    type=FiniteFloatRange(min=0),
    default=None,
    help="seconds (>= 0); default PREEMPT_ALLOWED_LATENESS_SECONDS",
)
@click.option(
    "--partitions",
    type=WholeNumberRange(1, MAX_TOPIC_PARTITIONS),
    default=None,
    help="one event-time clock per partition of this many, as the worker keeps (accounts placed by Kafka's "
    "default partitioner); default PREEMPT_TOPIC_PARTITIONS; 1: one clock over the whole file",
)
@click.option(
    "--budget",
    type=WholeNumberRange(min=0),
    default=None,
    help=f"alerts per owner per ISO week; flag owners over it and exit {OVER_BUDGET_EXIT}",
)
def backtest(
    rules_path: Path | None,
    events_path: Path,
    accounts_path: Path | None,
    until: str | None,
    output_path: Path | None,
    allowed_lateness: float | None,
    partitions: int | None,
    budget: int | None,
) -> None:
    """Replay events (JSONL) through the rules offline and summarise the alerts they would send.

    Writes one alert per line to --output (default: none written, summary only). The same input
    gives byte-identical output. Exit 3 when --budget is given and an owner gets more alerts in
    an ISO week than it allows. Examples:

    \b
      preempt backtest --events events.jsonl --accounts accounts.jsonl --output alerts.jsonl
      preempt backtest --rules my-rules/ --events events.jsonl --until 2026-12-01T00:00:00Z --budget 10
    """
    refuse_overwriting_inputs(
        {"--output": output_path}, {"--events": events_path, "--accounts": accounts_path, "--rules": rules_path}
    )
    settings = Settings()
    until_ts = _parse_until(until)
    if next(read_file(events_path), None) is None:  # nothing to replay is a mistake (a wrong or truncated file)
        raise click.ClickException(f"{events_path}: no events (the file is empty or only blank lines)")
    if rules_path is None:
        rules_path = settings.rules_path
    ruleset = load_rules_or_exit(rules_path)
    lateness = settings.allowed_lateness_seconds if allowed_lateness is None else allowed_lateness
    engine = RuleEngine(ruleset, dedup_horizon=max(settings.dedup_horizon_seconds, lateness))
    accounts: dict[str, Account] = {}
    if accounts_path is not None:
        accounts, bad_accounts = load_accounts(accounts_path)
        _report_invalid("account", len(bad_accounts), bad_accounts)
        if not accounts:  # e.g. the events file given as --accounts: every alert would lose its owner
            why = (
                f"none of its {plural(len(bad_accounts), 'line')} is an account record (listed above)"
                if bad_accounts
                else "the file is empty or only blank lines"
            )
            raise click.ClickException(
                f"{accounts_path}: no accounts: {why}; give a JSONL of account records "
                "(`preempt events schema --account`), or leave --accounts out"
            )
    else:
        _note_models_without_records(ruleset)
    lines = file_progress(events_path, read_file(events_path), "events")
    # The stream's future check against this machine's clock (as `preempt events validate` does), or against
    # --until when it is later: events at or after --until are cut anyway, so a history that ends after
    # today (a simulation of next quarter) replays when --until says where it ends, the same whenever it runs.
    now = time.time() if until_ts is None else max(time.time(), until_ts)
    names: set[str] = set()
    events = _names_seen(
        decode_lines(lines, settings.max_event_bytes, now=now, max_future_skew=settings.max_future_skew_seconds),
        names,
    )
    # One clock per partition, as the worker keeps (its lateness is judged per partition).
    partitions = settings.topic_partitions if partitions is None else partitions
    result = run_backtest(
        engine,
        events,
        accounts,
        until_ts,
        allowed_lateness=lateness,
        partition_of=lambda account_id: partition_for_key(account_id.encode(), partitions),
        partitions=partitions,
    )
    _report_invalid("event", result.invalid_count, result.invalid)
    _note_models_of_other_events(ruleset, names, events_path)
    if result.lines and result.invalid_count == result.lines:
        raise click.ClickException(_no_valid_event(events_path, result, settings.max_future_skew_seconds))
    if output_path is not None:
        with writing(output_path), output_path.open("wb") as out:
            for alert in result.alerts:
                out.write(alert_line(alert))
    alert_counts = alert_budget(result.alerts, accounts)
    _print_summary(result, alert_counts, until_ts, budget)
    if output_path is not None:
        click.echo(f"\nwrote {len(result.alerts)} alerts to {output_path}")
    if budget is not None and alert_counts.over(budget):
        sys.exit(OVER_BUDGET_EXIT)
