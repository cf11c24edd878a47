"""Helpers for the pipeline integration tests: simulated history, heartbeats, publishing, backtest.

Parity needs every partition's clock to reach the same final time, so each test appends one
heartbeat event per partition at the final timestamp (accounts ``__clock-…`` chosen so that
Kafka's default partitioner puts one on each partition); the backtest reads the same file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from streams.runtime.testing import metric_sum, scrape  # the tests import them from here too
from streams.simulate.heartbeats import append_heartbeats, heartbeat_keys  # noqa: F401 (the tests import them from here)

PREEMPT = str(Path(sys.executable).parent / "preempt")


def simulate(
    out_dir: Path, days: int, accounts: int, seed: int = 7, start: str = "2026-11-01T00:00:00Z"
) -> tuple[Path, Path]:
    """Write ``preempt simulate`` history (events, accounts) into ``out_dir``; returns the two paths."""
    events, accts = out_dir / "events.jsonl", out_dir / "accounts.jsonl"
    subprocess.run(
        [
            PREEMPT,
            "simulate",
            "--days",
            str(days),
            "--accounts",
            str(accounts),
            "--seed",
            str(seed),
            "--start",
            start,
            "--output",
            str(events),
            "--accounts-output",
            str(accts),
        ],
        check=True,
        capture_output=True,
    )
    return events, accts


def publish_lines(producer: KafkaProducer, topic: str, path: Path, start: int = 0, stop: int | None = None) -> int:
    """Send lines ``[start, stop)`` of a JSONL file keyed by ``account_id``; returns how many."""
    sent = 0
    with path.open("rb") as fh:
        for index, line in enumerate(fh):
            if index < start:
                continue
            if stop is not None and index >= stop:
                break
            value = line.rstrip(b"\n")
            key = json.loads(value)["account_id"].encode()
            producer.send(topic, key=key, value=value, headers=[("content-type", b"application/json")])
            sent += 1
    producer.flush()
    return sent


def count_lines(path: Path) -> int:
    """Lines in a file."""
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


STREAM_LATENESS = 5.0
"""The allowed lateness of the workers these tests start (the settings' default)."""


def stream_final_clock(events: Path, lateness: float = STREAM_LATENESS) -> str:
    """Where an event-time-only worker that read ``events`` stands: the newest event time − lateness.

    A backtest given it as ``--until`` evaluates exactly what that worker evaluated (without it, a
    backtest evaluates the file's last seconds too, which the worker does once a later event comes).
    """
    newest = max(
        datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00")).timestamp()
        for line in events.read_bytes().splitlines()
        if line.strip()
    )
    stamp = datetime.fromtimestamp(newest - lateness, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp[:-3] + "Z"


def backtest_alert_ids(
    events: Path,
    accounts: Path | None,
    out: Path,
    rules: Path | str = "rules/packs/default",
    partitions: int | None = None,
) -> set[str]:
    """The alert ids ``preempt backtest`` (default pack unless ``rules``; one clock per partition of
    ``partitions``, as the worker keeps) writes for ``events``, up to the stream's final clock."""
    subprocess.run(
        [
            PREEMPT,
            "backtest",
            "--rules",
            str(rules),
            "--events",
            str(events),
            *([] if accounts is None else ["--accounts", str(accounts)]),
            *([] if partitions is None else ["--partitions", str(partitions)]),
            "--until",
            stream_final_clock(events),
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return {json.loads(line)["alert_id"] for line in out.read_bytes().splitlines() if line.strip()}


@dataclass(frozen=True)
class History:
    """A simulated history ready to publish, and the alert ids the backtest gives for it."""

    events: Path
    accounts: Path
    expected: set[str]


def simulated_history(
    out_dir: Path,
    partitions: int,
    days: int,
    accounts: int,
    seed: int = 7,
    start: str = "2026-11-01T00:00:00Z",
) -> History:
    """``preempt simulate`` history with one heartbeat per partition appended, and its backtest's alert ids.

    Raises ``AssertionError`` when the backtest gives no alert: a comparison with nothing to
    compare would pass whatever the worker did.
    """
    events, accts = simulate(out_dir, days=days, accounts=accounts, seed=seed, start=start)
    append_heartbeats(events, partitions)
    expected = backtest_alert_ids(events, accts, out_dir / "backtest.jsonl")
    assert expected, "the simulated history must produce alerts for the comparison to mean anything"
    return History(events, accts, expected)


def alert_ids(records: list[Any]) -> list[str]:
    """``alert_id`` of every record read from the alerts topic (duplicates kept)."""
    return [json.loads(r.value)["alert_id"] for r in records]


def wait_for_metric(port: int, prefix: str, at_least: float, timeout_s: float = 60.0) -> dict[str, float]:
    """Poll /metrics until the samples named ``prefix`` (summed over labels) reach ``at_least``.

    Returns the last scrape; bounded in time.
    """
    deadline = time.monotonic() + timeout_s
    last: dict[str, float] = {}
    while time.monotonic() < deadline:
        try:
            last = scrape(port)
        except OSError:
            last = {}
        if metric_sum(last, prefix) >= at_least:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{prefix} did not reach {at_least} within {timeout_s}s (last: {metric_sum(last, prefix)})")
