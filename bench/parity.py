"""Backtest parity: the default pack's alerts and summary over simulated histories, byte for byte.

Run:  .venv/bin/python -m bench.parity record DIR [--code ROOT]   # golden output (e.g. of main)
      .venv/bin/python -m bench.parity check DIR                  # this checkout against it

Each case simulates accounts (``preempt simulate``, fixed seed and start) and backtests them with
the default pack (``preempt backtest --output``), keeping the alerts JSONL and the printed
summary. ``record`` runs the code under ``--code`` (a checkout of another commit, for the golden
output of the code before a change); ``check`` runs this checkout and compares every file
byte for byte, printing the first differing line. A speed-only change to ``rules/`` must pass.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES: dict[str, tuple[int, int, int]] = {
    # name: (accounts, days, seed)
    "a200-d7-s7": (200, 7, 7),
    "a200-d7-s11": (200, 7, 11),
    "a200-d7-s23": (200, 7, 23),
    "a200-d7-s101": (200, 7, 101),
    "a100-d30-s7": (100, 30, 7),
}
START = "2026-10-05T00:00:00Z"
UNTIL_DAYS_AFTER = 30  # the final --until: far enough for every deadline of the pack to fire


def _preempt(code: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(code), PREEMPT_LOG_LEVEL="WARNING")
    script = "import sys; from streams.cli.main import main; sys.argv[0] = 'preempt'; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=code, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"preempt {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def _until(days: int) -> str:
    from datetime import datetime, timedelta

    start = datetime.fromisoformat(START.replace("Z", "+00:00"))
    return (start + timedelta(days=days + UNTIL_DAYS_AFTER)).strftime("%Y-%m-%dT%H:%M:%SZ")


def produce(code: Path, out: Path) -> list[Path]:
    """Run every case with the code under ``code``; write its outputs under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="preempt-parity-") as tmp:
        for name, (accounts, days, seed) in CASES.items():
            events, account_file = Path(tmp) / f"{name}.events.jsonl", Path(tmp) / f"{name}.accounts.jsonl"
            _preempt(
                code,
                "simulate",
                *("--accounts", str(accounts), "--days", str(days), "--seed", str(seed), "--start", START),
                *("--output", str(events), "--accounts-output", str(account_file)),
            )
            for variant, extra in (("", ()), (".until", ("--until", _until(days)))):
                alerts = out / f"{name}{variant}.alerts.jsonl"
                summary = _preempt(
                    code,
                    "backtest",
                    *("--rules", str(code / "rules" / "packs" / "default"), "--events", str(events)),
                    *("--accounts", str(account_file), "--output", str(alerts), *extra),
                )
                # the summary names the input and output files, whose directories differ between runs
                summary = summary.replace(tmp, "<tmp>").replace(str(out), "<out>").replace(str(code), "<code>")
                (out / f"{name}{variant}.summary.txt").write_text(summary)
                written += [alerts, out / f"{name}{variant}.summary.txt"]
            print(f"{name}: {sum(1 for _ in alerts.open())} alerts", flush=True)
    return written


def main() -> None:
    """Record or check."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("record", "check"))
    parser.add_argument("golden", type=Path)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose code runs (record only)")
    args = parser.parse_args()
    if args.mode == "record":
        produce(args.code.resolve(), args.golden)
        return
    with tempfile.TemporaryDirectory(prefix="preempt-parity-now-") as now:
        written = produce(ROOT, Path(now))
        bad = 0
        for path in written:
            golden = args.golden / path.name
            if not golden.exists() or not filecmp.cmp(path, golden, shallow=False):
                bad += 1
                print(f"DIFFERS: {path.name}")
                if golden.exists():
                    for i, (a, b) in enumerate(zip(golden.open(), path.open(), strict=False), start=1):
                        if a != b:
                            print(f"  line {i}\n  golden: {a[:300]}  now:    {b[:300]}")
                            break
        print(f"parity: {len(written) - bad}/{len(written)} files identical")
        if bad:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
