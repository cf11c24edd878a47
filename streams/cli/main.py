"""The ``preempt`` command line: one group, one module per subcommand in ``streams/cli``.

This is the one place that knows every command, including the notifier's (``alerts.cli.routes``),
so it is the only module in ``streams`` that imports from ``alerts``. It is also the one place
that turns a user's error into one line: any ``PreemptError`` (a bad file, an invalid event, an
unreachable broker) and a bad ``PREEMPT_*`` setting print ``Error: …`` and exit 1. Ctrl-C (SIGINT)
prints one line and exits 130, as a shell reports a command ended by SIGINT (128 + 2), so a script
can tell an interrupted run from a failed one. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

INTERRUPTED_EXIT = 130  # 128 + SIGINT
INTERRUPTED = "Interrupted (Ctrl-C); stopped before finishing: any file it was writing is incomplete."

# Importing the commands takes a second or more (Kafka clients, Faust, pydantic models) before the
# group's own handler exists: a Ctrl-C in that time is the same one line and exit 130, not a traceback.
try:
    import click
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from alerts.cli.dead_letters import dead_letters as alert_dead_letters
    from alerts.cli.notifier import notifier
    from alerts.cli.preview import alerts_group
    from alerts.cli.routes import routes
    from schemas.errors import PreemptError
    from streams.cli.backtest import backtest
    from streams.cli.evaluate import evaluate_command
    from streams.cli.events import events
    from streams.cli.ingest import ingest
    from streams.cli.publish import publish
    from streams.cli.rules import rules_group
    from streams.cli.settings_errors import describe_settings_error, is_settings_error, misspelt_settings
    from streams.cli.simulate import simulate
    from streams.cli.train import train_command
    from streams.cli.worker import worker
    from streams.runtime.logs import configure_command_logging
except KeyboardInterrupt:
    sys.stderr.write(INTERRUPTED + "\n")
    raise SystemExit(INTERRUPTED_EXIT) from None


class PreemptGroup(click.Group):
    """The ``preempt`` group: one line, not a traceback, for the errors a user can fix."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; report ``PreemptError`` and bad settings as ``Error: …`` (exit 1), Ctrl-C as exit 130."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # click's own handling says "Aborted!" and exits 1, the code of a failure
            click.echo(INTERRUPTED, err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except PreemptError as exc:
            raise click.ClickException(str(exc)) from exc
        except (ValidationError, SettingsError) as exc:
            if not is_settings_error(exc):
                raise
            raise click.ClickException(describe_settings_error(exc)) from exc


@click.group(cls=PreemptGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="preempt")
def main() -> None:
    """Preempt: real-time customer-success alerts from product usage events.

    Settings come from PREEMPT_* environment variables; PREEMPT_BROKER defaults to
    the local broker of `make kafka` (kafka://127.0.0.1:9092).
    """
    configure_command_logging()
    for note in misspelt_settings(os.environ):
        click.echo(note, err=True)


main.add_command(worker)
main.add_command(publish)
main.add_command(events)
main.add_command(ingest)
main.add_command(backtest)
main.add_command(rules_group)
main.add_command(simulate)
main.add_command(routes)
main.add_command(notifier)
alerts_group.add_command(alert_dead_letters)
main.add_command(alerts_group)
main.add_command(evaluate_command)
main.add_command(train_command)
