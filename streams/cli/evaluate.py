"""``preempt evaluate`` — how early and how precisely alerts warned of churn (docs/prescient.md)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson
from click.core import ParameterSource
from pydantic import ValidationError

from rules.evaluation import AlertPoint, RuleScore, evaluate, render_table
from schemas.account import owner_identity
from schemas.alert import Alert
from schemas.decoder import Rejection, decode_event
from schemas.durations import parse_duration, parse_duration_or_seconds
from schemas.error_text import unreadable
from schemas.event import MAX_EVENT_BYTES, Event
from schemas.formatting import plural
from schemas.jsonl import first_error, read_file
from schemas.outcome import (
    DEFAULT_OUTCOME_EVENTS,
    OutcomeFileError,
    OutcomeKind,
    Outcomes,
    outcomes_from_events,
    parse_outcome_event_option,
    read_outcomes,
)
from schemas.rfc3339 import parse_rfc3339
from streams.cli.input_files import rereadable
from streams.cli.progress import file_progress
from streams.runtime.option_types import InputPath


def alert_point(alert: Alert) -> AlertPoint:
    """The parts of an alert that evaluation uses; the owner is :func:`owner_identity` (email, Slack, name)."""
    return AlertPoint(
        alert.rule_id, alert.account_id, parse_rfc3339(alert.fired_at), owner_identity(alert.account.owner)
    )


def load_alert_points(path: Path) -> list[AlertPoint]:
    """Every alert of an alerts JSONL file (``preempt backtest --output``, or the alerts topic read out);
    one clear error otherwise.

    An ``alert_id`` seen before is the same alert again (the stream delivers at least once, so a
    topic read out after a worker restart may hold one twice): counted once, and a note says how many.
    """
    points: list[AlertPoint] = []
    seen: set[str] = set()
    repeated = 0
    try:
        for line in read_file(path):
            try:
                alert = Alert.model_validate_json(line.raw)
            except ValidationError as exc:
                raise click.ClickException(
                    f"{path}: line {line.number}: not an alert ({first_error(exc)}); {_alerts_hint(line.raw)}"
                ) from None
            if alert.alert_id in seen:
                repeated += 1
                continue
            seen.add(alert.alert_id)
            try:
                points.append(alert_point(alert))
            except ValueError as exc:  # fired_at is a plain string in the alert contract
                raise click.ClickException(f"{path}: line {line.number}: fired_at: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read: {unreadable(exc)}") from None
    if repeated:
        click.echo(f"note: {plural(repeated, 'repeated alert')} in {path} (same alert_id) counted once", err=True)
    return points


def _alerts_hint(raw: bytes) -> str:
    """What to give instead of a line that is not an alert, from what the line looks like."""
    key, tab, value = raw.partition(b"\t")
    if tab and value.lstrip().startswith(b"{") and not key.lstrip().startswith(b"{"):
        return "the line starts with a key before the alert: dump the alerts topic's values only (no print.key)"
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and "outcome" in doc:
        return "it is an outcome: --alerts and --outcomes swapped?"
    return "give the --output of preempt backtest, or the alerts topic's values, one a line"


def _first_object(path: Path) -> dict[str, Any] | None:
    """The first line of a file as a JSON object, or None (empty, not JSON, not an object)."""
    for line in read_file(path):
        try:
            first = orjson.loads(line.raw)
        except orjson.JSONDecodeError:
            return None
        return first if isinstance(first, dict) else None
    return None


def _holds_alerts(path: Path) -> bool:
    """Whether a file given as outcomes starts with an alert (the two options swapped)."""
    first = _first_object(path)
    return first is not None and "alert_id" in first and "rule_id" in first


def outcome_names(options: tuple[str, ...]) -> dict[str, OutcomeKind]:
    """Event name → outcome from ``--outcome-event NAME=OUTCOME`` options (default: the Subscription * names)."""
    if not options:
        return dict(DEFAULT_OUTCOME_EVENTS)
    names: dict[str, OutcomeKind] = {}
    for option in options:
        try:
            name, kind = parse_outcome_event_option(option)
        except ValueError as exc:
            raise click.ClickException(f"--outcome-event {exc}") from None
        if names.setdefault(name, kind) != kind:  # the last one would have won without a word
            raise click.ClickException(
                f"--outcome-event {name!r} is named twice, as {names[name]} and as {kind}: give one outcome"
            )
    return names


def _outcome_events(path: Path, names: dict[str, OutcomeKind], invalid: list[tuple[int, str]]) -> Iterator[Event]:
    """The events of an events file that can announce an outcome (other lines are not decoded).

    A line is decoded when it holds one of the names as orjson writes them, or any JSON escape:
    ``json.dumps`` writes ``"Abonnement r\\u00e9sili\\u00e9"`` by default, and any writer may
    escape ``/`` or a quote, so a line with a backslash is decoded rather than skipped unread.
    A line that announces an outcome but is not a valid event (no offset in its timestamp, an
    unknown field…) is appended to ``invalid`` (line number, reason): a churn left out changes
    every figure, so the caller says so.
    """
    needles = [orjson.dumps(name)[1:-1] for name in names]
    for line in file_progress(path, read_file(path), "outcome events"):
        if b"\\" not in line.raw and not any(needle in line.raw for needle in needles):
            continue
        # the decoder itself, not rules.backtest's decode_lines: importing the rules engine took 0.3 s of
        # CPU before `preempt evaluate` could even say that a file does not exist
        decoded = decode_event(line.raw, max_bytes=MAX_EVENT_BYTES, max_future_skew=0.0, now=math.inf)
        if not isinstance(decoded, Rejection):
            yield decoded
        elif _names_an_outcome(line.raw, names, needles):
            invalid.append((line.number, decoded.detail))


def _names_an_outcome(raw: bytes, names: dict[str, OutcomeKind], needles: list[bytes]) -> bool:
    """Whether a line that is not a valid event was meant to announce an outcome."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return any(needle in raw for needle in needles)
    return isinstance(doc, dict) and isinstance(doc.get("event"), str) and doc["event"] in names


