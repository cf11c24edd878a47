"""Parity: the stream worker and ``preempt backtest`` give the same alert ids for the same events."""

from __future__ import annotations

from collections import Counter
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
    publish_lines,
    simulated_history,
    wait_for_metric,
)


def test_seven_days_of_two_hundred_accounts_match_the_backtest(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """7 simulated days of 200 accounts through Kafka and one worker yield exactly the backtest's alert ids."""
    port = free_port()
    settings = settings_factory(event_time_only=True, worker_web_port=port)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    history = simulated_history(tmp_path, settings.topic_partitions, days=7, accounts=200)
    events, accounts, expected = history.events, history.accounts, history.expected

    publish_lines(producer, names.accounts, accounts)
    total = publish_lines(producer, names.events, events)
    assert total == count_lines(events)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=90)

    wait_for_metric(port, "preempt_events_total", total, timeout_s=180)
    records = consume_records(kafka_bootstrap, names.alerts, len(expected), timeout_s=60, idle_s=3.0)
    got = alert_ids(records)
    assert set(got) == expected
    assert [a for a, n in Counter(got).items() if n > 1] == []
