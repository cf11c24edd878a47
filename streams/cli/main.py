"""The ``preempt`` command line: one group, one module per subcommand in ``streams/cli``.

This is the one place that knows every command, including the notifier's (``alerts.cli.routes``),
so it is the only module in ``streams`` that names modules of ``alerts``. A command's module is
imported when the command runs, shows its ``--help`` or reports a bad flag (``COMMANDS``,
``streams/cli/lazy_group.py``): ``preempt --help`` and a mistyped command import no command's module,
nor Kafka, Faust or pydantic, and a command imports only its own.

It is also the one place that turns a user's error into one line: any ``PreemptError`` (a bad file, an
invalid event, an unreachable broker) and a bad ``PREEMPT_*`` setting print ``Error: …`` and exit 1.
A usage error (a bad flag, a missing option, a mistyped command, which gets a "Did you mean" when one is
close) is one line too, ``Error: … Try 'preempt CMD -h' for help.``, exit 2, instead of click's synopsis,
hint and blank line before the error.
Ctrl-C (SIGINT) prints one line and exits 130, as a shell reports a command ended by SIGINT (128 + 2),
so a script can tell an interrupted run from a failed one. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import IO, Any

INTERRUPTED_EXIT = 130  # 128 + SIGINT
INTERRUPTED = "Interrupted (Ctrl-C); stopped before finishing: any file it was writing is incomplete."

# A Ctrl-C before the group's handler exists is the same one line and exit 130, not a traceback.
try:
    import click

    from streams.cli.lazy_group import LazyCommand, LazyGroup
except KeyboardInterrupt:
    sys.stderr.write(INTERRUPTED + "\n")
    raise SystemExit(INTERRUPTED_EXIT) from None

# Each command's loader imports its module when the command is run or asked for its help (a dict of
# functions, no dotted paths: import-linter sees each dependency).


def _alerts() -> click.Command:
    from alerts.cli.dead_letters import dead_letters
    from alerts.cli.preview import alerts_group

    alerts_group.add_command(dead_letters)
    return alerts_group


def _backtest() -> click.Command:
    from streams.cli.backtest import backtest

    return backtest


def _evaluate() -> click.Command:
    from streams.cli.evaluate import evaluate_command

    return evaluate_command


def _events() -> click.Command:
    from streams.cli.events import events

    return events


def _ingest() -> click.Command:
    from streams.cli.ingest import ingest

    return ingest


def _notifier() -> click.Command:
    from alerts.cli.notifier import notifier

    return notifier


def _publish() -> click.Command:
    from streams.cli.publish import publish

    return publish


def _routes() -> click.Command:
    from alerts.cli.routes import routes

    return routes


def _rules() -> click.Command:
    from streams.cli.rules import rules_group

    return rules_group


def _simulate() -> click.Command:
    from streams.cli.simulate import simulate

    return simulate


def _train() -> click.Command:
    from streams.cli.train import train_command

    return train_command


def _worker() -> click.Command:
    from streams.cli.worker import worker

    return worker


# Every command and its short help, which ``preempt --help`` lists without importing it.
# tests/unit/streams/cli/test_help.py checks each line against the command's docstring.
COMMANDS: dict[str, LazyCommand] = {
    "alerts": LazyCommand(_alerts, "Work with alerts (the preempt.alerts values)."),
    "backtest": LazyCommand(
        _backtest, "Replay events (JSONL) through the rules offline and summarise the alerts they would send."
    ),
    "evaluate": LazyCommand(
        _evaluate,
        "Measure alerts against outcomes: per rule and for all rules, precision, recall at the lead time, median "
        'lead time and alerts per owner per week (docs/prescient.md, "preempt evaluate").',
    ),
    "events": LazyCommand(_events, "The event contract: JSON Schema and offline validation."),
    "ingest": LazyCommand(
        _ingest,
        "Serve POST /v1/events and the Segment/RudderStack tracking API (/v1/batch, /v1/track…) into preempt.events.",
    ),
    "notifier": LazyCommand(
        _notifier, "Run a notifier: consume preempt.alerts, route, group and deliver to Slack, email or the console."
    ),
    "publish": LazyCommand(
        _publish, "Publish one event (--event/--account), or every valid event of a JSONL file (--file)."
    ),
    "routes": LazyCommand(_routes, "Check and test notification routing files (docs/notifications.md)."),
    "rules": LazyCommand(_rules, "Work with rule files."),
    "simulate": LazyCommand(
        _simulate,
        "Simulate customer accounts (healthy, stalled onboarding, decaying, failed payments, NPS detractors…) and "
        "write their events to files or publish them to Kafka.",
    ),
    "train": LazyCommand(
        _train, 'Train a churn-risk model for `kind: risk` rules (docs/prescient.md, "preempt train").'
    ),
    "worker": LazyCommand(_worker, "Run a rules worker: consume preempt.events, evaluate the rules, emit alerts."),
}


def user_error(exc: Exception) -> str | None:
    """The one-line message for an error the user can fix (``PreemptError``, a bad ``PREEMPT_*`` setting), else None.

    Imported here, not at the top: the errors' modules load pydantic, which ``preempt --help`` does not need.
    """
    from schemas.errors import PreemptError

    if isinstance(exc, PreemptError):
        return str(exc)
    from streams.cli.settings_errors import describe_settings_error, is_settings_error

    if is_settings_error(exc):
        return describe_settings_error(exc)
    return None


class OneLineUsageError(click.UsageError):
    """A usage error (a bad flag, a missing argument, an unknown command) shown as one line: what is wrong and
    where the help is, instead of click's usage synopsis, a hint line, a blank line and the error."""

    def __init__(self, error: click.UsageError) -> None:
        message = error.format_message()
        ctx = error.ctx
        if ctx is not None and isinstance(ctx.command, click.Group) and message.startswith("No such command '"):
            typed = message.removeprefix("No such command '").split("'")[0]
            close = difflib.get_close_matches(typed, ctx.command.list_commands(ctx), n=1)
            if close:
                message += f" Did you mean '{close[0]}'?"
        super().__init__(message, ctx)
        self.exit_code = error.exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        """``Error: <what is wrong>. Try '<command> -h' for help.`` on stderr."""
        message = self.format_message().rstrip()
        if not message.endswith((".", "?", "!")):
            message += "."
        ctx = self.ctx
        if ctx is not None and ctx.command.get_help_option(ctx) is not None:
            message += f" Try '{ctx.command_path} {ctx.help_option_names[0]}' for help."
        click.echo(f"Error: {message}", file=file, err=file is None, color=None if ctx is None else ctx.color)


