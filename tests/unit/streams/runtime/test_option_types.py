"""Option types: number options refuse nan and infinity with one usage line instead of a traceback or a
nonsense run; input paths tell "not there" from "not allowed to look"."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streams.cli.main import main
from streams.runtime.option_types import InputPath

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
    assert "1 event accepted" in result.output


def test_an_input_in_a_folder_closed_to_the_user_is_not_called_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """click's Path(exists=True) said "File 'x' does not exist" for a file in a folder without the x permission;
    InputPath says it cannot look at it, and why. Missing files and ``-`` keep click's handling. (os.stat is
    faked: root may look anywhere.)"""
    from streams.runtime import option_types

    closed = tmp_path / "closed" / "events.jsonl"
    real_stat = os.stat

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if os.fsdecode(path) == str(closed):  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", str(closed))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(option_types.os, "stat", stat)
    option = InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
    with pytest.raises(click.BadParameter) as raised:
        option.convert(str(closed), None, None)
    assert raised.value.message == (
        f"cannot look at {closed}: Permission denied (a folder on the way is closed to this user)"
    )
    with pytest.raises(click.BadParameter, match="does not exist"):
        option.convert(str(tmp_path / "missing.jsonl"), None, None)
    assert option.convert("-", None, None) == Path("-")


def test_a_live_simulation_of_zero_seconds_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """simulate --duration 0 connected, sent nothing and exited 0 ("0 events in 0.3 s"): a usage error instead."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["simulate", "--accounts", "2", "--duration", "0"], env={"PREEMPT_BROKER": "kafka://127.0.0.1:1"}
    )
    assert result.exit_code == 2, result.output
    assert "Error: Invalid value for '--duration': give a number, more than 0.0 (got '0')" in result.output
