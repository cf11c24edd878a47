"""Memory of a rules worker holding the state of many accounts: ``rss_mb_100k_accounts``.

Run:  .venv/bin/python -m bench.state_memory [--accounts 100000] [--days 7]

Realistic states first: a simulated history (200 accounts, ``--days`` days, the default pack)
runs through the engine and every account's state is serialized. Then the worker's two copies of
state are filled for ``--accounts`` accounts, cloning those states round-robin under new account
ids: the state table (bytes per account, as Faust's in-memory store holds them) and the
processor's state cache (``streams.worker.state_cache.StateCache``, live decoded states, at most
``PREEMPT_WORKER_STATE_CACHE_ACCOUNTS``, flushed every 2,000 accounts as the worker flushes once
per batch). Prints one JSON object: the process's resident set before and after (VmRSS, VmHWM),
in MiB, and the serialized state size per account. With ``rocksdb://`` (production) the table
bytes live in RocksDB, not in the process's heap, so this is an upper bound for that store.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

from rules.clock import EventTimeClock
from rules.engine import RuleEngine
from rules.loader import load_rules
from streams.runtime.settings import Settings
from streams.simulate.generator import Simulation, SimulationConfig
from streams.worker.state_cache import StateCache

DEFAULT_PACK = Path(__file__).resolve().parent.parent / "rules" / "packs" / "default"
LATENESS = 5.0  # the default PREEMPT_ALLOWED_LATENESS_SECONDS


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sample_states(engine: RuleEngine, days: int) -> list[bytes]:
    """Serialized states of 200 simulated accounts after ``days`` of history."""
    start_ms = int(datetime(2026, 10, 5, tzinfo=UTC).timestamp() * 1000)
    simulation = Simulation(SimulationConfig(seed=7, accounts=200, start_ms=start_ms, days=days))
    states = {}
    clock = EventTimeClock(LATENESS)
    for event in simulation.events():
        watermark = clock.after_event(event.ts)
        state = states.get(event.account_id)
        if state is None:
            state = states[event.account_id] = engine.new_state()
        engine.on_event(state, event, watermark)
    return [engine.dumps(state) for state in states.values()]


def main() -> None:
    """Measure and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    settings = Settings()
    engine = RuleEngine(load_rules(DEFAULT_PACK))
    samples = sample_states(engine, args.days)
    gc.collect()
    before = _status_mb("VmRSS")
    table: dict[bytes, bytes] = {}
    for i in range(args.accounts):
        table[f"acct-{i:07d}".encode()] = samples[i % len(samples)]
    cache = StateCache(
        table, engine.new_state, engine.loads, engine.dumps, max_clean=settings.worker_state_cache_accounts
    )
    for i in range(args.accounts):
        cache.get(f"acct-{i:07d}", 0)
        if i % 2000 == 1999:  # the worker flushes (and the cache evicts) once per batch
            cache.flush()
    cache.flush()
    gc.collect()
    print(
        json.dumps(
            {
                "accounts": args.accounts,
                "cached_states": len(cache),
                "rss_mb_before": round(before, 1),
                "rss_mb": round(_status_mb("VmRSS"), 1),
                "peak_rss_mb": round(_status_mb("VmHWM"), 1),
                "state_bytes_median": statistics.median(len(s) for s in samples),
            }
        )
    )


if __name__ == "__main__":
    main()
