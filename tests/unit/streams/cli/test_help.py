"""Every ``preempt`` command's ``--help``: the example commands in it can be copied whole."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streams.cli.main import main


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in sorted(group.commands.items()):
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