def _looks_like_events(path: Path) -> bool:
    """Auto-detection: an events file's lines have ``event`` and no ``outcome``."""
    first = _first_object(path)
    return first is not None and "event" in first and "outcome" not in first


def refuse_outcomes_as_events(path: Path, option: str) -> None:
    """One line when a file given as events starts with an outcome (an outcomes file where events belong): read
    as events, it would hold no outcome event, or no valid event at all."""
    first = _first_object(path)
    if first is not None and "outcome" in first and "event" not in first:
        raise click.ClickException(
            f"{option} {path}: line 1 is an outcome, not an event: give an outcomes file as --outcomes"
        )


def load_outcomes(
    outcomes_path: Path | None,
    events_path: Path | None,
    names: dict[str, OutcomeKind],
    *,
    events_option: str = "--outcomes-events",
    alerts_option: str | None = "--alerts",
) -> Outcomes:
    """Outcomes from an outcomes file, or from the outcome events of an events file (auto-detected).

    ``events_option`` names the option ``events_path`` came from, ``alerts_option`` the command's option for an
    alerts file (None: it has none), for the one line that says a file was given in the wrong place."""
    try:
        if outcomes_path is not None and _holds_alerts(outcomes_path):
            fix = (
                f"{alerts_option} and --outcomes swapped?"
                if alerts_option
                else "give the outcomes (or the events announcing them) as --outcomes"
            )
            raise click.ClickException(f"{outcomes_path}: line 1 is an alert, not an outcome: {fix}")
        if outcomes_path is not None and not _looks_like_events(outcomes_path):
            return read_outcomes(outcomes_path)
        source = outcomes_path if outcomes_path is not None else events_path
        if source is None:
            raise click.ClickException("give --outcomes FILE (outcomes or events JSONL) or --outcomes-events FILE")
        if outcomes_path is None:
            refuse_outcomes_as_events(source, events_option)
        invalid: list[tuple[int, str]] = []
        outcomes = outcomes_from_events(_outcome_events(source, names, invalid), names)
        if invalid:
            line, reason = invalid[0]
            click.echo(
                f"note: {plural(len(invalid), 'outcome event')} in {source} left out as not valid "
                f"(first: line {line}: {reason})",
                err=True,
            )
        return outcomes
    except OutcomeFileError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read outcomes: {unreadable(exc)}") from None


def _note_churns_out_of_reach(alerts: list[AlertPoint], outcomes: Outcomes, horizon_s: float) -> None:
    """Churns no alert of the file could have warned of (outcomes of a longer period than the alerts', e.g. a
    CRM's export of every year) count as missed in recall: say how many, so a low recall is read right."""
    first = min(alert.fired_at for alert in alerts)
    last = max(alert.fired_at for alert in alerts)
    churned = outcomes.churned
    out_of_reach = sorted(a for a, at in churned.items() if at <= first or at > last + horizon_s)
    if out_of_reach:
        click.echo(
            f"note: {len(out_of_reach)} of the {len(churned)} churns lie before the first alert or more than --horizon "
            f"after the last (first: {out_of_reach[0]}): no alert in the file could warn of them, and recall counts "
            "them as missed; give the outcomes of the period the alerts cover",
            err=True,
        )


