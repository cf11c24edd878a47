"""The rules worker's per-record path without Kafka or Faust: ``RulesProcessor.process_batch`` over a history.

Run:  .venv/bin/python -m bench.worker_path --write-events EVENTS.jsonl     # the history of ``make bench``
      PYTHONPATH=CHECKOUT .venv/bin/python bench/worker_path.py EVENTS.jsonl --passes 2   (cwd: CHECKOUT)

The second form is a script run with ``PYTHONPATH`` and the working directory set to the checkout whose worker
is measured (as ``bench/engine_pass.py`` is), so two commits can be compared on the same events; each uses its
own default pack. The records are split by account over ``--partitions`` (12) partitions as Kafka's default
partitioner does and handed over in polls of ``--per-poll`` (500) records a partition, as the worker's batched
path gets them: decoding, the clocks, the engine, the state cache and the alerts' making are timed, not Kafka,
Faust or the writes. All of a batch's due work is done in the batch (``DUE_WORK_SECONDS`` lifted), so the work
does not depend on the speed of the machine. Prints one JSON object: per pass, wall and CPU (thread) seconds
and the alerts.

On a shared machine compare instruction counts (load-independent; a fixed hash seed makes them repeat):
``PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no …/python bench/worker_path.py EVENTS.jsonl
--passes 1``, minus the same with ``--passes 0`` (loads and splits the records, times nothing), divided by the
events.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from rules.engine import RuleEngine
from rules.loader import load_rules
from streams.runtime.settings import Settings
from streams.worker import processor as processor_module
from streams.worker.clock import PartitionClocks
from streams.worker.processor import RulesProcessor, partition_for_key
from streams.worker.state_cache import StateCache
from streams.worker.wakeups import WakeupIndex

WALL = 1_900_000_000.0  # the processor's wall clock (event-time-only: used for the future-timestamp check)


class _Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...] = ()


def write_events(path: Path, partitions: int) -> int:
    """The history ``make bench`` publishes (7 days of 200 accounts, seed 7, heartbeats); returns its events."""
    from streams.simulate.heartbeats import append_heartbeats

    with tempfile.TemporaryDirectory(prefix="preempt-worker-path-") as tmp:
        subprocess.run(
            [
                str(Path(sys.executable).parent / "preempt"),
                *("simulate", "--days", "7", "--accounts", "200", "--seed", "7"),
                *("--start", "2026-11-01T00:00:00Z", "--output", str(path)),
                *("--accounts-output", str(Path(tmp) / "accounts.jsonl")),
            ],
            check=True,
            capture_output=True,
        )
    append_heartbeats(path, partitions)
    return len(path.read_bytes().splitlines())


def _polls(lines: list[bytes], partitions: int, per_poll: int) -> list[list[_Record]]:
    by_partition: dict[int, list[_Record]] = {p: [] for p in range(partitions)}
    for line in lines:
        key = json.loads(line)["account_id"].encode()
        p = partition_for_key(key, partitions)
        by_partition[p].append(_Record("events", p, len(by_partition[p]), key, line))
    longest = max(map(len, by_partition.values()), default=0)
    return [
        [r for p in range(partitions) for r in by_partition[p][start : start + per_poll]]
        for start in range(0, longest, per_poll)
    ]


def _no_account(account_id: str) -> None:
    """The account lookup: no account records (enrichment is not measured here)."""


def _one_pass(polls: list[list[_Record]], partitions: int) -> dict[str, Any]:
    engine = RuleEngine(load_rules(Path.cwd() / "rules" / "packs" / "default"))
    settings = Settings(event_time_only=True, topic_partitions=partitions)
    clocks = PartitionClocks(settings.allowed_lateness_seconds, True, wall_clock=lambda: WALL)
    cache = StateCache({}, engine.new_state, engine.loads, engine.dumps)
    worker = RulesProcessor(engine, settings, cache, clocks, WakeupIndex(), _no_account, wall_clock=lambda: WALL)
    alerts = 0
    started, cpu_started = time.perf_counter(), time.thread_time()
    for poll in polls:
        alerts += len(worker.process_batch(poll).alerts)
    return {"wall_s": time.perf_counter() - started, "cpu_s": time.thread_time() - cpu_started, "alerts": alerts}


def main() -> None:
    """Write the events, or time the passes and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", type=Path, nargs="?")
    parser.add_argument("--write-events", type=Path, help="write the bench history to this file and stop")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--per-poll", type=int, default=500, help="records a partition a poll")
    args = parser.parse_args()
    if args.write_events is not None:
        print(json.dumps({"events": write_events(args.write_events, args.partitions)}))
        return
    if args.events is None:
        parser.error("give EVENTS.jsonl or --write-events")
    processor_module.DUE_WORK_SECONDS = 1e9  # every batch does all its due work: the same work on any machine
    lines = args.events.read_bytes().splitlines()
    polls = _polls(lines, args.partitions, args.per_poll)
    passes = [_one_pass(polls, args.partitions) for _ in range(args.passes)]
    print(json.dumps({"worker": processor_module.__file__, "events": len(lines), "passes": passes}))


if __name__ == "__main__":
    main()
