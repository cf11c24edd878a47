"""Alerts written in Kafka transactions (the rules worker under exactly_once): the commit marker after the
last alert takes an offset the notifier is never given. Before, an idle notifier's read position stayed one
short of the end, and after the stall time the watchdog reported the partition stalled: ERROR, gauge 1,
``/readyz`` 503 (Kubernetes took the pods out of the Service that also serves Slack's button presses)."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer

from alerts.app import app_id
from schemas.alert import Alert
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import (
    log_records,
    make_alert,
    metric_sample,
    metric_value,
    notifier_settings,
    start_notifier,
    wait_for_records,
    write_routes,
)

ROUTES = """
receivers:
  - name: console
    console_configs: [{}]
route:
  receiver: console
  group_wait: 0s
"""
STALL_S = 8.0  # the watchdog samples every 2 s
LAG_INTERVAL_S = 15.0  # the consumer-lag exporter's timer (streams/runtime/ops_web.py)


async def _publish_in_transactions(bootstrap: str, topic: str, batches: list[list[Alert]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        for batch in batches:
            async with producer.transaction():
                for alert in batch:
                    value = alert.model_dump_json().encode()
                    await producer.send(topic, key=alert.account_id.encode(), value=value, partition=0)
    finally:
        await producer.stop()


def _delivered_in_transactions(
    bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> tuple[Settings, str, ManagedProcess]:
    """A notifier under exactly_once that has delivered two transactions of two alerts each on partition 0."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        processing_guarantee="exactly_once",
        partition_stall_seconds=STALL_S,
    )
    topic = TopicNames.from_settings(settings).alerts
    notifier = start_notifier(process_factory, settings)
    batches = [[make_alert(f"tx{t}-{i}") for i in range(2)] for t in range(2)]
    asyncio.run(_publish_in_transactions(bootstrap, topic, batches))
    wait_for_records(notifier, "alert delivered", 4, timeout_s=60)
    return settings, topic, notifier


def test_an_idle_notifier_after_transactional_alerts_stays_ready(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """Two transactions of alerts are delivered, then nothing is written: after more than the stall time the
    notifier reports no stall and ``/readyz`` answers 200."""
    settings, topic, notifier = _delivered_in_transactions(kafka_bootstrap, settings_factory, process_factory, tmp_path)

    time.sleep(STALL_S * 2)  # idle for longer than the stall time (and the watchdog's sampling)
    assert metric_value(settings, "preempt_partition_stalls_total", topic=topic) == 0
    assert not log_records(notifier, "partition stalled: assigned, with alerts not read, no progress")
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.notifier_web_port}/readyz", timeout=5) as resp:
        assert resp.status == 200
    assert notifier.proc.poll() is None


def test_a_caught_up_notifier_reports_no_lag_after_transactional_alerts(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """Once every alert written in transactions is delivered, ``preempt_consumer_lag`` for the alerts topic
    reads 0: the commit marker after the last alert is no record to read. Before, it stayed at 1 for good."""
    settings, topic, _ = _delivered_in_transactions(kafka_bootstrap, settings_factory, process_factory, tmp_path)
    delivered_at = time.monotonic()

    # Readings are taken once the exporter has run since the delivery (a reading from before the alerts
    # were written said 0 too), until the watchdog has read the tail and the exporter run again.
    readings: list[float | None] = []
    while time.monotonic() < delivered_at + LAG_INTERVAL_S * 3:
        time.sleep(1.0)
        if time.monotonic() < delivered_at + LAG_INTERVAL_S + 1:
            continue
        readings.append(metric_sample(settings, "preempt_consumer_lag", app=app_id(settings), topic=topic))
        if readings[-1] == 0:
            break
    assert readings[-1] == 0, f"lag readings after the delivery: {readings}"
    assert metric_value(settings, "preempt_notifier_alerts_held") == 0
