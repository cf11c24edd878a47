"""Scaling out: a second notifier joining mid-group takes over partitions without losing or repeating alerts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaProducer

from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import (
    log_records,
    make_alert,
    notifier_settings,
    produce_alerts,
    start_notifier,
    wait_for_records,
    write_routes,
)

ROUTES = """
receivers:
  - name: owner
    slack_configs:
      - channel: "{{ account.owner.slack }}"
route:
  receiver: owner
  group_by: [account_id]
  group_wait: 10s
"""


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_second_notifier_takes_over_pending_alerts_exactly_once(
    store: str,
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Alerts pending (in group_wait, then retried) when a rebalance moves their partition are delivered
    by exactly one of the two notifiers: the first keeps the partitions it retains, the second re-reads
    the rest; also on RocksDB with both on one machine and one PREEMPT_DATA_DIR (the second crashed on
    RocksDB's lock of a delivery-log partition both opened when their folders were one)."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        notifier_session_timeout_seconds=6,
        store=store,
    )
    first = start_notifier(process_factory, settings, name="notifier-1")
    # Slack refuses (503, retryable) until the second notifier has joined, so the alerts are still
    # pending whenever the rebalance comes: a loaded machine took 3-6.5 s of the 10 s group_wait to
    # start the second notifier, after which the first would have delivered them all itself.
    for i in range(20):
        slack_server.always(f"C-{i}", Reply.server_error(503))
    alerts = [make_alert(f"acct-{i}", account={"name": f"A{i}", "owner": {"slack": f"C-{i}"}}) for i in range(20)]
    produce_alerts(producer, topics.alerts, *alerts)
    second = process_factory(
        ["preempt", "notifier"], settings.model_copy(update={"notifier_web_port": free_port()}), name="notifier-2"
    )
    second.wait_for_log("notifier ready", timeout_s=90)
    for i in range(20):
        slack_server.always(f"C-{i}", Reply.ok())

    slack_server.wait_for(20, timeout_s=60)
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and len(log_records(first, "alert delivered") + log_records(second, "alert delivered")) < 20
    ):
        time.sleep(0.1)
    per_channel = Counter(r.target for r in slack_server.delivered())
    assert per_channel == Counter({f"C-{i}": 1 for i in range(20)})
    handed = wait_for_records(first, "pending deliveries handed over on rebalance", 1)
    assert handed[0]["dropped"] > 0


TWO_TARGETS = """
receivers:
  - name: owner
    slack_configs:
      - channel: "{{ account.owner.slack }}"
      - channel: C-HOLD
route:
  receiver: owner
  group_by: [account_id]
  group_wait: 0s
"""


def _misplacing_key(account_id: str, partitions: int) -> bytes:
    """A key (a third-party producer's) whose partition is not ``account_id``'s."""
    from aiokafka.partitioner import DefaultPartitioner

    parts = list(range(partitions))
    home = DefaultPartitioner()(account_id.encode(), parts, parts)
    for n in range(100):
        key = f"crm-export-{account_id}-{n}".encode()
        if DefaultPartitioner()(key, parts, parts) != home:
            return key
    raise AssertionError("no key found")


def test_alerts_keyed_by_a_third_party_are_delivered_once_per_target_across_a_rebalance(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Alerts whose Kafka key is not their account_id (a third-party producer): each is produced again keyed by
    account_id, so its delivery records live on its own partition. Delivered to the owner at once while the
    second channel refuses (503), they are still pending when a second notifier joins and partitions move:
    every owner gets each alert once, the second channel gets each once after it recovers."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, TWO_TARGETS),
        slack_api_url=slack_server.api_url,
        notifier_session_timeout_seconds=6,
    )
    slack_server.always("C-HOLD", Reply.server_error(503))
    first = start_notifier(process_factory, settings, name="notifier-1")
    alerts = [make_alert(f"acct-{i}", account={"name": f"A{i}", "owner": {"slack": f"C-{i}"}}) for i in range(8)]
    for alert in alerts:
        key = _misplacing_key(alert.account_id, settings.topic_partitions)
        producer.send(topics.alerts, key=key, value=alert.model_dump_json().encode())
    producer.flush()
    for i in range(8):
        slack_server.wait_for(1, target=f"C-{i}", timeout_s=60)
    rekeyed = wait_for_records(
        first, "alert not keyed by its account_id: produced again keyed by it, delivered from there", 8
    )
    assert {r["alert_id"] for r in rekeyed} == {a.alert_id for a in alerts}

    second = process_factory(
        ["preempt", "notifier"], settings.model_copy(update={"notifier_web_port": free_port()}), name="notifier-2"
    )
    second.wait_for_log("notifier ready", timeout_s=90)
    time.sleep(3.0)  # the partitions that moved are re-read by their new owner
    slack_server.always("C-HOLD", Reply.ok())
    slack_server.wait_for(8, target="C-HOLD", timeout_s=60)
    time.sleep(3.0)  # a second message to an owner or to C-HOLD would be out by now

    per_channel = Counter(r.target for r in slack_server.delivered())
    assert per_channel == Counter({**{f"C-{i}": 1 for i in range(8)}, "C-HOLD": 8})
