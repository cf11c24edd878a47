"""Scale-out on one host: the same replay through one and through two rules-worker processes.

Run:  .venv/bin/python -m bench.scale [--workers 1 2] [--partitions 12]

For each worker count: a fresh topic set (``PREEMPT_TOPIC_PARTITIONS`` = ``--partitions``), the
7-day / 200-account history of ``make bench`` published to it, then that many ``preempt worker``
processes of one consumer group started together (event-time replay, memory:// store). The
figure is events/s from the first record any worker processed to the last, summed over the
workers' ``preempt_events_total``. Prints one JSON object per worker count.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.run import _metrics, _settings, _start_worker, _stop, prepare
from streams.runtime.testing import free_port, metric_sum
from streams.runtime.topics import ensure_topics


def replay(workers: int, partitions: int) -> dict[str, float]:
    """Events/s of ``workers`` processes over a fresh copy of the bench history."""
    workdir = Path(tempfile.mkdtemp(prefix="preempt-scale-"))
    settings = _settings(topic_partitions=partitions, event_time_only=True)
    ensure_topics(settings)
    total, _ = prepare(workdir, settings)
    ports = [settings.worker_web_port] + [free_port() for _ in range(workers - 1)]
    procs = [
        _start_worker(settings.model_copy(update={"worker_web_port": port}), workdir / f"worker-{i}.log")
        for i, port in enumerate(ports)
    ]
    first = done = None
    seen = last_seen = 0.0
    try:
        deadline = time.monotonic() + 900
        last_progress = time.monotonic()
        while time.monotonic() < deadline:
            seen = sum(metric_sum(_metrics(port), "preempt_events_total") for port in ports)
            if seen > 0 and first is None:
                first = (time.perf_counter(), seen)
            if seen > last_seen:
                last_seen, last_progress, done = seen, time.monotonic(), time.perf_counter()
            if seen >= total or (seen > 0 and time.monotonic() - last_progress > 20):
                break
            time.sleep(0.1)
    finally:
        for proc in procs:
            _stop(proc)
    if first is None or done is None:
        raise SystemExit(f"workers did not process anything; see {workdir}")
    return {
        "workers": workers,
        "partitions": partitions,
        "events": total,
        "processed": seen,
        "events_per_s": round((seen - first[1]) / (done - first[0])),
    }


def main() -> None:
    """Measure each worker count in turn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--partitions", type=int, default=12)
    args = parser.parse_args()
    for workers in args.workers:
        print(json.dumps(replay(workers, args.partitions)), flush=True)


if __name__ == "__main__":
    main()
