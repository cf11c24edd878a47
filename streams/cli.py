"""The ``preempt`` command line: one group, one module per subcommand in ``streams/commands``.

This is the one place that knows every command, including the notifier's (``alerts.commands``),
so it is the only module in ``streams`` that imports from ``alerts``.
"""

from __future__ import annotations

import click

from alerts.commands import routes
from alerts.commands_notifier import notifier
from streams.commands.backtest import backtest
from streams.commands.evaluate import evaluate_command
from streams.commands.events import events
from streams.commands.ingest import ingest
from streams.commands.publish import publish
from streams.commands.rules import rules_group
from streams.commands.simulate import simulate
from streams.commands.train import train_command
from streams.commands.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
main.add_command(evaluate_command)
main.add_command(train_command)
