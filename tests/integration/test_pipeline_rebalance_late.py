"""A rebalance during an event-time replay: the records the new owner reads again are no late events."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import (
    alert_ids,
    count_lines,
    metric_sum,
    publish_lines,
    scrape,
    simulated_history,
    wait_for_metric,
)


def test_partitions_moved_mid_replay_count_no_late_event_the_backtest_does_not(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Worker 1 replays a backlog; worker 2 joins, is SIGKILLed and worker 1 takes everything back:
    each move has a worker read records the previous owner had evaluated (from the group's committed
    offset), whose ids are older than the dedup horizon behind the restored clock. The backtest of the
    same events has 0 late events, and so do the workers: ``preempt_late_events_total`` stays 0 (the
    records read again are counted as duplicates), and the alerts are the backtest's."""
    # A dedup horizon of 1 h (24 h by default) makes the ids of a small replay's records read again forgotten;
    # the shortest session timeout moves the SIGKILLed worker's partitions back within seconds.
    settings = settings_factory(
        event_time_only=True,
        worker_web_port=free_port(),
        dedup_horizon_seconds=3600.0,
        worker_session_timeout_seconds=6,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    history = simulated_history(tmp_path, settings.topic_partitions, days=2, accounts=40, seed=13)
    publish_lines(producer, names.accounts, history.accounts)
    total = count_lines(history.events)
    first = process_factory(["preempt", "worker"], settings, name="worker-1")
    first.wait_for_log("rules worker ready", timeout_s=90)
    # The replay arrives over ~20 s, so that the partitions move while it is read.
    sender = threading.Thread(target=_publish_paced, args=(producer, names.events, history.events, total / 20))
    sender.start()
    wait_for_metric(settings.worker_web_port, "preempt_events_total", total * 0.2, timeout_s=120)
    second_settings = settings.model_copy(update={"worker_web_port": free_port()})
    second = process_factory(["preempt", "worker"], second_settings, name="worker-2")
    second.wait_for_log("rules worker ready", timeout_s=90)
    time.sleep(1.0)  # let worker 2 evaluate (without committing) part of what it was given
    second.kill(signal.SIGKILL)
    sender.join(timeout=120)

    records = consume_records(kafka_bootstrap, names.alerts, len(history.expected), timeout_s=180, idle_s=5.0)
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 1, timeout_s=5)
    late = metric_sum(scrape(settings.worker_web_port), "preempt_late_events_total")
    late_lines = first.log_text().count('"late event ignored"') + second.log_text().count('"late event ignored"')
    again = [line[:300] for line in first.log_text().splitlines() if "records read again" in line]
    sys.stderr.write(f"\n[rebalance-late] {total} events, late {late}, {late_lines} WARN; read again: {again}\n")
    assert set(alert_ids(records)) == history.expected
    assert late == 0
    assert late_lines == 0


def _publish_paced(producer: KafkaProducer, topic: str, path: Path, rate: float) -> None:
    started = time.monotonic()
    for index, line in enumerate(path.read_bytes().splitlines()):
        key = json.loads(line)["account_id"].encode()
        producer.send(topic, key=key, value=line, headers=[("content-type", b"application/json")])
        ahead = started + index / rate - time.monotonic()
        if ahead > 0.05:
            time.sleep(ahead)
    producer.flush()
