"""The notifier's commands, registered in the ``preempt`` group by ``streams.cli.main``:
``routes`` (check/test a routing file), ``notifier`` (run it), ``alerts preview`` and ``alerts dead-letters``."""

import sys

import structlog


def logs_to_stderr() -> None:
    """Send log lines (e.g. ``invalid_timezone``) to stderr, so a command's stdout is only its output.

    Unconfigured structlog prints on stdout, into what ``preempt routes test`` or ``preempt alerts
    preview`` print for people and scripts. Only the output stream changes: levels and processors
    stay as they are (long-running commands configure logging fully themselves).
    """
    # sys.stderr is looked up per logger, not bound now: a test runner swaps (and closes) it.
    structlog.configure(logger_factory=lambda *_args: structlog.PrintLogger(file=sys.stderr))
