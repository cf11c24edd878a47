"""``preempt events`` — the event contract from the command line: print the schema, check a file."""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from pathlib import Path

import click

from schemas.account import Account
from schemas.decoder import Rejection, decode_event
from schemas.errors import PreemptError
from schemas.event import UsageEvent
from schemas.formatting import plural
from schemas.json_schema import render
from schemas.jsonl import read_lines
from streams.runtime.option_types import InputPath, WholeNumberRange
from streams.runtime.settings import Settings
from streams.sdk.event_lines import accounts_file_note, describe_rejection


@click.group()
def events() -> None:
    """The event contract: JSON Schema and offline validation."""


@events.command()
@click.option("--account", "for_accounts", is_flag=True, help="Print the account schema instead.")
def schema(for_accounts: bool) -> None:
    """Print the JSON Schema of a usage event (or, with --account, of an account record).

    \b
      preempt events schema > event.schema.json
      preempt events schema --account
    """
    click.echo(render(Account if for_accounts else UsageEvent), nl=False)


@events.command()
@click.argument("path", type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
def validate(path: Path) -> None:
    """Check a JSONL file of events (or - for stdin) offline, exactly as the stream would.

    Writes every invalid line as FILE:LINE: REASON (FIELD): DETAIL, then a summary, all on
    stderr (stdout stays empty); exits 0 when every event is valid, 1 when any is invalid or
    the input holds no event at all. Timestamps are checked against this machine's clock
    (PREEMPT_MAX_FUTURE_SKEW_SECONDS), sizes against PREEMPT_MAX_EVENT_BYTES. Examples:

    \b
      preempt events validate events.jsonl
      preempt events validate - < events.jsonl
    """
    settings = Settings()
    now = time.time()
    valid = invalid = blank = 0
    stdin = str(path) == "-"
    name = Path("<stdin>") if stdin else path

    def count_blank(_size: int) -> None:
        nonlocal blank
        blank += 1

    number = 0  # the last line read
    first: bytes | None = None  # the first line, to name an accounts file given as events
    with contextlib.ExitStack() as stack:
        stream = click.get_binary_stream("stdin") if stdin else stack.enter_context(path.open("rb"))
        try:
            for line in read_lines(stream, on_blank=count_blank, name=str(name)):
                number = line.number
                first = line.raw if first is None else first
                result = decode_event(
                    line.raw,
                    max_bytes=settings.max_event_bytes,
                    max_future_skew=settings.max_future_skew_seconds,
                    now=now,
                )
                if isinstance(result, Rejection):
                    invalid += 1
                    click.echo(describe_rejection(name, line.number, result), err=True)
                else:
                    valid += 1
        except (KeyboardInterrupt, PreemptError):  # Ctrl-C, a file that fails part-way: how far it got
            if number:
                click.echo(f"{name}: stopped at line {number}: {valid} valid, {invalid} invalid so far", err=True)
            raise
    if valid + invalid == 0:
        raise click.ClickException(f"{name}: no events (the input is empty or only blank lines)")
    skipped = f", {plural(blank, 'blank line')} skipped" if blank else ""
    note = "" if valid else accounts_file_note(first)
    click.echo(f"{name}: {valid} valid, {invalid} invalid{skipped}{note}", err=True)
    sys.exit(1 if invalid else 0)


@events.command("dead-letters")
@click.option(
    "--limit",
    type=WholeNumberRange(min=0),
    default=50,
    show_default=True,
    help="Show at most this many dead letters, the newest.",
)
@click.option("--account", "account_id", default=None, help="Only dead letters keyed by this account.")
@click.option("--reason", default=None, help="Only this reason code, e.g. missing_field.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
def dead_letters(limit: int, account_id: str | None, reason: str | None, as_json: bool) -> None:
    """Show rejected events from preempt.events.dlq: why, where from, and the original value.

    Reads the whole topic from the beginning (bounded by a short idle timeout) and prints the
    newest --limit matches, oldest first. Examples:

    \b
      preempt events dead-letters --reason missing_field --limit 10
      preempt events dead-letters --account acme --json
    """
    from streams.runtime.broker_probe import probe_broker
    from streams.runtime.dead_letter_reader import missing_topic_note, read_dead_letters

    settings = Settings()
    probe_broker(settings)
    seen: Counter[str] = Counter()
    missing: set[str] = set()
    letters = read_dead_letters(
        settings, account_id=account_id, reason=reason, limit=limit, reasons_seen=seen, missing=missing
    )
    for letter in letters:
        click.echo(letter.to_json() if as_json else letter.describe())
    click.echo(f"{plural(len(letters), 'dead letter')} shown", err=True)
    for topic in sorted(missing):
        click.echo(missing_topic_note(settings, topic), err=True)
    if not letters and limit and (reason or account_id) and seen:  # a typo in a filter read as "none"
        held = ", ".join(f"{name} ({count})" for name, count in sorted(seen.items()))
        click.echo(f"note: none matches the filter; the topic holds {sum(seen.values())}: {held}", err=True)
