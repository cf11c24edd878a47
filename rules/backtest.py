"""The backtest: the same engine over a JSONL file of events, offline (docs/rules.md, "Backtesting").

Events are read in file order. One clock (``rules.clock.EventTimeClock``, event time only) per
partition, as the stream worker keeps one per partition of ``preempt.events`` (the caller says
which partition an account's events go to; without that, one clock over the file): its watermark
is the highest accepted event time of the partition so far minus the allowed lateness (it starts
at the partition's first event; a duplicate or a late event does not move it, as in the stream), so
events out of order by less than the lateness are evaluated exactly as if sorted, and later ones are
counted as late. At the end of input no event can arrive late any more, so the clocks move to the
newest event time and every event of the file is evaluated (deadlines up to that time fire); or to
``until`` when given, so pending deadlines up to then fire. (``final_clock="watermark"`` keeps each
clock where an event-time-only stream that read the same file would stand, its partition's
``newest − lateness``: events stamped at or after it are then not evaluated.) ``until`` also cuts
the replay: events stamped at or after it are not evaluated (counted in ``after_until``); reading
stops once every partition has had an event more than the lateness past ``until`` (any later event
before ``until`` would be late anyway); an ``until`` before the data (nothing could be replayed)
raises ``BacktestRangeError``.
Invalid lines are reported with their line numbers and skipped. Same rules + same file ⇒
byte-identical output (alerts are sorted, and ``emitted_at`` is ``fired_at``).

Pure apart from reading the input it is given: no clock, no Kafka.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson
from pydantic import ValidationError

from rules.clock import EventTimeClock
from rules.engine import AlertTooLargeError, EventOutcome, RuleEngine
from rules.findings import Finding
from rules.kinds.base import at_limit_counts
from rules.state import AccountState
from schemas.account import Account, Owner, owner_identity
from schemas.alert import Alert
from schemas.decoder import Rejection, decode_event
from schemas.errors import BacktestRangeError
from schemas.event import MAX_EVENT_BYTES, Event, format_ts
from schemas.jsonl import Line, first_error, read_file
from schemas.observed import Anomaly

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
    after_until: int = 0
    """Valid events stamped at or after ``until`` that were read and skipped."""
    stopped_at_line: int | None = None
    """The line where reading stopped because no later event could be before ``until``."""
    not_built: int = 0
    """Findings whose alert would be too large (``rules.engine.AlertTooLargeError``): the stream dead-letters them."""
    not_built_reason: str = ""
    """The first of them, in words."""
    at_limit: dict[tuple[Anomaly, str], int] = field(default_factory=dict)
    """By anomaly and rule: events a per-user rule did not evaluate (a user beyond ``MAX_USER_KEYS``), alerts sent
    without their cooldown kept, risk days counted by sketch (``rules.kinds.base.user_not_tracked``), as the
    worker counts them in its metrics."""


def decode_lines(
    lines: Iterable[Line], max_bytes: int = MAX_EVENT_BYTES, *, now: float = math.inf, max_future_skew: float = 0.0
) -> Iterator[tuple[int, Event | Rejection]]:
    """Decode each line (``schemas.jsonl.read_file``) with the stream's own decoder.

    ``now`` (the wall clock, given by the caller: this module reads no clock) turns on the stream's
    future check: an event stamped more than ``max_future_skew`` after it is ``future_timestamp``, as
    the stream and ``preempt events validate`` refuse it. History is never ahead of the clock, so a
    replay of real history gives the same result whenever it runs; without the check one event from a
    client with a broken clock moved the replay's clock years ahead and every later event was late.
    """
    for line in lines:
        yield line.number, decode_event(line.raw, max_bytes=max_bytes, max_future_skew=max_future_skew, now=now)


def load_accounts(path: Path) -> tuple[dict[str, Account], list[InvalidLine]]:
    """Accounts from a JSONL file (one ``schemas.account.Account`` per line); bad lines reported."""
    accounts: dict[str, Account] = {}
    invalid: list[InvalidLine] = []
    for line in read_file(path):
        try:
            account = Account.model_validate_json(line.raw)
        except ValidationError as exc:
            invalid.append(InvalidLine(line.number, first_error(exc)))
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
    *,
    allowed_lateness: float,
    final_clock: Literal["newest", "watermark"] = "newest",
    partition_of: Callable[[str], int] | None = None,
    partitions: int = 1,
) -> BacktestResult:
    """Run every event through ``engine``; return the sorted alerts.

    One clock per partition, as the stream worker keeps: ``partition_of`` gives an account's
    partition of ``partitions`` (the CLI passes Kafka's default partitioner, the stream's); without
    it one clock over the whole file. A clock's watermark is the newest accepted event time of its
    partition so far minus ``allowed_lateness``. ``accounts`` enriches the alerts and, bound to the
    engine (``RuleEngine.bind_accounts``), is where ``risk`` models with account features read the
    records, as the worker reads the accounts topic.

    Without ``until`` the clocks end at the file's newest event time, every event evaluated
    (``final_clock="watermark"``: each partition at its newest − ``allowed_lateness``, as an
    event-time-only stream would stand). With ``until``, events stamped at or after it are cut
    (counted, not evaluated) and the clocks end at ``until``; reading stops once every partition has
    an event more than the lateness past it. Raises ``BacktestRangeError`` when ``until`` is before
    the data: as soon as the events show that nothing could be replayed, or at the end if nothing was.
    """
    result = BacktestResult()
    if accounts is not None:
        engine.bind_accounts(accounts.get)  # risk models with account features read the same records
    if partition_of is None:
        partitions = 1
    states: dict[str, AccountState] = {}
    findings: list[Finding] = []
    clocks = [EventTimeClock(allowed_lateness) for _ in range(partitions)]
    home: dict[str, int] = {}  # account -> partition (the partitioner is not cheap)
    # Partitions that read an event more than the lateness past until: their later events before until
    # are late for them (as in a stream, which does not stop at until), judged against this time.
    closed: dict[int, float] = {}
    suppressed_before = engine.suppressed_by_cooldown
    at_limit_before = at_limit_counts()
    earliest: float | None = None  # the first event's time, for the message when until is before the data
    for number, decoded in events:
        result.lines += 1
        if isinstance(decoded, Rejection):
            result.invalid_count += 1
            if len(result.invalid) < MAX_REPORTED_INVALID:
                where = f"{decoded.field}: " if decoded.field else ""
                result.invalid.append(InvalidLine(number, f"{decoded.reason}: {where}{decoded.detail}"))
            continue
        account_id = decoded.account_id
        if partition_of is None:
            p = 0
        else:
            p = home.get(account_id, -1)
            if p < 0:
                p = home[account_id] = partition_of(account_id)
        clock = clocks[p]
        if until is not None and decoded.ts >= until:
            earliest = decoded.ts if earliest is None else min(earliest, decoded.ts)
            if clock.watermark_at(decoded.ts) >= until:
                # Every later event of this partition is at/after until or late behind this one.
                closed[p] = max(closed.get(p, -math.inf), clock.watermark_at(decoded.ts))
                if len(closed) == partitions:  # every partition: the replay ends here
                    if all(c.max_event_time is None for c in clocks):
                        raise _until_before_data(until, earliest)
                    result.stopped_at_line = number
                    break
            result.after_until += 1
            continue
        # The clock as the event arrives (or where its first event starts it); only an accepted event
        # moves it, as in the stream: a duplicate restamped later, or a late event, is ignored whole.
        seen = clock.max_event_time
        watermark = decoded.ts - allowed_lateness if seen is None else seen - allowed_lateness
        state = states.get(account_id)
        if state is None:
            state = states[account_id] = engine.new_state()
        outcome, fired = engine.on_event(state, decoded, watermark, closed.get(p))
        findings.extend(fired)
        if outcome is EventOutcome.ACCEPTED:
            clock.observe(decoded.ts)
            result.accepted += 1
            first = result.first_event_at
            result.first_event_at = decoded.ts if first is None else min(first, decoded.ts)
        elif outcome is EventOutcome.DUPLICATE:
            result.duplicates += 1
        else:
            result.late += 1
    newest = max((c.max_event_time for c in clocks if c.max_event_time is not None), default=None)
    if until is not None and result.after_until and newest is None:
        raise _until_before_data(until, earliest)
    if until is not None:
        result.final_watermark = until
        targets = dict.fromkeys(range(partitions), until)
    elif newest is None:
        targets = {}
    elif final_clock == "newest":
        # The file has ended: nothing can arrive late any more, so its newest events are evaluated too
        # (just past the newest time, so events at that instant are applied; no later deadline is due).
        result.final_watermark = newest
        targets = dict.fromkeys(range(partitions), math.nextafter(newest, math.inf))
    else:  # where an event-time-only stream stands: each partition at its own watermark
        result.final_watermark = newest - allowed_lateness
        targets = {p: wm for p, c in enumerate(clocks) if (wm := c.watermark()) is not None}
    for account_id in sorted(states):
        target = targets.get(home.get(account_id, 0))
        if target is not None:
            findings.extend(engine.advance(states[account_id], target))
    result.last_event_at = newest
    result.accounts = len(states)
    result.suppressed_by_cooldown = engine.suppressed_by_cooldown - suppressed_before
    result.at_limit = {
        key: count - at_limit_before.get(key, 0)
        for key, count in at_limit_counts().items()
        if count > at_limit_before.get(key, 0)
    }
    accounts = accounts or {}
    findings.sort(key=_sort_key)
    for finding in findings:
        try:
            result.alerts.append(engine.to_alert(finding, accounts.get(finding.account_id), finding.fired_at))
        except AlertTooLargeError as exc:  # the stream dead-letters it (alert_build_failed): never an alert
            result.not_built += 1
            result.not_built_reason = result.not_built_reason or str(exc)
    return result


def _until_before_data(until: float, first: float | None) -> BacktestRangeError:
    first_text = f" (the first event is at {format_ts(first)})" if first is not None else ""
    return BacktestRangeError(
        f"--until {format_ts(until)} is not after the first event{first_text}: nothing would be replayed "
        "(events at or after --until are not); "
        "give a later --until, or leave it out to replay the whole file"
    )


def alert_line(alert: Alert) -> bytes:
    """One alert as one JSON line (the alert contract, ``schemas/alert.py``)."""
    return orjson.dumps(alert.model_dump(mode="json")) + b"\n"


def iso_week(rfc3339: str) -> str:
    """``2026-11-23T06:00:00.000Z`` → ``2026-W48`` (ISO 8601 week, UTC)."""
    stamp = datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).astimezone(UTC)
    year, week, _ = stamp.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(slots=True)
class AlertBudget:
    """Alert volume: per rule, per severity, per owner per ISO week, and per owner × rule × week."""

    per_rule: Counter[str] = field(default_factory=Counter)
    per_severity: Counter[str] = field(default_factory=Counter)
    per_owner_week: Counter[tuple[str, str]] = field(default_factory=Counter)
    per_owner_week_rule: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def per_owner(self) -> Counter[str]:
        """Total alerts per owner over the whole replay."""
        totals: Counter[str] = Counter()
        for (owner, _week), count in self.per_owner_week.items():
            totals[owner] += count
        return totals

    def rules_of(self, owner: str, week: str) -> list[tuple[str, int]]:
        """``(rule_id, alerts)`` charged to ``owner`` in ``week``, most alerts first, then by rule id."""
        rows = [(rule, n) for (o, w, rule), n in self.per_owner_week_rule.items() if o == owner and w == week]
        return sorted(rows, key=lambda row: (-row[1], row[0]))

    def over(self, limit: int) -> list[tuple[str, str, int]]:
        """``(owner, week, alerts)`` for every owner-week with more than ``limit`` alerts, by owner then week."""
        return sorted((owner, week, n) for (owner, week), n in self.per_owner_week.items() if n > limit)


def owner_labels(accounts: dict[str, Account]) -> dict[str, str]:
    """Account id → the owner its budget lines are charged to, for every account with an owner on record.

    Owners are told apart as ``preempt evaluate`` tells them (``owner_identity``: email, else Slack id,
    else name), never by name alone: two CSMs called "Alex Kim" have two budgets, shown as
    ``Alex Kim <alex@one.example>`` and ``Alex Kim <alex@two.example>``; an owner whose name no other
    owner has is shown by name. One owner written two ways is shown as its first account (by id) writes it.
    """
    shown: dict[str, Owner] = {}  # identity → the record it is shown as
    identity_of: dict[str, str] = {}
    for account_id in sorted(accounts):
        owner = accounts[account_id].owner
        identity = owner_identity(owner.model_dump())
        if identity is not None:
            identity_of[account_id] = identity
            shown.setdefault(identity, owner)
    names = Counter(_name(owner) for owner in shown.values())
    label = {identity: _label(owner, names) for identity, owner in shown.items()}
    return {account_id: label[identity] for account_id, identity in identity_of.items()}


def _name(owner: Owner) -> str:
    return " ".join((owner.name or owner.email or owner.slack or "").split())


def _label(owner: Owner, names: Counter[str]) -> str:
    name = _name(owner)
    if names[name] == 1 or not owner.name:
        return name
    if owner.email:
        return f"{name} <{owner.email.strip()}>"
    return f"{name} ({owner.slack.strip()})" if owner.slack else name


def alert_budget(alerts: Iterable[Alert], accounts: dict[str, Account]) -> AlertBudget:
    """Count alerts for the summary."""
    budget = AlertBudget()
    owners = owner_labels(accounts)
    for alert in alerts:
        budget.per_rule[alert.rule_id] += 1
        budget.per_severity[alert.severity] += 1
        owner, week = owners.get(alert.account_id, NO_OWNER), iso_week(alert.fired_at)
        budget.per_owner_week[(owner, week)] += 1
        budget.per_owner_week_rule[(owner, week, alert.rule_id)] += 1
    return budget