def _note_left_out(overall: RuleScore) -> None:
    """Say what the table's figures leave out, so nothing is dropped without a word."""
    if overall.after_churn:
        click.echo(
            f"note: {overall.after_churn} of the {overall.alerts} alerts fired at or after their account's churn "
            "and count in no precision, recall or lead (after_churn in --json): events that go on after a churn, "
            "or a churn time earlier than it was",
            err=True,
        )
    if overall.alerts_without_owner:
        click.echo(
            f"note: {overall.alerts_without_owner} of the {overall.alerts} alerts are on accounts without an owner "
            "and count in no owner's alerts per week (give preempt backtest --accounts records with owners)",
            err=True,
        )


def parse_duration_option(value: str, option: str, *, allow_zero: bool = False) -> float:
    """Seconds of a duration option (``0``/``0d`` too with ``allow_zero``); a one-line error naming the option."""
    try:
        if allow_zero:
            return 0.0 if value.strip() == "0" else parse_duration_or_seconds(value)
        if value.strip() == "0":  # a zero, not something that is not a duration
            raise ValueError(f"{value!r}: a duration must be longer than zero")
        return parse_duration(value)
    except ValueError as exc:
        raise click.ClickException(f"{option}: {exc}") from None


@click.command("evaluate")
@click.option(
    "--alerts",
    "alerts_path",
    required=True,
    type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    callback=rereadable,
    help="alerts JSONL: preempt backtest --output, or the alerts topic's values one a line",
)
@click.option(
    "--outcomes",
    "outcomes_path",
    type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    callback=rereadable,
    help="outcomes JSONL (preempt simulate --outcomes-output), or an events JSONL holding outcome events",
)
@click.option(
    "--outcomes-events",
    "events_path",
    type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    callback=rereadable,
    help="events JSONL whose Subscription Cancelled/Renewed/… events are the outcomes",
)
@click.option(
    "--outcome-event",
    "outcome_events",
    multiple=True,
    metavar="NAME=OUTCOME",
    help="event name that announces an outcome, e.g. 'Account Closed=churned' (repeatable; replaces the defaults)",
)
@click.option(
    "--horizon",
    metavar="DURATION",
    default="60d",
    show_default=True,
    help="an alert is right if churn follows within this",
)
@click.option(
    "--lead",
    metavar="DURATION",
    default="14d",
    show_default=True,
    help="recall counts churns warned at least this early (0d: any warning)",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of the table (its keys: docs/prescient.md)")
def evaluate_command(
    alerts_path: Path,
    outcomes_path: Path | None,
    events_path: Path | None,
    outcome_events: tuple[str, ...],
    horizon: str,
    lead: str,
    as_json: bool,
) -> None:
    """Measure alerts against outcomes: per rule and for all rules, precision, recall at the lead
    time, median lead time and alerts per owner per week (docs/prescient.md, "preempt evaluate").

    \b
      preempt evaluate --alerts alerts.jsonl --outcomes outcomes.jsonl --horizon 60d --lead 14d
      preempt evaluate --alerts alerts.jsonl --outcomes events.jsonl --outcome-event 'Plan Cancelled=churned' --json
    """
    horizon_s = parse_duration_option(horizon, "--horizon")
    lead_s = parse_duration_option(lead, "--lead", allow_zero=True)
    if lead_s > horizon_s:
        default = click.get_current_context().get_parameter_source("lead") is ParameterSource.DEFAULT
        raise click.ClickException(
            f"--lead {lead}{' (the default)' if default else ''} is longer than --horizon {horizon}; "
            f"a warning must fit the horizon: give --lead {horizon} or less"
        )
    if outcomes_path is not None and events_path is not None:
        raise click.ClickException("give either --outcomes or --outcomes-events, not both")
    names = outcome_names(outcome_events)
    outcomes = load_outcomes(outcomes_path, events_path, names)
    if not outcomes.by_account:
        source = outcomes_path or events_path
        click.echo(
            f"note: no outcomes in {source} (outcome events: {', '.join(sorted(names))}; other names: "
            "--outcome-event 'NAME=churned'); every account counts as not churned",
            err=True,
        )
    alerts = load_alert_points(alerts_path)
    alerted = {alert.account_id for alert in alerts}
    unknown = sorted(alerted - outcomes.by_account.keys())
    if unknown and outcomes.by_account:  # none at all is said above
        click.echo(
            f"note: {len(unknown)} of the {len(alerted)} alerted accounts have no outcome in "
            f"{outcomes_path or events_path} and count as not churned (first: {unknown[0]}): an outcome not known "
            "yet, or account ids that differ between the files",
            err=True,
        )
    if not alerts:
        click.echo(f"note: no alerts in {alerts_path}: every churn counts as missed", err=True)
    else:
        _note_churns_out_of_reach(alerts, outcomes, horizon_s)
    result = evaluate(alerts, outcomes, horizon_s, lead_s)
    _note_left_out(result.overall)
    if as_json:
        click.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_table(result))
