"""A usage error of ``preempt`` (a bad flag, a missing option, a mistyped command) is one line on stderr: what is wrong
and where the help is, exit 2 — not click's synopsis, hint and blank line before the error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.main import main

CASES: list[tuple[list[str], str]] = [
    (
        ["simulate", "--duration", "0"],
        "Error: Invalid value for '--duration': give a number, more than 0.0 (got '0'). "
        "Try 'preempt simulate -h' for help.",
    ),
    (["--bogus"], "Error: No such option: --bogus. Try 'preempt -h' for help."),
    (["simulat"], "Error: No such command 'simulat'. Did you mean 'simulate'? Try 'preempt -h' for help."),
    (["rules", "chek"], "Error: No such command 'chek'. Did you mean 'check'? Try 'preempt rules -h' for help."),
    (["rules", "zzz"], "Error: No such command 'zzz'. Try 'preempt rules -h' for help."),
    (["rules", "check", "--bogus"], "Error: No such option: --bogus. Try 'preempt rules check -h' for help."),
    (["train"], "Error: Missing option '--events'. Try 'preempt train -h' for help."),
    (["publish", "--event", "X"], "Error: give --event and --account (or --file). Try 'preempt publish -h' for help."),
    # click's parser raises this one naming no command: it said no "Try … -h" at all
    (["evaluate", "--alerts"], "Error: Option '--alerts' requires an argument. Try 'preempt evaluate -h' for help."),
    # a command of a subgroup: the subgroup's help (which lists it)
    (
        ["events", "dead-letters", "--reason"],
        "Error: Option '--reason' requires an argument. Try 'preempt events -h' for help.",
    ),
]


@pytest.mark.parametrize(("args", "line"), CASES, ids=[" ".join(args) for args, _ in CASES])
def test_a_usage_error_is_one_line(args: list[str], line: str) -> None:
    """The whole of stderr is the one line, and the exit status is click's usage status, 2."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [line]
    assert result.stdout == ""


@pytest.mark.parametrize("args", [[], ["rules"], ["alerts"]])
def test_a_group_without_a_command_still_shows_its_help(args: list[str]) -> None:
    """``preempt`` or ``preempt rules`` alone shows the group's help (click's no-arguments help), not an error."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output.startswith("Usage: preempt"), result.output
    assert "Commands:" in result.output


def test_the_installed_command_says_one_line() -> None:
    """The ``preempt`` executable, as a user runs it, prints the same one line (no traceback, nothing else)."""
    preempt = str(Path(sys.executable).with_name("preempt"))
    run = subprocess.run([preempt, "simulat"], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == "Error: No such command 'simulat'. Did you mean 'simulate'? Try 'preempt -h' for help.\n"
