"""The restart stress harness: SIGKILL a rules worker at random moments and restart it at once,
over a replayed history published while it runs, with the CPU kept busy; then check that every
partition is committed to its end, nothing stalled and the alert set equals the backtest's.

Used by ``tests/integration/test_pipeline_restart_stress.py`` (a few cycles in ``make test``, 20 or
more in ``make stress``). Every wait here is bounded in time.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.worker.app import app_id
from tests.integration.conftest import ManagedProcess


@dataclass
class PartitionProgress:
    """What the group committed on one partition of the events topic, and since when."""

    committed: int
    end: int
    since: float  # monotonic time the committed offset last moved


@dataclass
class StressReport:
    """The outcome of one stress run, for the assertion messages and the test's stderr line."""

    cycles: int = 0
    kills_at_s: list[float] = field(default_factory=list)
    progress: dict[int, PartitionProgress] = field(default_factory=dict)
    stalled: list[str] = field(default_factory=list)
    drained_in_s: float | None = None

    def summary(self) -> str:
        """One line: cycles, kill moments, per-partition committed/end."""
        parts = ", ".join(f"p{p}={v.committed}/{v.end}" for p, v in sorted(self.progress.items()))
        kills = ",".join(f"{k:.1f}" for k in self.kills_at_s)
        return f"{self.cycles} cycles (killed after {kills} s); committed {parts}; drained in {self.drained_in_s} s"


class CpuLoad:
    """A bounded spinning child process that keeps one core busy (stopped by ``stop`` or its deadline)."""

    def __init__(self, seconds: float) -> None:
        code = f"import time\nend = time.monotonic() + {seconds!r}\nwhile time.monotonic() < end:\n    pass\n"
        self.proc = subprocess.Popen([sys.executable, "-c", code])

    def stop(self) -> None:
        """Kill the spinner (by its own pid) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def publish_chunk(producer: KafkaProducer, topic: str, lines: list[bytes]) -> None:
    """Send ``lines`` (JSON events) keyed by account id, in order, and flush."""
    for value in lines:
        key = json.loads(value)["account_id"].encode()
        producer.send(topic, key=key, value=value, headers=[("content-type", b"application/json")])
    producer.flush()


def committed_and_ends(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    """``{partition: (committed offset or 0, end offset)}`` of ``group`` on ``topic``, asked of the broker."""
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], request_timeout_ms=10_000)
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = admin.list_group_offsets({group: tps}).get(group, {})
        ends = consumer.end_offsets(tps)
        out: dict[int, tuple[int, int]] = {}
        for tp in tps:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset is not None and meta.offset >= 0 else 0
            out[tp.partition] = (offset, ends[tp])
        return out
    finally:
        consumer.close()
        admin.close()


def readyz(port: int) -> tuple[int, str]:
    """``(status, body)`` of the worker's /readyz, or ``(0, error)`` when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, repr(exc)


def run_restart_stress(
    *,
    settings: Settings,
    bootstrap: str,
    events: Path,
    producer: KafkaProducer,
    start_worker: Callable[[Settings, str], ManagedProcess],
    cycles: int,
    seed: int,
    max_kill_after_s: float = 25.0,
    stall_after_s: float = 90.0,
    drain_timeout_s: float = 600.0,
) -> StressReport:
    """Publish ``events`` in ``cycles`` chunks; per cycle start a worker, SIGKILL it after a random
    delay; then start a last worker and wait until every partition is committed to its end.

    A partition whose committed offset stays behind its end without moving for ``stall_after_s``
    is a stall: it is recorded in the report (with the worker's /readyz answer) and the wait ends.
    """
    rng = random.Random(seed)
    report = StressReport()
    lines = [line.rstrip(b"\n") for line in events.read_bytes().splitlines() if line.strip()]
    chunk = -(-len(lines) // (cycles + 1))  # the last chunk is for the last worker alone
    group = app_id(settings)
    topic = settings.topic("events")
    for cycle in range(cycles):
        publish_chunk(producer, topic, lines[cycle * chunk : (cycle + 1) * chunk])
        cycle_settings = settings.model_copy(update={"worker_web_port": free_port()})
        worker = start_worker(cycle_settings, f"worker-{cycle}")
        delay = rng.uniform(0.5, max_kill_after_s)
        time.sleep(delay)
        worker.kill()  # SIGKILL: no commit, no flush, no LeaveGroup
        report.kills_at_s.append(delay)
        report.cycles += 1
    publish_chunk(producer, topic, lines[cycles * chunk :])
    last_settings = settings.model_copy(update={"worker_web_port": free_port()})
    last = start_worker(last_settings, "worker-last")
    started = time.monotonic()
    deadline = started + drain_timeout_s
    while time.monotonic() < deadline:
        now = time.monotonic()
        for p, (committed, end) in committed_and_ends(bootstrap, group, topic, settings.topic_partitions).items():
            seen = report.progress.get(p)
            if seen is None or committed != seen.committed:
                report.progress[p] = PartitionProgress(committed, end, now)
            else:
                seen.end = end
        if all(v.committed >= v.end for v in report.progress.values()):
            report.drained_in_s = round(time.monotonic() - started, 1)
            return report
        stuck = [
            f"p{p} committed {v.committed} of {v.end} for {now - v.since:.0f} s"
            for p, v in sorted(report.progress.items())
            if v.committed < v.end and now - v.since >= stall_after_s
        ]
        if stuck:
            status, body = readyz(last_settings.worker_web_port)
            report.stalled = [*stuck, f"/readyz {status}: {body}"]
            return report
        if last.proc.poll() is not None:
            report.stalled = [f"the last worker exited with {last.proc.returncode}"]
            return report
        time.sleep(1.0)
    report.stalled = [f"not drained within {drain_timeout_s} s"]
    return report
