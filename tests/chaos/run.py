"""``make chaos``: real processes on real brokers under injected faults; prints one table.

    python -m tests.chaos.run                 every implemented scenario (full load)
    python -m tests.chaos.run --quick         smaller loads (what `make test` runs, for some scenarios)
    python -m tests.chaos.run --only 5,6,10   a subset, by scenario number

Implemented scenarios (numbers from issue 12): 1 rules worker SIGKILLed 5x under a replay with known
alerts, 2 a 3-broker KRaft cluster losing a partition leader and restarting a broker, 3 1% poison
input at load, 4 Slack 429 → 503 → recovery, 5 permanent delivery errors, 6 SMTP 421/451 then 250,
7 notifier SIGKILLed between Slack's 200 and the delivery record, 8 template and mention injection,
9 ingest abuse (keys, signatures, replays, sizes, mixed batches), 10 secrets scan of every log and dead
letter, 11 the SASL_SSL pipeline and a refused client, 12 a fault sweep on a 3-broker cluster (leader
SIGKILL, two brokers down below min ISR, the rules worker SIGKILLed, a rolling restart) with Slack,
email and the ingest live.
Every loop is bounded; every address is 127.0.0.1. Exit 0 when every row passes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from tests.chaos.broker_sweep import run_broker_sweep
from tests.chaos.cluster import run_cluster_failover
from tests.chaos.delivery import run_delivery_faults
from tests.chaos.harness import Context, Row
from tests.chaos.ingest_abuse import run_ingest_abuse
from tests.chaos.injection import run_injection
from tests.chaos.notifier_kills import run_notifier_kills
from tests.chaos.pipeline import run_sasl_pipeline, run_worker_sigkills
from tests.chaos.poison import run_poison_at_load
from tests.chaos.secrets_scan import run_secrets_scan

COLUMNS = ("scenario", "load", "faults injected", "expected", "emitted", "delivered", "lost", "duplicated", "result")

# (numbers covered, runner) in the order they run; the secrets scan last, over everything before it.
SCENARIOS: list[tuple[set[int], Callable[[Context], list[Row]]]] = [
    ({11}, lambda ctx: [run_sasl_pipeline(ctx)]),
    ({4, 5, 6}, run_delivery_faults),
    ({7}, lambda ctx: [run_notifier_kills(ctx)]),
    ({8}, lambda ctx: [run_injection(ctx)]),
    ({9}, lambda ctx: [run_ingest_abuse(ctx)]),
    ({1}, lambda ctx: [run_worker_sigkills(ctx)]),
    ({3}, lambda ctx: [run_poison_at_load(ctx)]),
    ({2}, lambda ctx: [run_cluster_failover(ctx)]),
    ({12}, run_broker_sweep),
    ({10}, lambda ctx: [run_secrets_scan(ctx)]),
]
NAMES = {
    1: "1 rules worker SIGKILLed 5x",
    2: "2 3-broker cluster: leader killed, broker restarted",
    3: "3 1% poison input at load",
    4: "4 Slack 429 (Retry-After) → 503 → recovery",
    5: "5 permanent delivery errors",
    6: "6 SMTP 421/451 then 250",
    7: "7 notifier SIGKILLed 3x between Slack's 200 and the record",
    8: "8 template and mention injection",
    9: "9 ingest abuse",
    10: "10 secrets in logs and dead letters",
    11: "11 SASL_SSL pipeline + wrong credentials",
    12: "12 3-broker sweep",
}


def run(only: set[int] | None, quick: bool, bootstrap: str, seed: int, workdir: Path) -> list[Row]:
    """Run the selected scenarios; a scenario that crashes becomes a FAIL row saying why."""
    ctx = Context.create(workdir, bootstrap, seed, quick)
    rows: list[Row] = []
    try:
        for numbers, runner in SCENARIOS:
            wanted = numbers if only is None else numbers & only
            if not wanted:
                continue
            started = time.monotonic()
            try:
                produced = runner(ctx)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1][:300]
                produced = [Row(NAMES[n], notes=[f"not met: crashed: {detail}"]) for n in sorted(numbers)]
            took = time.monotonic() - started
            for row in produced:
                if int(row.scenario.split()[0]) in wanted:
                    row.notes.append(f"{took:.0f}s")
                    rows.append(row)
            print_table(rows, sys.stderr)  # progress: the table so far
    finally:
        ctx.reap()
    return rows


def print_table(rows: list[Row], out: object = sys.stdout) -> None:
    """One Markdown table: the columns of issue 12, then a notes line per row."""
    cells = [
        [
            r.scenario,
            r.load,
            r.faults,
            str(r.expected),
            str(r.emitted),
            str(r.delivered),
            str(r.lost),
            str(r.duplicated),
            r.result,
        ]
        for r in rows
    ]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    notes = [f"* {r.scenario}: {'; '.join(r.notes)}" for r in rows if r.notes]
    text = "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"
    print(text, file=out, flush=True)  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, print the table; exit 1 when a row failed."""
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller loads and shorter fault windows")
    parser.add_argument("--only", default="", help="comma-separated scenario numbers (default: all)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    args = parser.parse_args(argv)
    only = {int(n) for n in args.only.split(",") if n.strip()} or None
    bootstrap = os.environ.get("PREEMPT_TEST_BOOTSTRAP", "127.0.0.1:9092")
    workdir = Path(tempfile.mkdtemp(prefix="preempt-chaos-"))
    try:
        rows = run(only, args.quick, bootstrap, args.seed, workdir)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    return 0 if rows and all(r.result == "PASS" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
