"""A full disk under the rules worker's RocksDB store: one CRITICAL line and exit 1, no event
dead-lettered, and once space is back the restart gives exactly the backtest's alerts.

The store lives on a small tmpfs mounted for the test (root is needed to mount: the test fails, it
does not skip, when the mount is refused) and the disk is filled with a file while the worker runs.
"""

from __future__ import annotations

import errno
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import (
    alert_ids,
    count_lines,
    publish_lines,
    simulated_history,
    wait_for_metric,
)

STOP_LINE = "state store disk full; stopping"


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for this test (unmounted at teardown)."""
    mount = tmp_path / "volume"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(
            f"this test mounts a tmpfs to fill it and needs root (mount failed: {result.stderr.strip()})", pytrace=False
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def fill(volume: Path) -> Path:
    """Write a file on ``volume`` until the disk is full; its path (delete it to free the space)."""
    filler = volume / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    with filler.open("ab", buffering=0) as fh:  # the last bytes the chunk did not fit in
        for _ in range(65536):
            try:
                fh.write(b"\0")
            except OSError:
                break
    return filler


def wait_exit(proc: ManagedProcess, timeout_s: float) -> int:
    """The process's exit status; fails with its log when it still runs after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = proc.proc.poll()
        if code is not None:
            return code
        time.sleep(0.2)
    pytest.fail(f"the worker still runs {timeout_s:g} s after its disk filled:\n{proc.log_text()[-4000:]}")


def test_a_full_store_disk_stops_the_worker_with_one_line_and_loses_no_event(
    small_volume: Path,
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """The worker whose RocksDB disk fills mid-stream exits 1 with one CRITICAL line naming the data dir
    and the remedy, no traceback and no dead letter; after space is freed the restart's alerts are the
    backtest's."""
    settings = settings_factory(
        event_time_only=True, store="rocksdb://", data_dir=small_volume / "data", worker_web_port=free_port()
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    history = simulated_history(tmp_path, settings.topic_partitions, days=3, accounts=60, seed=11)
    total = count_lines(history.events)
    half = total // 2
    publish_lines(producer, names.accounts, history.accounts)
    publish_lines(producer, names.events, history.events, stop=half)

    first = process_factory(["preempt", "worker"], settings, name="worker-1")
    wait_for_metric(settings.worker_web_port, "preempt_events_total", half, timeout_s=120)
    filler = fill(small_volume)
    publish_lines(producer, names.events, history.events, start=half)

    assert wait_exit(first, timeout_s=90) == 1
    log = first.log_text()
    stops = [json.loads(line) for line in log.splitlines() if STOP_LINE in line]
    assert len(stops) == 1, log[-4000:]
    assert stops[0]["level"] == "critical"
    assert stops[0]["data_dir"] == str(small_volume / "data")
    assert "No space left on device" in stops[0]["error"]
    assert "free space" in stops[0]["remedy"]
    assert "Traceback" not in log, log[-4000:]
    assert consume_records(kafka_bootstrap, names.events_dlq, 1, timeout_s=3) == []

    filler.unlink()
    again = settings.model_copy(update={"worker_web_port": free_port()})
    second = process_factory(["preempt", "worker"], again, name="worker-2")
    second.wait_for_log("rules worker ready", timeout_s=90)
    records = consume_records(kafka_bootstrap, names.alerts, len(history.expected), timeout_s=120, idle_s=3.0)
    assert set(alert_ids(records)) == history.expected
    assert consume_records(kafka_bootstrap, names.events_dlq, 1, timeout_s=3) == []
    assert STOP_LINE not in second.log_text()
