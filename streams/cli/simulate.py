"""``preempt simulate`` — realistic product-usage traffic from customer personas.

Three modes:

* files: ``--output events.jsonl [--accounts-output accounts.jsonl] [--outcomes-output outcomes.jsonl]``
  for ``preempt backtest``, ``preempt train`` and ``preempt evaluate``;
* backfill: ``--backfill`` publishes ``--days`` of history to Kafka as fast as the broker takes it;
* live (default): publishes at ``--rate`` events/s stamped with the current time until Ctrl-C
  or ``--duration``.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from kafka.errors import KafkaError
from tqdm import tqdm

from schemas.event import Event, format_ts
from schemas.formatting import plural
from schemas.outcome import OUTCOME_KINDS
from schemas.rfc3339 import MAX_EPOCH, parse_rfc3339
from streams.cli.main import INTERRUPTED_EXIT
from streams.cli.output_paths import refuse_overwriting_inputs, writable_output, writing, written_whole
from streams.cli.progress import progress_bar
from streams.runtime.broker_probe import probe_broker
from streams.runtime.option_types import FiniteFloatRange, WholeNumberRange
from streams.runtime.settings import Settings
from streams.simulate.files import write_account_outcomes, write_accounts, write_events
from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.local_time import DAY_MS
from streams.simulate.outcomes import last_renewal_day
from streams.simulate.publishing import KafkaSink, paced_now
from streams.simulate.summary import SimulationSummary

_YEAR_10000_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z, the first instant with no date
# A progress bar is only worth it past this many account-days.
_PROGRESS_ACCOUNT_DAYS = 500


def _parse_start(value: str | None) -> int | None:
    """Epoch ms of ``--start``, in the grammar every Preempt timestamp uses (``schemas.rfc3339``)."""
    if value is None:
        return None
    try:
        return round(parse_rfc3339(value) * 1000)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param_hint="--start") from None


def _check_period(start_ms: int, days: int, backfill: bool, settings: Settings | None) -> None:
    """Refuse a period whose events the contract would reject: past 9999, or (backfill) in the future."""
    end_ms = start_ms + days * DAY_MS
    if end_ms > MAX_EPOCH * 1000:
        raise click.BadParameter(
            "--start + --days runs past 9999-12-31, where event timestamps end; choose an earlier --start",
            param_hint="--start",
        )
    # The account records' renewal dates reach past the end (an OverflowError traceback past 9999-12-31)
    reach_ms = last_renewal_day(days) * DAY_MS
    if start_ms + reach_ms >= _YEAR_10000_MS:
        raise click.BadParameter(
            f"the accounts' renewal dates reach up to {plural(last_renewal_day(days), 'day')} after --start, past "
            f"9999-12-31 where dates end; choose a --start before {format_ts((_YEAR_10000_MS - reach_ms) / 1000)}",
            param_hint="--start",
        )
    if backfill and settings is not None:
        latest_ms = (time.time() + settings.max_future_skew_seconds) * 1000
        if end_ms > latest_ms:
            ends = datetime.fromtimestamp(end_ms / 1000, tz=UTC).isoformat()
            raise click.BadParameter(
                f"--backfill publishes history, but --start + --days ends at {ends}, in the future: the stream "
                "would dead-letter those events (future_timestamp). Choose an earlier --start, or write files "
                "(--output) for a backtest",
                param_hint="--start",
            )


def _check_mode(live: bool, backfill: bool, output: Path | None, accounts_output: Path | None) -> None:
    """Options of another mode than the one chosen were silently ignored (a --backfill wrote no --output)."""
    if backfill and (output is not None or accounts_output is not None):
        raise click.UsageError(
            "--backfill publishes to Kafka and writes no --output/--accounts-output file; run the two separately "
            "(the same --seed and --start give the same events)"
        )
    ctx = click.get_current_context()
    if live and ctx.get_parameter_source("days") == click.core.ParameterSource.COMMANDLINE:
        # Live traffic is stamped with the wall clock and paced by --rate, so simulated days have no length a user
        # sees (a day of 20 accounts went by in minutes at 200 events/s); --days was ignored without a word.
        raise click.UsageError(
            "--days is for files (--output) and --backfill; live traffic runs until Ctrl-C, or give --duration SECONDS"
        )
    if not live:
        for name in ("rate", "duration"):
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
                mode = "--backfill" if backfill else "writing files"
                raise click.UsageError(f"--{name} is for live traffic; {mode} goes as fast as it can")


@click.command()
@click.option(
    "--accounts",
    "account_count",
    type=WholeNumberRange(1, 100_000),
    default=100,
    show_default=True,
    help="How many customer accounts to simulate.",
)
@click.option("--days", type=WholeNumberRange(1, 3650), default=30, show_default=True, help="Days of history.")
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Same seed (and start) → byte-identical files and event ids. Default: random.",
)
@click.option(
    "--start",
    "start",
    metavar="TIME",
    default=None,
    help="RFC 3339 start. Default: today 00:00 UTC − days (files), now − days (backfill), now (live).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, readable=False, path_type=Path),
    default=None,
    callback=writable_output,
    help="Write events JSONL.",
)
@click.option(
    "--accounts-output",
    type=click.Path(dir_okay=False, readable=False, path_type=Path),
    default=None,
    callback=writable_output,
    help="Write the simulated account records (owner, tier, MRR…) as JSONL, for backtest --accounts.",
)
@click.option(
    "--outcomes-output",
    type=click.Path(dir_okay=False, readable=False, path_type=Path),
    default=None,
    callback=writable_output,
    help="Write each account's outcome (churned/renewed/contracted/expanded, when) as JSONL. Turns on the "
    "account lifecycle: churned accounts go silent, outcomes are also sent as Subscription * events.",
)
@click.option("--backfill", is_flag=True, help="Publish --days of history to Kafka instead of live traffic.")
@click.option("--rate", type=FiniteFloatRange(min=0.1), default=50.0, show_default=True, help="Live events/s.")
@click.option(
    "--duration",
    type=FiniteFloatRange(min=0.0, min_open=True),
    default=None,
    help="Live: stop after this many seconds (default: run until Ctrl-C).",
)
def simulate(
    account_count: int,
    days: int,
    seed: int | None,
    start: str | None,
    output: Path | None,
    accounts_output: Path | None,
    outcomes_output: Path | None,
    backfill: bool,
    rate: float,
    duration: float | None,
) -> None:
    """Simulate customer accounts (healthy, stalled onboarding, decaying, failed payments, NPS
    detractors…) and write their events to files or publish them to Kafka.

    Each account's persona is in its tags (persona:decaying). Examples:

    \b
      preempt simulate --days 30 --accounts 100 --seed 7 --output events.jsonl --accounts-output accounts.jsonl
      preempt simulate --days 180 --accounts 300 --seed 1 --output events.jsonl --outcomes-output outcomes.jsonl
      preempt simulate --accounts 20 --rate 100 --duration 60
    """
    seed = secrets.randbelow(1_000_000) if seed is None else seed
    start_ms = _parse_start(start)
    live = output is None and accounts_output is None and outcomes_output is None and not backfill
    to_files = not live and not backfill
    _check_mode(live, backfill, output, accounts_output)
    refuse_overwriting_inputs(
        {"--output": output, "--accounts-output": accounts_output, "--outcomes-output": outcomes_output}, {}
    )
    # a Ctrl-C of a files run, from here on, writes no file (_to_files renames them all at its end)
    paths = [path for path in (outcomes_output, accounts_output, output) if path is not None]
    with interrupt_writes_nothing(paths) if to_files else contextlib.nullcontext():
        settings: Settings | None = None
        if not to_files:
            settings = Settings()
        if start_ms is None:
            now_ms = round(time.time() * 1000)
            # Files start at a UTC midnight, so the same --seed gives the same files (and event ids) all day
            # long without --start; a backfill ends now, so the live traffic that follows it has no gap.
            if live:
                start_ms = now_ms
            elif backfill:
                start_ms = now_ms - days * DAY_MS
            else:
                start_ms = now_ms // DAY_MS * DAY_MS - days * DAY_MS
        else:
            _check_period(start_ms, days, backfill, settings)
        if settings is not None:
            probe_broker(settings)  # a few seconds, not the client's 30 s of retries, when no broker answers
        sim = Simulation(
            SimulationConfig(
                seed=seed,
                accounts=account_count,
                start_ms=start_ms,
                days=None if live else days,
                lifecycle=outcomes_output is not None,
            )
        )
        summary = SimulationSummary(sim.accounts)
        accounts = f"{account_count} account" if account_count == 1 else f"{account_count} accounts"
        click.echo(f"seed {seed}, {accounts}, start {format_ts(start_ms / 1000)}", err=True)
        began = time.monotonic()
        if to_files:
            _to_files(sim, summary, days, start_ms, output, accounts_output, outcomes_output)
    cut_short = False
    if to_files:
        _note_future_history(start_ms + days * DAY_MS, output)
    else:
        if outcomes_output is not None:  # with --backfill: whole before anything is published
            _to_files(sim, summary, days, start_ms, None, None, outcomes_output)
        cut_short = _to_kafka(sim, summary, days, live, rate, duration, settings or Settings())
    click.echo(summary.render(time.monotonic() - began))
    if cut_short:
        # Ctrl-C is how live traffic stops; a backfill it stops is incomplete history, not success (exit 130)
        raise KeyboardInterrupt
    if outcomes_output is not None:
        kinds: Counter[str] = Counter(a.outcome.outcome for a in sim.accounts)
        counts = ", ".join(f"{kinds[k]} {k}" for k in OUTCOME_KINDS if kinds[k])
        click.echo(f"outcomes: {counts} → {outcomes_output}")


def _note_future_history(end_ms: int, output: Path | None) -> None:
    """A history that ends after today is refused by the stream and, without --until, by the backtest: say so."""
    if output is None or end_ms <= time.time() * 1000:
        return
    ends = format_ts(end_ms / 1000)
    click.echo(
        f"note: the history ends at {ends}, after this machine's clock: replay it with "
        f"`preempt backtest --until {ends}` (without it, and in the stream, its events are future_timestamp)",
        err=True,
    )


def _days_bar(sim: Simulation, days: int) -> tqdm:
    quiet = len(sim.accounts) * days < _PROGRESS_ACCOUNT_DAYS
    return progress_bar(total=days, unit="day", desc="simulating", shown=not quiet, leave=False)


def _counted(events: Iterator[Event], summary: SimulationSummary) -> Iterator[Event]:
    for event in events:
        summary.observe(event)
        yield event


def _to_files(
    sim: Simulation,
    summary: SimulationSummary,
    days: int,
    start_ms: int,
    output: Path | None,
    accounts_output: Path | None,
    outcomes_output: Path | None,
) -> None:
    """Write the files asked for, all or none: each goes to a temporary file beside it, renamed over it once every
    file is written. A Ctrl-C (or a failure) part-way leaves no partial file — a long history took minutes, and an
    events file cut at a random day replayed without a word — and an earlier file of the same name as it was
    (the caller's :func:`interrupt_writes_nothing` says so in one line, exit 130)."""
    paths = [path for path in (outcomes_output, accounts_output, output) if path is not None]
    with interrupt_writes_nothing(paths), written_whole(paths) as temporary:
        if outcomes_output is not None:
            with writing(outcomes_output):
                write_account_outcomes(temporary[outcomes_output], sim.accounts, start_ms)
        if accounts_output is not None:
            with writing(accounts_output):
                write_accounts(temporary[accounts_output], sim.accounts)
        if output is not None:
            with writing(output), _days_bar(sim, days) as bar:
                events = sim.events(on_day=lambda _day: bar.update(1))
                summary.bytes_written = write_events(temporary[output], _counted(events, summary))


@contextmanager
def interrupt_writes_nothing(paths: list[Path]) -> Iterator[None]:
    """A Ctrl-C within the block is one line saying the files were not written (left as they were), exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        names = ", ".join(str(path) for path in paths)
        click.echo(f"Interrupted (Ctrl-C); nothing written: {names} left as before (or not made)", err=True)
        raise click.exceptions.Exit(INTERRUPTED_EXIT) from None


def _to_kafka(
    sim: Simulation,
    summary: SimulationSummary,
    days: int,
    live: bool,
    rate: float,
    duration: float | None,
    settings: Settings,
) -> bool:
    """Publish the accounts and the events; whether a backfill was cut short by Ctrl-C (after flushing)."""
    sink = KafkaSink(settings)
    cut_short = False
    stopped: KafkaError | None = None  # a send that Kafka did not take (no metadata within max_block_ms)
    try:
        sink.publish_accounts(sim.accounts)
        if live:
            total = round(rate * duration) if duration is not None else None
            with progress_bar(total=total, unit="ev", desc="publishing", leave=False) as bar:
                for event in paced_now(sim.events(), rate, duration):
                    summary.bytes_written += sink.publish_event(event)
                    summary.observe(event)
                    bar.update(1)
        else:
            with _days_bar(sim, days) as bar:
                for event in _counted(sim.events(on_day=lambda _day: bar.update(1)), summary):
                    summary.bytes_written += sink.publish_event(event)
    except KeyboardInterrupt:
        click.echo("interrupted; flushing what was sent", err=True)
        cut_short = not live
    except KafkaError as exc:
        stopped = exc
    finally:
        sink.close()
    shortfall = sink.tally.shortfall(stopped)
    if shortfall is not None:
        # a broker that went away and did not come back: one line, not the final flush's traceback
        raise click.ClickException(shortfall)
    return cut_short
