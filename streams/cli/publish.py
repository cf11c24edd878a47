"""``preempt publish`` — send one event, or a JSONL file of events, to ``preempt.events``."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson
from kafka.errors import KafkaError

from schemas.decoder import Rejection, decode_event, loads_exact
from schemas.error_text import connection_failure
from schemas.errors import EventRejectedError, PreemptError, PublishError
from schemas.event import Event
from schemas.formatting import plural
from schemas.jsonl import read_file, read_lines
from streams.cli.input_files import rereadable
from streams.cli.progress import progress_bar
from streams.runtime.broker_probe import probe_broker
from streams.runtime.option_types import InputPath
from streams.runtime.settings import Settings
from streams.sdk.event_lines import accounts_file_note, describe, describe_rejection
from streams.sdk.publisher import Publisher, encode_event, format_timestamp, new_event_id


def parse_prop(text: str) -> tuple[str, Any]:
    """``key=value`` → (key, value); the value is read as JSON when it is JSON (``rows=3``,
    ``trial=true``, ``tags=["a"]``) and as a string otherwise (``format=csv``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not key=value", param_hint="--prop")
    try:
        return key, loads_exact(value)
    except orjson.JSONDecodeError:
        return key, value


@click.command()
@click.option("--event", "event_name", help="Event name, e.g. 'Report Exported'.")
@click.option("--account", "account_id", help="Account id the event belongs to.")
@click.option("--user", "user_id", default=None, help="Acting user id.")
@click.option("--prop", "props", multiple=True, metavar="KEY=VALUE", help="A property (repeatable); JSON values ok.")
@click.option("--timestamp", metavar="TIME", default=None, help="RFC 3339 event time (default: now).")
@click.option(
    "--file",
    "file",
    type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    callback=rereadable,
    help="A JSONL file of canonical events to publish instead of one event (- reads stdin).",
)
def publish(
    event_name: str | None,
    account_id: str | None,
    user_id: str | None,
    props: tuple[str, ...],
    timestamp: str | None,
    file: Path | None,
) -> None:
    """Publish one event (--event/--account), or every valid event of a JSONL file (--file).

    Events are validated locally first, exactly as the stream validates them. With --file,
    each rejected line is reported as FILE:LINE: REASON (FIELD): DETAIL and the valid ones are
    still sent; the exit code is 1 if any line was rejected, 2 if Kafka did not acknowledge
    every event sent (a broker gone mid-file). Examples:

    \b
      preempt publish --event 'Report Exported' --account acme --prop format=csv
      preempt publish --file events.jsonl
    """
    if file is not None:
        if event_name or account_id or user_id or props or timestamp:
            raise click.UsageError("--file cannot be combined with --event/--account/--user/--prop/--timestamp")
        if next(read_file(file), None) is None:  # before connecting: nothing to send is a mistake
            raise click.ClickException(f"{file}: no events (the file is empty or only blank lines)")
        settings = Settings()
        if not _has_valid_event(file, settings):  # nothing to send: say why without waiting for Kafka
            _report_invalid_lines(file, settings)
            sys.exit(1)
        try:
            probe_broker(settings)
        except PreemptError:
            _report_invalid_lines(file, settings)  # what is wrong with the file too, not only with the broker
            raise
        try:
            code = _publish_file(file, settings)
        except KafkaError as exc:
            raise click.ClickException(f"cannot reach Kafka: {connection_failure(exc)}") from exc
        sys.exit(code)
    if event_name is None or account_id is None:
        # An empty --event "" or --account "" is given: the contract's check below names it.
        raise click.UsageError("give --event and --account (or --file)")
    properties: dict[str, Any] = {}
    for key, value in map(parse_prop, props):
        if key in properties:  # the last one silently won
            raise click.BadParameter(f"property {key!r} is given twice", param_hint="--prop")
        properties[key] = value
    settings = Settings()
    now = time.time()
    try:
        # Validate before connecting: a bad event is reported at once, even with no broker.
        payload = _one_event(event_name, account_id, user_id, properties, timestamp, now)
        encode_event(
            payload, max_bytes=settings.max_event_bytes, max_future_skew=settings.max_future_skew_seconds, now=now
        )
        with Publisher.from_settings(settings) as publisher:  # probes the broker first (5 s)
            publisher.publish(payload, now=now)
    except EventRejectedError as exc:
        field = f" ({exc.field})" if exc.field else ""
        raise click.ClickException(f"rejected: {exc.reason}{field}: {exc.detail}") from exc
    except PublishError as exc:
        raise click.ClickException(str(exc)) from exc
    except KafkaError as exc:
        raise click.ClickException(f"cannot reach Kafka: {connection_failure(exc)}") from exc
    click.echo(f"published {payload['event_id']} to {publisher.topic}")


def _one_event(
    event_name: str,
    account_id: str,
    user_id: str | None,
    properties: dict[str, Any],
    timestamp: str | None,
    now: float,
) -> dict[str, Any]:
    """The canonical event the options describe (the shape ``Publisher.track`` sends)."""
    payload: dict[str, Any] = {
        "event_id": new_event_id(),
        "event": event_name,
        "account_id": account_id,
        "timestamp": format_timestamp(timestamp, now),
    }
    if user_id is not None:
        payload["user_id"] = user_id
    if properties:
        payload["properties"] = properties
    return payload


def _has_valid_event(path: Path, settings: Settings) -> bool:
    """Whether ``path`` holds at least one event the contract accepts (read up to the first such line)."""
    now = time.time()
    return any(not isinstance(_decode(line.raw, settings, now), Rejection) for line in read_file(path))


def _decode(raw: bytes, settings: Settings, now: float) -> Event | Rejection:
    """``raw`` checked against the contract as the stream checks it: the event, or a ``Rejection``."""
    return decode_event(
        raw, max_bytes=settings.max_event_bytes, max_future_skew=settings.max_future_skew_seconds, now=now
    )


def _report_invalid_lines(path: Path, settings: Settings) -> None:
    """With the broker out of reach, check ``path`` offline as ``events validate`` does and name its invalid
    lines (the user would otherwise learn of them only after fixing the broker); silent when all are valid."""
    now = time.time()
    valid = invalid = 0
    first: bytes | None = None  # the first line, to name an accounts file given as events
    with contextlib.suppress(PreemptError, OSError):  # a file that fails part-way: the broker's error is still the one
        for line in read_file(path):
            first = line.raw if first is None else first
            result = _decode(line.raw, settings, now)
            if isinstance(result, Rejection):
                invalid += 1
                click.echo(describe_rejection(path, line.number, result), err=True)
            else:
                valid += 1
    if invalid:
        note = "" if valid else accounts_file_note(first)
        click.echo(f"{path}: {valid} valid, {invalid} invalid (nothing was sent){note}", err=True)


def _publish_file(path: Path, settings: Settings) -> int:
    """Publish the valid lines of ``path``; report the others. Returns the exit code."""
    rejected = number = 0  # number: the last line read
    stopped: PublishError | None = None  # a send Kafka did not take (no metadata within max_block_ms)
    publisher = Publisher.from_settings(settings)
    try:
        with (
            path.open("rb") as stream,
            progress_bar(total=path.stat().st_size, unit="B", unit_scale=True, desc="publishing") as bar,
        ):
            for line in read_lines(stream, on_blank=bar.update, name=str(path)):
                number = line.number
                try:
                    publisher.publish_json(line.raw)
                except EventRejectedError as exc:
                    rejected += 1
                    bar.write(describe(path, line.number, exc.reason, exc.field, exc.detail), file=sys.stderr)
                bar.update(line.size)
    except PublishError as exc:
        stopped = exc
    except (KeyboardInterrupt, PreemptError):
        # Ctrl-C, or a file that fails part-way: what was sent is flushed, and the user learns how far it got
        _close(publisher)
        tally = publisher.tally
        click.echo(
            f"{path}: stopped at line {number}: Kafka acknowledged {tally.acknowledged} of the "
            f"{plural(tally.sent, 'event')} sent to {publisher.topic}; {plural(rejected, 'line')} rejected",
            err=True,
        )
        raise
    _close(publisher)
    shortfall = publisher.tally.shortfall(stopped)
    if shortfall is not None:
        # a broker that went away and did not come back: how many got through, not the flush's traceback
        click.echo(f"Error: {shortfall}", err=True)
        return 2
    click.echo(
        f"published {plural(publisher.sent, 'event')} to {publisher.topic}; {plural(rejected, 'line')} rejected",
        err=True,
    )
    return 1 if rejected else 0


def _close(publisher: Publisher) -> None:
    with contextlib.suppress(PublishError):  # what Kafka did not take is counted in the tally
        publisher.close()
