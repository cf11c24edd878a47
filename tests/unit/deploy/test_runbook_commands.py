"""The commands docs/operations.md tells the on-call to run are ones the tools accept as written."""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import Path

import click
import pytest

from streams.cli.main import main
from streams.runtime.health import ConsumerState, readiness
from streams.runtime.missing_topics import changelog_reason, written_reason

REPO = Path(__file__).resolve().parents[3]
RUNBOOK = (REPO / "docs" / "operations.md").read_text().split("## Alert rules and runbook", 1)[1].split("\n## ", 1)[0]
# Inline commands: `preempt …` with arguments, `kafka-….sh …`; one with a placeholder (…) is still parsed.
PREEMPT = sorted(set(re.findall(r"`(preempt [a-z-]+ [^`]+)`", RUNBOOK)))
KAFKA_TOOLS = sorted(set(re.findall(r"`(kafka-[a-z-]+\.sh[^`]*)`", RUNBOOK)))


def _parse(command: str) -> None:
    """Parse ``command`` as the ``preempt`` CLI would, down to its subcommand, without running it."""
    args = shlex.split(command)[1:]
    found: click.Command | None = main
    while isinstance(found, click.Group) and args and not args[0].startswith("-"):
        name, args = args[0], args[1:]
        found = found.get_command(click.Context(found), name)
        assert found is not None, f"{command}: no command {name!r}"
    assert found is not None
    assert not isinstance(found, click.Group), f"{command}: names a group, not a command"
    found.make_context(command, args)


@pytest.mark.parametrize("command", PREEMPT)
def test_each_preempt_command_of_the_runbook_parses(command: str) -> None:
    """A command an operator copies from docs/operations.md parses with its arguments: `preempt rules check`
    without the rules directory stopped at a usage error, in the middle of an incident."""
    _parse(command)


@pytest.mark.parametrize("command", KAFKA_TOOLS)
def test_each_kafka_tool_of_the_runbook_names_the_broker(command: str) -> None:
    """Kafka's command-line tools have no default broker: each one the runbook names says --bootstrap-server."""
    assert "--bootstrap-server" in command.split()


def test_the_runbook_names_commands() -> None:
    """The patterns above find the runbook's commands (so the tests above check something)."""
    assert "preempt routes check /etc/preempt/routes/routes.yaml" in PREEMPT
    assert any(command.startswith("preempt rules check") for command in PREEMPT)
    assert KAFKA_TOOLS


def _not_ready_reasons() -> list[str]:
    """The fixed part of each reason ``readiness`` gives (the text before a count, a list or a detail)."""
    ready = ConsumerState(
        started=True, rebalances=1, rebalancing=False, in_recovery=False, recovery_completed=True, assigned_partitions=4
    )
    states = [
        replace(ready, broker_unreachable="no broker answered for 21 s (…)"),
        replace(ready, started=False),
        replace(ready, rebalances=0),
        replace(ready, in_recovery=True),
        replace(ready, rebalancing=True),
        replace(ready, stalled=("preempt.events/2",)),
        replace(ready, missing=(changelog_reason("preempt-rules-account-state-changelog"),)),
        replace(ready, missing=(written_reason("preempt.alerts", 12, "preempt worker"),)),
        replace(ready, stuck=("dead letter not written for 130 s (1 pending)",)),
        replace(
            ready,
            stuck=("deliveries failing: renewals/slack: 7 attempts failed in a row, none delivered for 312 s (…)",),
        ),
    ]
    answers = [readiness(state) for state in states]
    assert not any(answer.ready for answer in answers)
    return [re.split(r"[:(]| \d", answer.reason, maxsplit=1)[0].strip() for answer in answers]


@pytest.mark.parametrize("reason", _not_ready_reasons())
def test_the_not_ready_runbook_explains_each_reason_readyz_gives(reason: str) -> None:
    """PreemptNotReady tells the on-call to read /readyz's reason: each reason it can give has a bullet there
    (the notifier's `dead letter not written for …` had none)."""
    section = RUNBOOK.split("### PreemptNotReady", 1)[1].split("\n### ", 1)[0]
    assert f"`{reason}" in section
