"""Every ``preempt`` command's ``--help``: the example commands in it can be copied whole; ``preempt --help``
lists every command with its own short help without importing any of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streams.cli.main import COMMANDS as TABLE
from streams.cli.main import PreemptGroup, main


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
    return found


COMMANDS = _commands(main)


def test_the_walk_finds_every_command() -> None:
    """The parametrised test below sees the nested commands too (a guard against it checking nothing)."""
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"simulate", "publish", "train", "alerts preview", "events validate", "rules check"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_shows_each_example_command_on_one_line(path: tuple[str, ...], command: click.Command) -> None:
    """An example (a docstring line starting with `preempt `) is not re-wrapped by click into two lines that
    each run as something else when pasted (click rewraps paragraphs unless they follow a \\b line)."""
    examples = [line.strip() for line in (command.help or "").splitlines() if line.strip().startswith("preempt ")]
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    shown = {line.strip() for line in result.output.splitlines()}
    assert [e for e in examples if e not in shown] == []


def test_the_readme_command_table_lists_every_command() -> None:
    """README.md's "Commands" table names every `preempt` command a newcomer can run (a group by its commands)."""
    readme = (Path(__file__).resolve().parents[4] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Commands\n\n", 1)[1].split("\n\n", 1)[0]
    runnable = [" ".join(path) for path, command in COMMANDS if not isinstance(command, click.Group)]
    assert [name for name in runnable if f"`preempt {name}" not in table] == []


@pytest.mark.parametrize("name", sorted(TABLE))
def test_the_command_table_holds_each_commands_own_short_help(name: str) -> None:
    """``preempt --help`` lists a command from main.py's table, not its docstring: the table's line is the
    command's own first sentence (edit the docstring and this fails until the table says the same)."""
    command = TABLE[name].load()
    assert command.name == name
    assert TABLE[name].short_help == command.get_short_help_str(limit=sys.maxsize)


@pytest.mark.parametrize("width", [50, 80, 100])
def test_preempt_help_lists_the_commands_as_click_lists_them_loaded(width: int) -> None:
    """The "Commands" section from the table (nothing imported) is the one click writes from the commands
    themselves: the same names, the same order, each line cut at the same word for the terminal's width."""
    lazy = PreemptGroup(name="preempt", lazy_commands=TABLE)
    eager = click.Group(name="preempt", commands={name: spec.load() for name, spec in TABLE.items()})

    def commands_section(group: click.Group) -> str:
        formatter = click.HelpFormatter(width=width)
        group.format_commands(click.Context(group), formatter)
        return formatter.getvalue()

    assert lazy.commands == {}
    assert commands_section(lazy) == commands_section(eager)
    assert lazy.commands == {}  # listing them imported none


def test_every_command_of_the_group_is_in_the_table() -> None:
    """A command the group gets from elsewhere than the table (add_command) would be listed without its line
    checked above; the alerts group gets dead-letters from its own module through its loader."""
    assert set(main.list_commands(click.Context(main))) == set(TABLE)
    alerts = main.get_command(click.Context(main), "alerts")
    assert isinstance(alerts, click.Group)
    assert {"preview", "dead-letters"} <= set(alerts.commands)


# Runs the ``preempt`` entry point and reports, on its last stderr line, which heavy modules it imported.
_IMPORTS_OF_A_RUN = """
import atexit, json, sys

HEAVY = ("faust", "mode", "sklearn", "numpy", "kafka", "aiokafka", "pydantic", "pydantic_settings", "structlog",
         "prometheus_client", "aiohttp", "jinja2", "rules", "schemas", "alerts")
OWN = ("streams.cli", "streams.cli.main", "streams.cli.lazy_group")


def report():
    loaded = [m for m in sys.modules if m.split(".")[0] in HEAVY or (m.startswith("streams.") and m not in OWN)]
    sys.stderr.write("\\n" + json.dumps(sorted(loaded)) + "\\n")


atexit.register(report)
from streams.cli.main import main
main(prog_name="preempt")
"""


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--help"], {}),
        (["nosuch"], {}),
        ([], {"_PREEMPT_COMPLETE": "zsh_complete", "COMP_WORDS": "preempt ", "COMP_CWORD": "1"}),
    ],
    ids=["help", "unknown command", "completion"],
)
def test_the_fast_paths_import_no_command(args: list[str], env: dict[str, str]) -> None:
    """``preempt --help``, a mistyped command and shell completion of the command names import no command
    module, nor Faust, scikit-learn, Kafka clients or pydantic (they took ~1 s of CPU before the first line)."""
    repo = str(Path(__file__).resolve().parents[4])
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_OF_A_RUN, *args],
        env={**os.environ, "PYTHONPATH": repo, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(done.stderr.splitlines()[-1]) == []
    assert done.returncode == (2 if args == ["nosuch"] else 0), done.stderr
    if args == ["nosuch"]:
        assert "Error: No such command 'nosuch'." in done.stderr
    else:  # every command is offered, with its short help in the completion
        assert all(name in done.stdout for name in TABLE)
        assert "Work with rule files." in done.stdout


# Commands run as they are (`preempt worker`), whose help says how they are configured instead.
_RUN_AS_IS = {("worker",), ("notifier",), ("ingest",)}


@pytest.mark.parametrize(
    ("path", "command"),
    [(p, c) for p, c in COMMANDS if not isinstance(c, click.Group) and p not in _RUN_AS_IS],
    ids=[" ".join(p) for p, c in COMMANDS if not isinstance(c, click.Group) and p not in _RUN_AS_IS],
)
def test_every_command_that_takes_arguments_shows_an_example(path: tuple[str, ...], command: click.Command) -> None:
    """A newcomer's first `preempt backtest --help` (or rules check, alerts preview…) showed the options but not
    one command line to start from; each shows at least one example of itself."""
    examples = [line.strip() for line in (command.help or "").splitlines() if line.strip().startswith("preempt ")]
    assert any(e.startswith(f"preempt {' '.join(path)}") for e in examples), examples


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (("backtest",), "--until TIME"),
        (("simulate",), "--start TIME"),
        (("publish",), "--timestamp TIME"),
        (("routes", "test"), "--now TIME"),
        (("evaluate",), "--horizon DURATION"),
        (("evaluate",), "--lead DURATION"),
        (("train",), "--as-of-every DURATION"),
        (("train",), "--horizon DURATION"),
        (("train",), "--min-lead DURATION"),
        (("train",), "--negative-horizon DURATION"),
        (("train",), "--warmup DURATION"),
    ],
)
def test_time_and_duration_options_say_what_they_take(path: tuple[str, ...], shown: str) -> None:
    """`--until TEXT` and `--horizon TEXT` said nothing of the value's form: the help names it TIME or DURATION."""
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert shown in result.output
