"""The ``preempt`` command line: one group, one module per subcommand in ``streams/commands``.

This is the one place that knows every command, including the notifier's (``alerts.commands``),
so it is the only module in ``streams`` that imports from ``alerts``.
"""

from __future__ import annotations

from typing import Any

import click
from pydantic import ValidationError

from alerts.commands import routes
from alerts.commands_notifier import notifier
from schemas.errors import ConfigError
from streams.commands.backtest import backtest
from streams.commands.events import events
from streams.commands.ingest import ingest
from streams.commands.publish import publish
from streams.commands.rules import rules_group
from streams.commands.simulate import simulate
from streams.commands.worker import worker


class _PreemptGroup(click.Group):
    """Turns a settings error or a refused Kafka login, from any command, into one line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        except ValidationError as exc:
            if exc.title != "Settings":
                raise
            # Only the field and the message: pydantic's input echo could hold a secret.
            problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
            raise click.ClickException(f"invalid settings: {problems}") from None


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    field = f"PREEMPT_{'.'.join(str(p) for p in loc).upper()}: " if loc else ""
    return field + msg.removeprefix("Value error, ")


@click.group(cls=_PreemptGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="preempt")
def main() -> None:
    """Preempt: real-time customer-success alerts from product usage events.

    Settings come from PREEMPT_* environment variables; PREEMPT_BROKER defaults to
    the local broker of `make kafka` (kafka://127.0.0.1:9092).
    """


main.add_command(worker)
main.add_command(publish)
main.add_command(events)
main.add_command(ingest)
main.add_command(backtest)
main.add_command(rules_group)
main.add_command(simulate)
main.add_command(routes)
main.add_command(notifier)
