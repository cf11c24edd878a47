"""docs/notifications.md's formatting and preview examples are executed and compared."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.templates import render, template_context
from schemas.alert import Alert
from streams.cli.main import main

REPO = Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "notifications.md").read_text(encoding="utf-8")
ALERT = Alert.model_validate_json((REPO / "docs" / "examples" / "alert.json").read_text(encoding="utf-8"))
ROW = re.compile(r"^\| `[^`]+`[^|]* \| `(?P<source>\{\{.*\}\})` \| `(?P<gives>.*)` \|$", re.M)


def _filter_rows() -> list[tuple[str, str]]:
    section = DOC.split("## Formatting filters", 1)[1].split("\n## ", 1)[0]
    return [(m["source"].replace("\\|", "|"), m["gives"]) for m in ROW.finditer(section)]


def test_the_filter_table_has_every_row():
    """The table documents every formatting filter (and the test reads all its rows)."""
    assert len(_filter_rows()) == 25


@pytest.mark.parametrize(("source", "gives"), _filter_rows())
def test_filter_table_row(source, gives):
    """Each row's template, rendered against docs/examples/alert.json, gives what the row says."""
    assert render("email_text", template_context((ALERT,)), source).strip("\n") == gives


def test_preview_example_output(monkeypatch):
    """The documented `preempt alerts preview` command prints exactly the documented output."""
    monkeypatch.chdir(REPO)
    block = DOC.split("## Previewing an alert", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    command, expected = block.split("\n", 1)
    argv = shlex.split(command.removeprefix("$ "))
    assert argv[:3] == ["preempt", "alerts", "preview"]
    result = CliRunner().invoke(main, argv[1:])
    assert result.exit_code == 0, result.output
    assert result.output == expected
