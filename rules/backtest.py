"""The backtest: the same engine over a JSONL file of events, offline (DESIGN.md §5).

Events are read in file order. One global clock: the watermark is the highest event time seen
so far minus the allowed lateness (it starts at the first event), so events out of order by
less than the lateness are evaluated exactly as if sorted, and later ones are counted as late.
At the end of input the clock moves to ``max event time − lateness``, or to ``until`` when
given, so pending deadlines up to then fire. Invalid lines are reported with their line
numbers and skipped. Same rules + same file ⇒ byte-identical output (alerts are sorted, and
``emitted_at`` is ``fired_at``).

Pure apart from reading the input it is given: no clock, no Kafka.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from pydantic import ValidationError

from rules.engine import Outcome, RuleEngine
from rules.findings import Finding
from rules.state import AccountState
from schemas.account import Account
from schemas.alert import Alert
from schemas.decoder import Rejection, decode_event
from schemas.event import MAX_EVENT_BYTES, Event

MAX_REPORTED_INVALID = 1000
NO_OWNER = "(no owner)"


@dataclass(frozen=True, slots=True)
class InvalidLine:
    """A line of an input file that was skipped, and why."""

    line: int
    reason: str


@dataclass(slots=True)
class BacktestResult:
    """Alerts (sorted) and the counts a person needs to trust them."""

    alerts: list[Alert] = field(default_factory=list)
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    late: int = 0
    invalid_count: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)
    """The first ``MAX_REPORTED_INVALID`` invalid lines."""
    accounts: int = 0
    first_event_at: float | None = None
    last_event_at: float | None = None
    final_watermark: float | None = None
    suppressed_by_cooldown: int = 0


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw bytes)`` of each non-blank line of a file, numbered from 1."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw.rstrip(b"\r\n")


def decode_lines(
    lines: Iterable[tuple[int, bytes]], max_bytes: int = MAX_EVENT_BYTES
) -> Iterator[tuple[int, Event | Rejection]]:
    """Decode each line with the stream's own decoder (no future-skew check: it is history)."""
    for number, raw in lines:
        yield number, decode_event(raw, max_bytes=max_bytes, max_future_skew=0.0, now=math.inf)


def load_accounts(path: Path) -> tuple[dict[str, Account], list[InvalidLine]]:
    """Accounts from a JSONL file (one ``schemas.account.Account`` per line); bad lines reported."""
    accounts: dict[str, Account] = {}
    invalid: list[InvalidLine] = []
    for number, raw in read_lines(path):
        try:
            account = Account.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(line)"
            invalid.append(InvalidLine(number, f"{where}: {first['msg']}"))
            continue
        accounts[account.account_id] = account
    return accounts, invalid


def _sort_key(finding: Finding) -> tuple[float, str, str, str, str]:
    return (finding.fired_at, finding.account_id, finding.rule_id, finding.user_id or "", finding.alert_id)


def run_backtest(
    engine: RuleEngine,
    events: Iterable[tuple[int, Event | Rejection]],
    accounts: dict[str, Account] | None = None,
    until: float | None = None,
) -> BacktestResult:
    """Run every event through ``engine`` with one global clock; return the sorted alerts."""
    result = BacktestResult()
    states: dict[str, AccountState] = {}
    findings: list[Finding] = []
    lateness = engine.allowed_lateness
    newest = -math.inf
    suppressed_before = engine.suppressed_by_cooldown
    for number, decoded in events:
        result.lines += 1
        if isinstance(decoded, Rejection):
            result.invalid_count += 1
            if len(result.invalid) < MAX_REPORTED_INVALID:
                where = f"{decoded.field}: " if decoded.field else ""
                result.invalid.append(InvalidLine(number, f"{decoded.reason}: {where}{decoded.detail}"))
            continue
        newest = max(newest, decoded.ts)
        state = states.get(decoded.account_id)
        if state is None:
            state = states[decoded.account_id] = engine.new_state()
        outcome, fired = engine.on_event(state, decoded, newest - lateness)
        findings.extend(fired)
        if outcome is Outcome.ACCEPTED:
            result.accepted += 1
            first = result.first_event_at
            result.first_event_at = decoded.ts if first is None else min(first, decoded.ts)
        elif outcome is Outcome.DUPLICATE:
            result.duplicates += 1
        else:
            result.late += 1
    if newest > -math.inf or until is not None:
        final = until if until is not None else newest - lateness
        result.final_watermark = final
        for account_id in sorted(states):
            findings.extend(engine.advance(states[account_id], final))
    result.last_event_at = newest if newest > -math.inf else None
    result.accounts = len(states)
    result.suppressed_by_cooldown = engine.suppressed_by_cooldown - suppressed_before
    accounts = accounts or {}
    findings.sort(key=_sort_key)
    result.alerts = [engine.to_alert(f, accounts.get(f.account_id), f.fired_at) for f in findings]
    return result


def alert_line(alert: Alert) -> bytes:
    """One alert as one JSON line (the DESIGN.md §6 shape)."""
    return orjson.dumps(alert.model_dump(mode="json")) + b"\n"


def iso_week(rfc3339: str) -> str:
    """``2026-11-23T06:00:00.000Z`` → ``2026-W48`` (ISO 8601 week, UTC)."""
    stamp = datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).astimezone(UTC)
    year, week, _ = stamp.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(slots=True)
class AlertBudget:
    """Alert volume: per rule, per severity, and per owner per ISO week."""

    per_rule: Counter[str] = field(default_factory=Counter)
    per_severity: Counter[str] = field(default_factory=Counter)
    per_owner_week: Counter[tuple[str, str]] = field(default_factory=Counter)


def owner_label(account: Account | None) -> str:
    """The owner a budget line is charged to: name, else email, else Slack, else NO_OWNER."""
    if account is None:
        return NO_OWNER
    owner = account.owner
    return owner.name or owner.email or owner.slack or NO_OWNER


def alert_budget(alerts: Iterable[Alert], accounts: dict[str, Account]) -> AlertBudget:
    """Count alerts for the summary."""
    budget = AlertBudget()
    for alert in alerts:
        budget.per_rule[alert.rule_id] += 1
        budget.per_severity[alert.severity] += 1
        budget.per_owner_week[(owner_label(accounts.get(alert.account_id)), iso_week(alert.fired_at))] += 1
    return budget
