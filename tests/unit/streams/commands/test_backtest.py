"""``preempt backtest``: alerts JSONL out, a summary with the alert budget, stable reruns."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from schemas.event import format_ts
from streams.cli import main

MONDAY = 1_795_392_000.0
RULES = """
rules:
  - id: detractor
    kind: any
    title: "{{ account.name }}: NPS {{ evidence.properties.score }}"
    severity: medium
    priority: 2
    match: {event: NPS Submitted, where: {properties.score: {lte: 6}}}
  - id: quiet
    kind: inactivity
    title: "{{ account.name }} went quiet"
    severity: high
    priority: 1
    after: 1d
    match: {}
"""


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Rule, event and account files for a small backtest."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    events = [
        {"event_id": "n1", "event": "NPS Submitted", "account_id": "acme", "timestamp": format_ts(MONDAY),
         "properties": {"score": 3}},
        {"event_id": "l1", "event": "Login", "account_id": "globex", "timestamp": format_ts(MONDAY + 60)},
    ]  # fmt: skip
    events_path = tmp_path / "events.jsonl"
    events_path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\nnot json\n")
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_bytes(orjson.dumps({"account_id": "acme", "name": "Acme", "owner": {"name": "Dana"}}) + b"\n")
    return {"rules": rules, "events": events_path, "accounts": accounts, "out": tmp_path / "alerts.jsonl"}


def _invoke(inputs: dict[str, Path], *extra: str):
    args = ["backtest", "--rules", str(inputs["rules"]), "--events", str(inputs["events"])]
    args += ["--accounts", str(inputs["accounts"]), "--output", str(inputs["out"]), "--allowed-lateness", "0", *extra]
    return CliRunner().invoke(main, args)


def test_backtest_writes_alerts_and_prints_the_budget(inputs):
    """Alerts go to --output one per line; the summary counts per rule, severity and owner-week."""
    result = _invoke(inputs, "--until", "2026-11-25T00:00:00Z")
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(line) for line in inputs["out"].read_bytes().splitlines()]
    assert [(a["rule_id"], a["account_id"]) for a in alerts] == [
        ("detractor", "acme"),
        ("quiet", "acme"),
        ("quiet", "globex"),
    ]
    assert alerts[0]["title"] == "Acme: NPS 3"
    assert "3 alerts" in result.output
    assert "2026-W48  Dana" in result.output
    assert "line 3: invalid_json" in result.stderr


def test_backtest_rerun_is_byte_identical(inputs):
    """The same inputs produce the same bytes."""
    _invoke(inputs, "--until", "2026-11-25T00:00:00Z")
    first = inputs["out"].read_bytes()
    _invoke(inputs, "--until", "2026-11-25T00:00:00Z")
    assert inputs["out"].read_bytes() == first


def test_backtest_rejects_a_bad_until(inputs):
    """--until must be RFC 3339 with an offset."""
    result = _invoke(inputs, "--until", "yesterday")
    assert result.exit_code == 2
    assert "RFC 3339" in result.output


def test_backtest_with_bad_rules_exits_1(inputs):
    """Invalid rules stop the backtest with the loader's message."""
    inputs["rules"].write_text("id: x\nkind: nope\n")
    result = _invoke(inputs)
    assert result.exit_code == 1
    assert "unknown kind 'nope'" in result.stderr
