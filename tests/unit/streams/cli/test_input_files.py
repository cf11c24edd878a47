"""Inputs given as pipes (`<(zcat events.jsonl.gz)`) are read whole, by commands that read an input twice too."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from schemas.event import format_ts

PREEMPT = str(Path(sys.executable).parent / "preempt")
T0 = 1_790_000_000.0


def _events(count: int) -> bytes:
    lines = (
        {"event_id": f"e{i}", "event": "Login", "account_id": f"acc-{i % 7}", "timestamp": format_ts(T0 + i)}
        for i in range(count)
    )
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def _through_a_pipe(args_before: list[str], args_after: list[str], data: bytes, cwd: Path) -> tuple[str, int]:
    """Run ``preempt ARGS_BEFORE /dev/fd/N ARGS_AFTER`` with N the read end of a pipe fed ``data``, as bash's
    process substitution does; returns stdout + stderr, and N."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [PREEMPT, *args_before, f"/dev/fd/{read_end}", *args_after],
        pass_fds=(read_end,),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PREEMPT_")},
    )
    os.close(read_end)
    with os.fdopen(write_end, "wb") as feed:
        feed.write(data)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0, out.decode()
    return out.decode(), read_end


def test_a_backtest_of_a_pipe_replays_every_line(tmp_path: Path) -> None:
    """Every one of 5,000 events piped in is replayed (checking for an event first lost a buffer's worth of lines)."""
    out, _ = _through_a_pipe(["backtest", "--events"], [], _events(5000), tmp_path)
    assert "5000 lines: 5000 events accepted" in out
    assert "0 invalid" in out


def test_an_evaluate_of_piped_outcomes_reads_them(tmp_path: Path) -> None:
    """evaluate tells outcomes from events by the first line, then reads the file: from a pipe the outcomes
    were lost ('no outcomes … every account counts as not churned')."""
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(b"")
    outcome = {"account_id": "acc-1", "outcome": "churned", "at": format_ts(T0 + 90 * 86400)}
    out, _ = _through_a_pipe(
        ["evaluate", "--alerts", str(alerts), "--outcomes"], [], orjson.dumps(outcome) + b"\n", tmp_path
    )
    assert "1 churned accounts" in out
    assert "no outcomes" not in out


def test_the_temporary_copy_is_removed_when_the_command_ends(tmp_path: Path) -> None:
    """The copy a pipe is read into does not outlive the command."""
    _, fd = _through_a_pipe(["backtest", "--events"], [], _events(10), tmp_path)
    assert list(Path(tempfile.gettempdir()).glob(f"preempt-*/{fd}")) == []


def _from_stdin(args: list[str], data: bytes, cwd: Path) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [PREEMPT, *args],
        input=data,
        cwd=cwd,
        capture_output=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PREEMPT_")},
    )
    return subprocess.CompletedProcess(run.args, run.returncode, run.stdout.decode(), run.stderr.decode())


def test_dash_reads_stdin(tmp_path: Path) -> None:
    """``--events -`` replays what stdin holds (``zcat events.jsonl.gz | preempt backtest --events -``), as
    ``events validate -`` reads it; it was 'File '-' does not exist'."""
    run = _from_stdin(["backtest", "--events", "-"], _events(50), tmp_path)
    assert run.returncode == 0, run.stderr
    assert "50 lines: 50 events accepted" in run.stderr + run.stdout


def test_a_message_about_stdin_or_a_pipe_names_it(tmp_path: Path) -> None:
    """An error about an input read from stdin names it ``<stdin>``, as ``events validate -`` does: it named
    the temporary copy (/tmp/preempt-x1y2/stdin), and for a compressed stdin told the user to decompress
    that file (gzip -dk /tmp/preempt-x1y2/stdin), which is gone when the command ends."""
    run = _from_stdin(["backtest", "--events", "-"], b"\n", tmp_path)
    assert run.returncode == 1
    assert run.stderr.splitlines() == ["Error: <stdin>: no events (the file is empty or only blank lines)"]
    for args in (["backtest", "--events", "-"], ["publish", "--file", "-"], ["alerts", "preview", "-"]):
        run = _from_stdin(args, gzip.compress(_events(3)), tmp_path)
        assert run.returncode == 1, (args, run.stderr)
        assert run.stderr.splitlines() == ["Error: stdin is gzip-compressed, not JSON lines; decompress it first"]


def test_only_one_option_takes_stdin(tmp_path: Path) -> None:
    """Two options given ``-`` would leave the second empty: refused, naming the option that has it."""
    run = _from_stdin(["backtest", "--events", "-", "--accounts", "-"], _events(5), tmp_path)
    assert run.returncode == 2
    assert "stdin is already the input of --events" in run.stderr
