"""A full disk under the RocksDB store of the rules worker or the notifier: one CRITICAL line and exit 1,
nothing dead-lettered, and once space is back the restart completes the work (the backtest's alerts;
every alert delivered).

The store lives on a small tmpfs mounted for the test (root is needed to mount: the test fails, it
does not skip, when the mount is refused) and the disk is filled with a file while the worker runs.
"""

from __future__ import annotations

import errno
import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from alerts.testing.slack_server import FakeSlack, slack_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.notifier_harness import (
    make_alert,
    notifier_settings,
    produce_alerts,
    start_notifier,
    wait_for_records,
    write_routes,
)
from tests.integration.pipeline_support import (
    alert_ids,
    count_lines,
    publish_lines,
    simulated_history,
    wait_for_metric,
)

STOP_LINE = "state store disk full; stopping"
ROUTES = """
receivers:
  - name: owner
    slack_configs:
      - channel: "{{ account.owner.slack }}"
route:
  receiver: owner
  group_by: ["..."]
  group_wait: 0s
"""


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


def stopped_on_full_disk(proc: ManagedProcess, data_dir: Path, timeout_s: float = 90.0) -> None:
    """``proc`` exits 1 within ``timeout_s`` with exactly one CRITICAL stop line (naming ``data_dir``, the
    RocksDB error and the remedy) and no traceback; fails with its log otherwise."""
    deadline = time.monotonic() + timeout_s
    while proc.proc.poll() is None:
        if time.monotonic() > deadline:
            pytest.fail(f"still running {timeout_s:g} s after its disk filled:\n{proc.log_text()[-4000:]}")
        time.sleep(0.2)
    log = proc.log_text()
    assert proc.proc.returncode == 1, log[-4000:]
    stops = [json.loads(line) for line in log.splitlines() if STOP_LINE in line]
    assert len(stops) == 1, log[-4000:]
    assert stops[0]["level"] == "critical"
    assert stops[0]["data_dir"] == str(data_dir)
    assert "No space left on device" in stops[0]["error"]
    assert "free space" in stops[0]["remedy"]
    assert "Traceback" not in log, log[-4000:]


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

    stopped_on_full_disk(first, small_volume / "data")
    assert consume_records(kafka_bootstrap, names.events_dlq, 1, timeout_s=3) == []

    filler.unlink()
    again = settings.model_copy(update={"worker_web_port": free_port()})
    second = process_factory(["preempt", "worker"], again, name="worker-2")
    second.wait_for_log("rules worker ready", timeout_s=90)
    records = consume_records(kafka_bootstrap, names.alerts, len(history.expected), timeout_s=120, idle_s=3.0)
    assert set(alert_ids(records)) == history.expected
    assert consume_records(kafka_bootstrap, names.events_dlq, 1, timeout_s=3) == []
    assert STOP_LINE not in second.log_text()


def test_a_full_delivery_log_disk_stops_the_notifier_with_one_line_and_loses_no_alert(
    small_volume: Path,
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The notifier whose delivery log cannot be written exits 1 with the one CRITICAL line and no dead letter;
    after space is freed the restart delivers every alert the first one did not (each reaches Slack)."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        store="rocksdb://",
        data_dir=small_volume / "data",
    )
    alerts = [make_alert(f"acct-{i}", account={"name": f"A{i}", "owner": {"slack": f"C-{i}"}}) for i in range(25)]
    first = start_notifier(process_factory, settings, name="notifier-1")
    produce_alerts(producer, topics.alerts, *alerts[:5])
    wait_for_records(first, "alert delivered", 5)
    filler = fill(small_volume)
    produce_alerts(producer, topics.alerts, *alerts[5:])

    stopped_on_full_disk(first, small_volume / "data")
    assert consume_records(kafka_bootstrap, topics.alerts_dlq, 1, timeout_s=3) == []

    filler.unlink()
    second = start_notifier(process_factory, settings, name="notifier-2")
    channels = {f"C-{i}" for i in range(len(alerts))}  # one channel per alert
    deadline = time.monotonic() + 60
    while {r.target for r in slack_server.delivered()} != channels and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {r.target for r in slack_server.delivered()} == channels, second.log_text()[-4000:]
    # An alert sent in the moment its delivery record failed may go out once more (at-least-once): no more.
    assert max(Counter(r.target for r in slack_server.delivered()).values()) <= 2
    assert consume_records(kafka_bootstrap, topics.alerts_dlq, 1, timeout_s=3) == []
    assert STOP_LINE not in second.log_text()
