"""Simulator output and the default pack over it: volume, generation speed, persona × rule table.

Run:  .venv/bin/python -m bench.simulate [--accounts 100] [--days 30] [--seed 7] [--start 2026-10-05T00:00:00Z]

1. Generates ``--days`` of ``--accounts`` accounts and writes the JSONL files like
   ``preempt simulate --output`` does (timed, in-process, into a temporary directory).
2. Backtests the default pack over them (``rules.backtest.run_backtest``, until the end of the run).
3. Prints the persona × rule table twice: alerts, and accounts that got at least one alert.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

from rules.backtest import decode_lines, load_accounts, run_backtest
from rules.engine import RuleEngine
from rules.loader import load_rules
from schemas.jsonl import read_file
from streams.simulate.files import write_accounts, write_events
from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.local_time import DAY_MS
from streams.simulate.personas import MIX

PACK = Path(__file__).resolve().parent.parent / "rules" / "packs" / "default"


def main() -> None:
    """Generate, backtest, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default="2026-10-05T00:00:00Z")
    args = parser.parse_args()
    start_ms = round(datetime.fromisoformat(args.start).timestamp() * 1000)

    with tempfile.TemporaryDirectory() as tmp:
        events_path, accounts_path = Path(tmp) / "events.jsonl", Path(tmp) / "accounts.jsonl"
        began = time.perf_counter()
        sim = Simulation(SimulationConfig(args.seed, args.accounts, start_ms, args.days))
        write_accounts(accounts_path, sim.accounts)
        size = write_events(events_path, sim.events())
        generated = time.perf_counter() - began
        lines = sum(1 for _ in read_file(events_path))
        print(f"simulate: {lines} events, {size / 1e6:.1f} MB in {generated:.2f} s ({lines / generated:,.0f} events/s)")

        rules = load_rules(PACK)
        accounts, _ = load_accounts(accounts_path)
        began = time.perf_counter()
        result = run_backtest(
            RuleEngine(rules),
            decode_lines(read_file(events_path)),
            accounts,
            until=(start_ms + args.days * DAY_MS) / 1000,
            allowed_lateness=5.0,
        )
        print(f"backtest: {len(result.alerts)} alerts in {time.perf_counter() - began:.2f} s, late={result.late}")

    persona_of = {a.account_id: a.persona for a in sim.accounts}
    alerts: dict[str, Counter[str]] = defaultdict(Counter)
    fired: dict[str, set[str]] = defaultdict(set)
    for alert in result.alerts:
        alerts[persona_of[alert.account_id]][alert.rule_id] += 1
        fired[alert.rule_id].add(alert.account_id)
    ranked = [r.id for r in rules.stack_ranked()]
    per_persona = Counter(persona_of.values())
    for title, cell in (
        ("alerts", lambda p, r: alerts[p][r]),
        ("accounts with ≥ 1 alert", lambda p, r: sum(1 for a in fired[r] if persona_of[a] == p)),
    ):
        print(f"\n{title} (columns by priority: {', '.join(f'{i + 1}={r}' for i, r in enumerate(ranked))})")
        print(f"{'persona':<24}{'accts':>6}" + "".join(f"{i + 1:>4}" for i in range(len(ranked))))
        for persona in MIX:
            if per_persona[persona]:
                row = "".join(f"{cell(persona, r) or '.':>4}" for r in ranked)
                print(f"{persona.value:<24}{per_persona[persona]:>6}{row}")


if __name__ == "__main__":
    main()
