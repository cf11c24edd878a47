"""``preempt events schema`` and ``preempt events validate``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from schemas.json_schema import SCHEMA_DIR
from streams.cli import events as events_module
from streams.cli.events import events
from streams.cli.main import main


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[[list[bytes]], Path]:
    """Factory: a JSONL file with the given raw lines."""

    def factory(lines: list[bytes]) -> Path:
        path = tmp_path / "events.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        return path

    return factory


def good(event_id: str) -> bytes:
    return orjson.dumps(
        {"event_id": event_id, "event": "Login", "account_id": "acme", "timestamp": "2026-11-23T06:00:00Z"}
    )


def test_schema_prints_the_committed_event_schema() -> None:
    """`events schema` prints exactly the committed usage_event.schema.json."""
    result = CliRunner().invoke(events, ["schema"])
    assert result.exit_code == 0
    assert result.output == (SCHEMA_DIR / "usage_event.schema.json").read_text(encoding="utf-8")
    assert json.loads(result.output)["additionalProperties"] is False


def test_schema_account_flag_prints_the_account_schema() -> None:
    """`events schema --account` prints the account schema."""
    result = CliRunner().invoke(events, ["schema", "--account"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "Preempt account"


def test_validate_exits_zero_when_every_line_is_valid(write_jsonl: Callable[[list[bytes]], Path]) -> None:
    """A file of valid events (blank lines aside) passes with exit code 0."""
    path = write_jsonl([good("a"), b"", good("b")])
    result = CliRunner().invoke(events, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 valid, 0 invalid, 1 blank line skipped" in result.output


def test_validate_reports_every_invalid_line_with_number_and_reason(
    write_jsonl: Callable[[list[bytes]], Path],
) -> None:
    """Every invalid line is printed with its line number, reason and field, and the exit code is 1."""
    path = write_jsonl([good("a"), b"{oops", good("c").replace(b'"account_id":"acme",', b""), b"\xff", good("e")])
    result = CliRunner().invoke(events, ["validate", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(str(path))]
    assert lines[0].startswith(f"{path}:2: invalid_json: ")
    assert lines[1] == f"{path}:3: missing_field (account_id): account_id is required"
    assert lines[2].startswith(f"{path}:4: invalid_utf8: ")
    assert "2 valid, 3 invalid" in lines[3]


def test_validate_writes_diagnostics_and_summary_on_stderr_only(write_jsonl: Callable[[list[bytes]], Path]) -> None:
    """Invalid lines and the summary both go to stderr, in order; stdout stays empty."""
    path = write_jsonl([good("a"), b"{oops"])
    result = CliRunner().invoke(events, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:2: invalid_json: ")
    assert lines[1] == f"{path}: 1 valid, 1 invalid"


ACCOUNT = orjson.dumps({"account_id": "acme", "name": "Acme", "tier": "enterprise", "owner": {"name": "Dana"}})


def test_an_accounts_file_given_as_events_is_named_as_one(write_jsonl: Callable[[list[bytes]], Path]) -> None:
    """An accounts JSONL checked as events (a file of the wrong kind) says so once in its summary, with where
    such a file goes, after the per-line reasons ("unknown top-level field 'name'")."""
    path = write_jsonl([ACCOUNT, ACCOUNT.replace(b"acme", b"globex")])
    result = CliRunner().invoke(events, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"{path}: 0 valid, 2 invalid; it holds account records, not events: give it to "
        "`preempt backtest --accounts` (their schema: `preempt events schema --account`)"
    )


def test_a_file_of_broken_events_is_not_taken_for_accounts(write_jsonl: Callable[[list[bytes]], Path]) -> None:
    """Events missing a field, or a bare account id, are not called account records."""
    path = write_jsonl([b'{"account_id": "acme"}', b'{"event": "Login", "account_id": "acme"}'])
    result = CliRunner().invoke(events, ["validate", str(path)])
    assert result.stderr.splitlines()[-1] == f"{path}: 0 valid, 2 invalid"


def test_validate_reads_stdin_for_a_dash() -> None:
    """`events validate -` reads the events from stdin and names them <stdin>."""
    result = CliRunner().invoke(events, ["validate", "-"], input=good("a") + b"\n{oops\n")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith("<stdin>:2: invalid_json: ")
    assert "<stdin>: 1 valid, 1 invalid" in result.stderr


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_validate_fails_on_an_input_without_events(tmp_path: Path, content: bytes) -> None:
    """An empty file (or only blank lines) is an error, not a pass: exit 1 with one clear line."""
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    result = CliRunner().invoke(events, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {path}: no events (the input is empty or only blank lines)"


def test_a_gzipped_events_file_is_one_line_for_validate_backtest_and_publish(tmp_path: Path) -> None:
    """events validate, backtest and publish --file on events.jsonl.gz say it is compressed in one line (exit 1),
    instead of one invalid_utf8 line per compressed line."""
    import gzip

    line = b'{"event_id":"e1","event":"Login","account_id":"acme","timestamp":"2026-11-23T06:00:00Z"}\n'
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(line * 2000))
    expected = f"Error: {path} is gzip-compressed, not JSON lines; decompress it first (gzip -dk {path})"
    for args in (
        ["events", "validate", str(path)],
        ["backtest", "--events", str(path)],
        ["publish", "--file", str(path)],
    ):
        result = CliRunner().invoke(main, args, env={"PREEMPT_BROKER": "kafka://127.0.0.1:1"})
        assert result.exit_code == 1, (args, result.output)
        assert result.output.strip().splitlines() == [expected], args


def test_ctrl_c_in_validate_says_how_far_it_got(
    write_jsonl: Callable[[list[bytes]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in a long validate only said "Interrupted": it says the line it stopped at and the counts so far,
    then exits 130."""
    path = write_jsonl([good("e1"), b"[]", good("e3"), good("e4")])
    decode = events_module.decode_event
    calls: list[bytes] = []

    def ctrl_c_on_the_third(raw: bytes, **kwargs: Any) -> Any:
        calls.append(raw)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return decode(raw, **kwargs)

    monkeypatch.setattr(events_module, "decode_event", ctrl_c_on_the_third)
    result = CliRunner().invoke(main, ["events", "validate", str(path)])
    assert result.exit_code == 130, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"{path}: stopped at line 3: 1 valid, 1 invalid so far",
        "Interrupted (Ctrl-C); stopped before finishing: any file it was writing is incomplete.",
    ]


def test_validate_shows_control_characters_of_a_line_escaped_not_raw() -> None:
    """An unknown top-level field is named in the report, and its name is the sender's: a key
    ``"\\u001b]0;pwned\\u0007"`` wrote the escape sequence raw to the terminal (it retitled it). Control
    characters now show as \\xNN; ``preempt publish --file`` reports through the same line."""
    line = b'{"event_id":"e1","event":"Login","account_id":"acme","timestamp":"2026-11-23T06:00:00Z",'
    line += b'"\\u001b]0;pwned\\u0007":1}'
    result = CliRunner().invoke(events, ["validate", "-"], input=line + b"\n")
    assert result.exit_code == 1
    assert "\x1b" not in result.output, repr(result.output)
    assert "\x07" not in result.output, repr(result.output)
    assert "<stdin>:1: unknown_field (\\x1b]0;pwned\\x07):" in result.output
