"""A click group whose commands are imported when one is run, not when the group is.

click's documented pattern ("Lazily Loading Subcommands"), plus the one thing it leaves out: the
group's ``--help`` lists each command with its one-line help from a table instead of importing
every module to read its docstring. A command's module (Kafka clients, pydantic models, the rules)
took a second of CPU, so ``preempt --help``, a mistyped command or a bad flag waited for all of
them. The table is checked against each command's own help by the tests, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click
from click.shell_completion import CompletionItem
from click.utils import make_default_short_help

SHORT_HELP_LIMIT = 45  # click's default for a command's short help (shell completion shows it)


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """How to get a command (``load``: a function that imports its module and returns it) and its short help
    (the first sentence of its docstring, as ``command.get_short_help_str()`` gives it without a length
    limit)."""

    load: Callable[[], click.Command]
    short_help: str


class LazyGroup(click.Group):
    """A group that imports a command's module the first time the command is looked up (to run it, show
    its ``--help`` or complete its options) and lists the others from ``lazy_commands``."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, LazyCommand] = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, loaded or not, sorted (as click lists them)."""
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module on first use."""
        command = self.commands.get(cmd_name)
        spec = self.lazy_commands.get(cmd_name)
        if command is None and spec is not None:
            command = spec.load()
            self.add_command(command, cmd_name)
        return command

    def listed_help(self, cmd_name: str, limit: int) -> str:
        """What the group's help shows for a command: its own short help once loaded, else the table's, cut
        at ``limit`` the way click cuts a docstring."""
        command = self.commands.get(cmd_name)
        if command is not None:
            return command.get_short_help_str(limit)
        return make_default_short_help(self.lazy_commands[cmd_name].short_help, limit)

    def _visible(self, ctx: click.Context) -> list[str]:
        names = self.list_commands(ctx)
        return [name for name in names if name not in self.commands or not self.commands[name].hidden]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section, as ``click.Group`` writes it, without importing the commands."""
        names = self._visible(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        with formatter.section("Commands"):
            formatter.write_dl([(name, self.listed_help(name, limit)) for name in names])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names (with their short help) and the group's options, without importing the commands."""
        results = [
            CompletionItem(name, help=self.listed_help(name, SHORT_HELP_LIMIT))
            for name in self._visible(ctx)
            if name.startswith(incomplete)
        ]
        # the options: click.Command's completion (click.Group's own would import every command)
        results.extend(click.Command.shell_complete(self, ctx, incomplete))
        return results
