"""Every ``preempt`` sub-command given bad input answers in words: no traceback, no Python exception or codec name,
no pydantic phrase ("Input should be", ``type=``, its URL), non-zero exit — what is wrong, where, and what to do."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.main import main
from tests.unit.rules.risk_support import GOLDEN as RISK_MODEL

CLOSED_BROKER = "kafka://127.0.0.1:1"  # nothing listens on port 1: connections are refused
JARGON = re.compile(
    r"Traceback|Input should|type=|pydantic|Value error|Field required|Errno|codec|Connect call failed|"
    r"\b[A-Z][A-Za-z]*(Error|Exception)\b|\bNoneType\b|, not (str|int|float|dict|list)\b|problem\(s\)|"
    r"float range|integer range|<=x|x>="
)
RULE = "id: r\nkind: threshold\ntitle: t\nseverity: high\npriority: 1\nwindow: 10m\nmin: 3\nmatch: {event: X}\n"
RISK = "id: r\nkind: risk\ntitle: t\nseverity: high\npriority: 1\nmodel: {model}\nthreshold: {threshold}\n"
ROUTES = "receivers: [{name: a, slack_configs: [{channel: 5}]}]\nroute: {receiver: a, group_wait: soon}\n"
BINARY = b"\xf4\x89\x00\x01garbage\xff\xfe" * 8


def _files(tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(BINARY)
    (tmp_path / "severity.yaml").write_text(RULE.replace("high", "urgent"))
    (tmp_path / "priority.yaml").write_text(RULE.replace("priority: 1", "priority: one"))
    (tmp_path / "list.yaml").write_text("rules: [just a string]\n")
    (tmp_path / "template.yaml").write_text(RULE.replace("title: t", "title: '{{ evidence.nope }}'"))
    (tmp_path / "threshold.yaml").write_text(RISK.format(model=RISK_MODEL, threshold=1.5))
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "binary.json").write_bytes(BINARY)
    (tmp_path / "format.json").write_text('{"format": 3}')
    for name in ("empty", "binary", "format"):
        (tmp_path / f"model_{name}.yaml").write_text(RISK.format(model=f"{name}.json", threshold=0.5))
    (tmp_path / "routes.yaml").write_text(ROUTES)
    (tmp_path / "alert.json").write_text('{"alert_id": 5}')
    (tmp_path / "accounts.jsonl").write_text('{"account_id": true}\n')
    (tmp_path / "outcomes.jsonl").write_text('{"account_id": "a", "outcome": "died", "at": "x"}\n')
    (tmp_path / "events.jsonl").write_text('{"event_id": "e1", "event": "X", "account_id": "a", "ts": 1767225600}\n')
    (tmp_path / "alerts.jsonl").write_bytes(BINARY)
    (tmp_path / "renewed.jsonl").write_text('{"account_id": "a", "outcome": "renewed", "at": "2026-01-01T00:00:00Z"}\n')


CASES: list[tuple[list[str], dict[str, str], str]] = [
    (["rules", "check", "binary.yaml"], {}, "not UTF-8 text"),
    (["rules", "check", "severity.yaml"], {}, "expected one of critical, high, medium, low, info, not 'urgent'"),
    (["rules", "check", "priority.yaml"], {}, "expected a whole number, not 'one'"),
    (["rules", "check", "list.yaml"], {}, "a rule is a mapping, not a string"),
    (["rules", "check", "template.yaml"], {}, "names 'nope', which is not there"),
    (["rules", "check", "threshold.yaml"], {}, "field 'threshold': must be less than 1, not 1.5"),
    (["rules", "check", "model_empty.yaml"], {}, "not JSON: it is empty"),
    (["rules", "check", "model_binary.yaml"], {}, "not valid JSON (line 1, column 1)"),
    (["rules", "check", "model_format.yaml"], {}, "(format: expected text, not 3 (and "),
    (["routes", "check", "binary.yaml"], {}, "not UTF-8 text"),
    (["routes", "check", "routes.yaml"], {}, "channel: expected text, not 5"),
    (["alerts", "preview", "alert.json"], {}, "not an alert (alert_id: expected text, not 5 (and "),
    (
        ["backtest", "--rules", "severity.yaml", "--events", "events.jsonl"],
        {},
        "expected one of critical, high, medium, low, info",
    ),
    (
        [
            "backtest",
            "--rules",
            str(RISK_MODEL.parent / "good"),
            "--events",
            "events.jsonl",
            "--accounts",
            "accounts.jsonl",
        ],
        {},
        "account_id: expected text, not true",
    ),
    (["evaluate", "--alerts", "alerts.jsonl", "--outcomes", "renewed.jsonl"], {}, "not valid JSON"),
    (
        ["train", "--events", "events.jsonl", "--outcomes", "outcomes.jsonl", "--output", "m.json"],
        {},
        "expected one of churned, renewed, contracted, expanded, not 'died'",
    ),
    (["events", "validate", "events.jsonl"], {"PREEMPT_LOG_FORMAT": "xml"}, "expected one of json, console"),
    (["worker"], {"PREEMPT_MAX_EVENT_BYTES": "abc"}, "PREEMPT_MAX_EVENT_BYTES='abc' is not valid: expected a whole"),
    (["worker"], {"PREEMPT_BROKER": CLOSED_BROKER}, "connection refused: nothing listens there"),
    (["events", "dead-letters"], {"PREEMPT_BROKER": CLOSED_BROKER}, "connection refused: nothing listens there"),
    (["publish", "--event", "X", "--account", "a"], {"PREEMPT_BROKER": CLOSED_BROKER}, "connection refused"),
    (
        ["backtest", "--rules", "severity.yaml", "--events", "events.jsonl", "--allowed-lateness", "abc"],
        {},
        "give a number, 0 or more (got 'abc')",
    ),
    (["ingest", "--port", "99999"], {}, "give a whole number, from 0 to 65535 (got '99999')"),
    (["events", "dead-letters", "--limit", "-1"], {}, "give a whole number, 0 or more (got '-1')"),
    (["alerts", "dead-letters", "--limit", "-1"], {}, "give a whole number, 0 or more (got '-1')"),
    (["alerts", "dead-letters", "--limit", "many"], {}, "give a whole number, 0 or more (got 'many')"),
]


@pytest.mark.parametrize(("args", "env", "says"), CASES, ids=[" ".join(c[0][:3]) + str(i) for i, c in enumerate(CASES)])
def test_bad_input_is_told_in_words(tmp_path: Path, args: list[str], env: dict[str, str], says: str) -> None:
    """Each bad input exits non-zero with lines that say what is wrong in words, and none in a library's voice."""
    _files(tmp_path)
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PREEMPT_")}
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, args, env={**unset, "PREEMPT_BROKER_PROBE_SECONDS": "2", **env})
    finally:
        os.chdir(previous)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code != 0
    output = result.stdout + result.stderr
    assert says in output, output
    assert not JARGON.search(output), output
