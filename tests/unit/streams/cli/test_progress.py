"""Progress bars: drawn on a terminal, even one that reports no size; never in a log (not a terminal)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.cli.progress import progress_bar

PREEMPT = str(Path(sys.executable).parent / "preempt")


def _read_all(fd: int, until_s: float) -> bytes:
    """What the terminal received until the writer closed it or ``until_s`` passed (bounded)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + until_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed (Linux: EIO)
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_bar_is_drawn_on_a_terminal_that_reports_no_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh pseudo-terminal (0 x 0, as `script` opens from a CI job) gets a visible bar, not an empty line."""
    master, slave = pty.openpty()
    assert os.get_terminal_size(slave) == os.terminal_size((0, 0))
    with os.fdopen(slave, "w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        with progress_bar(total=10, desc="events") as bar:
            bar.update(10)
        stream.flush()
        output = _read_all(master, until_s=2.0).decode()
    os.close(master)
    assert "events: 100%" in output
    assert "10/10" in output


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written to a file (a log), a bar writes nothing at all."""
    log = tmp_path / "stderr.log"
    with log.open("w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        with progress_bar(total=10, desc="events") as bar:
            bar.update(10)
    assert log.read_text() == ""


def test_simulate_shows_its_bar_on_a_sizeless_terminal_and_not_in_a_log(tmp_path: Path) -> None:
    """`preempt simulate` run under a pseudo-terminal of no size shows 'simulating'; with stderr a file, no bar."""
    args = [PREEMPT, "simulate", "--accounts", "50", "--days", "10", "--seed", "1"]
    master, slave = pty.openpty()
    process = subprocess.Popen([*args, "--output", str(tmp_path / "a.jsonl")], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    shown = _read_all(master, until_s=90.0).decode(errors="replace")
    os.close(master)
    assert process.wait(timeout=30) == 0, shown
    assert "simulating:" in shown, shown
    assert "day/s" in shown, shown

    logged = subprocess.run([*args, "--output", str(tmp_path / "b.jsonl")], capture_output=True, timeout=90, check=True)
    assert b"simulating" not in logged.stderr
    assert b"\r" not in logged.stderr
    assert b"total" in logged.stdout
