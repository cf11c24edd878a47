"""Rule-evaluator throughput: events/s on one core, pure (no Kafka, no decoding in the timed loop).

Run:  .venv/bin/python -m bench.engine [--rules PATH] [--accounts 200] [--days 30] [--seed 7]

Rules: ``rules/packs/default`` when it holds rules, else the every-kind golden file of the tests.
Events: ``preempt simulate``'s personas, generated in-process and decoded before timing. The
timed loop is exactly the backtest's: one global clock (newest − lateness) and per-account
states, then a final advance of every account. It also reports the state size per account.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from rules.clock import EventTimeClock
from rules.engine import RuleEngine
from rules.loader import load_rules
from rules.state import AccountState
from schemas.event import Event
from streams.simulate.generator import Simulation, SimulationConfig

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PACK = ROOT / "rules" / "packs" / "default"
FALLBACK = ROOT / "tests" / "unit" / "rules" / "golden" / "good" / "every_kind.yaml"


def _rules_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if any(DEFAULT_PACK.rglob("*.yaml")) or any(DEFAULT_PACK.rglob("*.yml")):
        return DEFAULT_PACK
    return FALLBACK


def _one_pass(
    engine: RuleEngine, events: list[Event], lateness: float
) -> tuple[float, float, int, dict[str, AccountState]]:
    """(wall seconds, CPU seconds of this thread, findings, states) of one pass."""
    states: dict[str, AccountState] = {}
    clock = EventTimeClock(lateness)
    watermark = -math.inf
    alerts = 0
    gc.collect()
    started, cpu_started = time.perf_counter(), time.thread_time()
    for event in events:
        watermark = clock.after_event(event.ts)
        state = states.get(event.account_id)
        if state is None:
            state = states[event.account_id] = engine.new_state()
        alerts += len(engine.on_event(state, event, watermark)[1])
    for account_id in states:
        alerts += len(engine.advance(states[account_id], watermark))
    return time.perf_counter() - started, time.thread_time() - cpu_started, alerts, states


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lateness", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object (for make bench)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    rules_path = _rules_path(args.rules)
    ruleset = load_rules(rules_path)
    start_ms = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1000)
    simulation = Simulation(SimulationConfig(seed=args.seed, accounts=args.accounts, start_ms=start_ms, days=args.days))
    events = list(simulation.events())
    if not args.json:
        print(f"rules: {rules_path} ({len(ruleset.enabled)} enabled)")
        print(f"events: {len(events):,} from {args.accounts} simulated accounts over {args.days} days")
    rates, cpu_rates = [], []
    alerts = 0
    states: dict[str, AccountState] = {}
    for _ in range(args.repeat):
        engine = RuleEngine(ruleset)
        seconds, cpu_seconds, alerts, states = _one_pass(engine, events, args.lateness)
        rates.append(len(events) / seconds)
        cpu_rates.append(len(events) / cpu_seconds)
    engine = RuleEngine(ruleset)
    sizes = [len(engine.dumps(state)) for state in states.values()]
    if args.json:
        figures = {
            "engine_events_per_s": round(statistics.median(rates)),
            "engine_cpu_events_per_s": round(statistics.median(cpu_rates)),
            "engine_events": len(events),
        }
        print(json.dumps(figures | {"engine_runs": [round(r) for r in rates], "findings": alerts}))
        return
    print(f"findings: {alerts:,} (after cooldown)")
    print(
        f"throughput (one core, pure engine): median {statistics.median(rates):,.0f} events/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}); per CPU second of the thread: "
        f"median {statistics.median(cpu_rates):,.0f} (less sensitive to other load on a shared machine)"
    )
    print(f"state per account after the run: median {statistics.median(sizes):,.0f} B, max {max(sizes):,} B")


if __name__ == "__main__":
    main()
