"""Heartbeat events: one per partition, so every partition's event-time clock reaches a given time.

A replayed history moves each partition's clock only as far as that partition's newest event; the
backtest's single clock goes as far as the file's newest event. Appending one ``Heartbeat`` event
per partition at the file's last timestamp (accounts ``__clock-…`` chosen so that Kafka's default
partitioner puts one on each partition) makes the stream and the backtest end at the same time.
Used by the pipeline integration tests and by ``make bench``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from schemas.jsonl import read_file
from streams.worker.processor import partition_for_key


def heartbeat_keys(partitions: int) -> list[str]:
    """One ``__clock-N`` account id per partition (by Kafka's default partitioner)."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        key = f"__clock-{n}"
        found.setdefault(partition_for_key(key.encode(), partitions), key)
        n += 1
    return [found[p] for p in range(partitions)]


def append_heartbeats(events: Path, partitions: int) -> float:
    """Append one heartbeat per partition at the file's last timestamp; returns that time."""
    last = 0.0
    for line in read_file(events):
        ts = json.loads(line.raw)["timestamp"]
        last = max(last, datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
    stamp = datetime.fromtimestamp(last, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    with events.open("ab") as fh:
        for key in heartbeat_keys(partitions):
            beat = {"event_id": f"heartbeat-{key}", "event": "Heartbeat", "account_id": key, "timestamp": stamp}
            fh.write(json.dumps(beat).encode() + b"\n")
    return last