def one_line(error: click.UsageError) -> click.UsageError:
    """``error`` as a one-line usage error; click's "no arguments, here is the help" (``NoArgsIsHelpError``)
    keeps showing the help."""
    if isinstance(error, click.exceptions.NoArgsIsHelpError | OneLineUsageError):
        return error
    return OneLineUsageError(error)


class PreemptGroup(LazyGroup):
    """The ``preempt`` group: one line, not a traceback, for the errors a user can fix."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        """Parse the group's own options; a bad one (``preempt --bogus``) is one line."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            raise one_line(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; report ``PreemptError`` and bad settings as ``Error: …`` (exit 1), Ctrl-C as exit 130.

        The subcommand's module is imported in here too (``resolve_command``), so a Ctrl-C while it loads is the
        same one line.
        """
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # click's own handling says "Aborted!" and exits 1, the code of a failure
            click.echo(INTERRUPTED, err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except click.UsageError as error:
            if error.ctx is None:  # click's parser names no command ("Option '--x' requires an argument")
                error.ctx = self._subcommand_context(ctx)
            raise one_line(error) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            message = user_error(exc)
            if message is None:
                raise
            raise click.ClickException(message) from exc

    def _subcommand_context(self, ctx: click.Context) -> click.Context:
        """A context of the command being run, for the error line's "Try 'preempt CMD -h'" (without one, the line
        named no help at all): the group's own when none is known."""
        name = ctx.invoked_subcommand
        command = self.get_command(ctx, name) if name else None
        return ctx if command is None else click.Context(command, info_name=name, parent=ctx)


@click.group(
    name="preempt",  # what click's test runner and error lines call it (else the function's name, "main")
    cls=PreemptGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="preempt")
def main() -> None:
    """Preempt: real-time customer-success alerts from product usage events.

    Settings come from PREEMPT_* environment variables (docs/settings.md lists them
    all); PREEMPT_BROKER defaults to the local broker of `make kafka`
    (kafka://127.0.0.1:9092).
    """
    from streams.cli.settings_errors import misspelt_settings
    from streams.runtime.logs import configure_command_logging

    configure_command_logging()
    if sys.stdin is None:  # started with stdin closed (<&-, some service managers): `-` was a click traceback
        sys.stdin = open(os.devnull)  # noqa: SIM115 — stdin for the rest of the process; `-` reads as empty
    for note in misspelt_settings(os.environ):
        click.echo(note, err=True)
