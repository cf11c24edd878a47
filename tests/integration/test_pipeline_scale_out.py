"""Scale-out: a second worker joining mid-stream splits the partitions and nothing is lost or re-ided."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
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
    scrape,
    simulated_history,
    wait_for_metric,
)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_two_workers_with_a_join_mid_stream_give_the_single_worker_alert_set(
    store: str,
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Worker 2 joins while worker 1 is mid-stream; together they emit exactly the backtest's alert ids,
    also with RocksDB (the production store) and both workers on one machine with the same settings
    but their web ports (the second crashed on RocksDB's lock when they shared a folder)."""
    settings = settings_factory(event_time_only=True, worker_web_port=free_port(), store=store)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    history = simulated_history(tmp_path, settings.topic_partitions, days=3, accounts=60, seed=13)
    events, accounts, expected = history.events, history.accounts, history.expected
    publish_lines(producer, names.accounts, accounts)
    half = count_lines(events) // 2
    publish_lines(producer, names.events, events, stop=half)

    process_factory(["preempt", "worker"], settings, name="worker-1")
    wait_for_metric(settings.worker_web_port, "preempt_events_total", half * 0.5, timeout_s=120)
    second_settings = settings.model_copy(update={"worker_web_port": free_port()})
    second = process_factory(["preempt", "worker"], second_settings, name="worker-2")
    second.wait_for_log("rules worker ready", timeout_s=90)
    publish_lines(producer, names.events, events, start=half)

    records = consume_records(kafka_bootstrap, names.alerts, len(expected), timeout_s=120, idle_s=3.0)
    got = alert_ids(records)
    duplicates = sum(n - 1 for n in Counter(got).values())
    second_share = scrape(second_settings.worker_web_port).get('preempt_events_total{outcome="accepted"}', 0.0)
    sys.stderr.write(f"\n[scale-out] {len(got)} alert records, {duplicates} duplicates; worker 2 took {second_share}\n")
    assert set(got) == expected
    assert second_share > 0, "the joining worker must have been given partitions to process"
