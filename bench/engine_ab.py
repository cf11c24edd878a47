"""The pure rule engine of this checkout against another's (e.g. before issue 11), in ONE run.

Run:  .venv/bin/python -m bench.engine_ab --before PATH [--rounds 4] [--accounts 200] [--days 30]
                                                          [--seed 7] [--valgrind]

``PATH`` is a checkout of the other commit (``git worktree add --detach PATH <commit>``); its code
runs with this checkout's interpreter and packages (``PYTHONPATH=PATH``, as ``bench.parity``
does). Both engines get the SAME events (``preempt simulate``'s personas, generated once by this
checkout and written to a temporary file) and each checkout's own default pack, in the same
timed loop (``bench/engine_pass.py``). The rounds alternate the order (before, after, after,
before, ...) so that a change of load on a shared machine hits both alike; every process is
pinned to the same CPU. Printed: events/s by wall clock and per CPU second of the timed thread
(median and range over every pass), the ratio after/before of the medians, and the findings of
each (they must be equal: the same work was done).

``--valgrind`` also counts CPU instructions per event with valgrind's cachegrind (load-independent,
so the most reliable figure on a shared machine): one process that loads and runs one pass, minus
one that loads and runs none, divided by the events.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.simulate.generator import Simulation, SimulationConfig

ROOT = Path(__file__).resolve().parent.parent
PASS_SCRIPT = Path(__file__).resolve().parent / "engine_pass.py"


def _write_events(path: Path, accounts: int, days: int, seed: int) -> int:
    start_ms = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1000)
    simulation = Simulation(SimulationConfig(seed=seed, accounts=accounts, start_ms=start_ms, days=days))
    rows = [
        [ev.event_id, ev.event, ev.account_id, ev.ts, ev.user_id, ev.properties, ev.context]
        for ev in simulation.events()
    ]
    path.write_bytes(orjson.dumps(rows))
    return len(rows)


def _command(events: Path, passes: int, pin: int | None) -> list[str]:
    command = [sys.executable, str(PASS_SCRIPT), str(events), "--passes", str(passes)]
    return command + (["--pin", str(pin)] if pin is not None else [])


def _run(code: Path, command: list[str], **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(code), PREEMPT_LOG_LEVEL="WARNING", **env_extra)
    done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} in {code} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done


def _timed(code: Path, events: Path, passes: int, pin: int | None) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_run(code, _command(events, passes, pin)).stdout)
    if not result["engine"].startswith(str(code)):
        raise SystemExit(f"{code}: the engine imported was {result['engine']} (PYTHONPATH did not win)")
    return result


def _instructions(code: Path, events: Path, passes: int) -> int:
    with tempfile.NamedTemporaryFile(prefix="cachegrind-") as out:
        valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out.name}"]
        # a fixed hash seed: the count then repeats exactly (dict and set layouts depend on it)
        done = _run(code, valgrind + _command(events, passes, None), PYTHONHASHSEED="0")
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def _figures(name: str, passes: list[dict[str, Any]], events: int) -> tuple[float, float]:
    wall = [events / p["wall_s"] for p in passes]
    cpu = [events / p["cpu_s"] for p in passes]
    print(
        f"{name:>6}: wall median {statistics.median(wall):,.0f} events/s ({min(wall):,.0f}-{max(wall):,.0f}); "
        f"per CPU second median {statistics.median(cpu):,.0f} ({min(cpu):,.0f}-{max(cpu):,.0f}); {len(passes)} passes"
    )
    return statistics.median(wall), statistics.median(cpu)


def _timed_rounds(
    codes: dict[str, Path], events_path: Path, events: int, rounds: int, passes_each: int, pin: int | None
) -> dict[str, Any]:
    passes: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for round_ in range(rounds):
        order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
        for name in order:
            passes[name] += _timed(codes[name], events_path, passes_each, pin)["passes"]
    findings = {name: {p["findings"] for p in runs} for name, runs in passes.items()}
    print(f"findings per pass: before {sorted(findings['before'])}, after {sorted(findings['after'])}")
    if findings["before"] != findings["after"] or len(findings["after"]) != 1:
        print("WARNING: the two engines did not find the same number of findings")
    wall_b, cpu_b = _figures("before", passes["before"], events)
    wall_a, cpu_a = _figures("after", passes["after"], events)
    print(f" ratio: after/before {wall_a / wall_b:.2f}x by wall clock, {cpu_a / cpu_b:.2f}x per CPU second")
    return {
        "events": events,
        "before_events_per_s": round(wall_b),
        "after_events_per_s": round(wall_a),
        "before_cpu_events_per_s": round(cpu_b),
        "after_cpu_events_per_s": round(cpu_a),
        "ratio_wall": round(wall_a / wall_b, 3),
        "ratio_cpu": round(cpu_a / cpu_b, 3),
    }


def main() -> None:
    """Measure both and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the other commit")
    parser.add_argument("--after", type=Path, default=ROOT, help="checkout measured against it (default: this one)")
    parser.add_argument("--rounds", type=int, default=4, help="processes per checkout (alternating)")
    parser.add_argument("--passes", type=int, default=2, help="timed passes per process")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--valgrind", action="store_true", help="also count instructions per event")
    parser.add_argument("--json", action="store_true", help="also print one JSON object with every figure")
    args = parser.parse_args()
    codes = {"before": args.before.resolve(), "after": args.after.resolve()}
    for code in codes.values():
        if not (code / "rules" / "engine.py").is_file():
            raise SystemExit(f"{code} is not a checkout of Preempt (no rules/engine.py)")
    pin = sorted(os.sched_getaffinity(0))[0] if hasattr(os, "sched_getaffinity") else None
    figures: dict[str, Any] = {"load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    with tempfile.TemporaryDirectory(prefix="preempt-engine-ab-") as tmp:
        events_path = Path(tmp) / "events.json"
        events = _write_events(events_path, args.accounts, args.days, args.seed)
        print(f"events: {events:,} from {args.accounts} simulated accounts over {args.days} days (seed {args.seed})")
        for name, code in codes.items():
            print(f"{name:>6}: {code} @ {_head(code)}")
        if args.rounds > 0:
            figures |= _timed_rounds(codes, events_path, events, args.rounds, args.passes, pin)
        if args.valgrind:
            per_event = {}
            for name, code in codes.items():
                one = _instructions(code, events_path, 1)
                none = _instructions(code, events_path, 0)
                per_event[name] = (one - none) / events
            print(
                f"instructions per event (valgrind cachegrind): before {per_event['before']:,.0f}, "
                f"after {per_event['after']:,.0f} ({per_event['before'] / per_event['after']:.2f}x fewer)"
            )
            figures |= {f"{name}_instructions_per_event": round(value) for name, value in per_event.items()}
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"load average at start {figures['load_average']}, at end {load}")
    if args.json:
        print(json.dumps(figures | {"load_average_end": load}))


def _head(code: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(code), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    head = done.stdout.strip()[:70] or "(not a git checkout)"
    dirty = subprocess.run(
        ["git", "-C", str(code), "status", "--porcelain", "--", "rules"], capture_output=True, text=True
    )
    return head + (" + uncommitted changes in rules/" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()
