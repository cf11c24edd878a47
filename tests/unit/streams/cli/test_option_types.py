"""Number options refuse nan and infinity with one usage line instead of a traceback or a nonsense run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.main import main

EVENT = b'{"event_id":"e1","event":"Login","account_id":"acme","timestamp":"2026-11-23T06:00:00Z"}\n'


@pytest.mark.parametrize("value", ["nan", "inf", "NaN", "infinity"])
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["simulate", "--accounts", "2", "--seed", "1", "--duration", "1", "--rate"], "--rate"),
        (["simulate", "--accounts", "2", "--seed", "1", "--duration"], "--duration"),
        (["backtest", "--events", "events.jsonl", "--allowed-lateness"], "--allowed-lateness"),
        (
            ["train", "--events", "events.jsonl", "--output", "model.json", "--min-account-share"],
            "--min-account-share",
        ),
    ],
)
def test_a_number_option_that_is_not_finite_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], option: str, value: str
) -> None:
    """nan/inf for a number option exits 2 naming the option (simulate --rate nan was a ValueError traceback)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events.jsonl").write_bytes(EVENT)
    result = CliRunner().invoke(main, [*args, value], env={"PREEMPT_BROKER": "kafka://127.0.0.1:1"})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"Error: Invalid value for '{option}': " in result.output  # an infinity above a maximum: out of range
    if value.lower() == "nan" or option != "--min-account-share":
        assert f"Error: Invalid value for '{option}': {value!r} is not a finite number" in result.output


def test_a_finite_number_option_is_still_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A finite value within the range passes through unchanged (backtest with --allowed-lateness 2.5)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events.jsonl").write_bytes(EVENT)
    result = CliRunner().invoke(main, ["backtest", "--events", "events.jsonl", "--allowed-lateness", "2.5"])
    assert result.exit_code == 0, result.output
    assert "1 events accepted" in result.output
