"""Every benchmark script answers ``--help`` with its usage at once, without a broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = sorted(p.stem for p in (REPO / "bench").glob("*.py") if '__name__ == "__main__"' in p.read_text())


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_the_usage_and_runs_nothing(script: str) -> None:
    """``python -m bench.X --help`` prints a usage line and exits 0 (``bench.run`` ignored its arguments and
    started a minutes-long run against the broker of PREEMPT_BROKER)."""
    # A broker address nothing listens on: a script that starts work instead of showing help fails fast.
    env = {**os.environ, "PREEMPT_BROKER": "kafka://127.0.0.1:9", "PREEMPT_BROKER_PROBE_SECONDS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{script}", "--help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: "), done.stdout[:500]
