"""Every shipped Prometheus alert links a runbook section that exists in docs/operations.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
RULES = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"]
ALERTS = [rule for group in RULES for rule in group["rules"]]


def _anchors() -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", (REPO / "docs" / "operations.md").read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_alert_links_an_existing_runbook_section(rule: dict[str, object]) -> None:
    """The runbook annotation names docs/operations.md#<alert> and that heading exists."""
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    path, _, anchor = str(annotations["runbook"]).partition("#")
    assert path == "docs/operations.md"
    assert anchor == str(rule["alert"]).lower()
    assert anchor in _anchors()


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_alert_has_severity_and_summary(rule: dict[str, object]) -> None:
    """Every alert carries a severity label for routing and a summary for the pager."""
    labels, annotations = rule["labels"], rule["annotations"]
    assert isinstance(labels, dict)
    assert isinstance(annotations, dict)
    assert labels["severity"] in {"critical", "warning"}
    assert annotations["summary"]


def test_the_runbook_table_lists_every_shipped_alert_and_says_how_many() -> None:
    """docs/operations.md's "Alert rules and runbook" names the number of rules alerts.yml ships and has one table
    row per alert (it said "twelve" while thirteen shipped)."""
    words = [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ]
    text = (REPO / "docs" / "operations.md").read_text()
    said = re.search(r"`deploy/prometheus/alerts\.yml` ships (\w+) rules", text)
    assert said is not None
    assert said.group(1) == words[len(ALERTS) - 1]
    section = text.split("## Alert rules and runbook", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(Preempt\w+)` \|", section, flags=re.MULTILINE)
    assert sorted(rows) == sorted(str(rule["alert"]) for rule in ALERTS)
