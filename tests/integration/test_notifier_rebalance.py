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
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import (
    account_per_partition,
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


def test_a_probe_in_flight_when_its_partition_moves_is_not_retried_by_the_old_owner(
    settings_factory: Callable[..., Settings],
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Four revoked webhooks, one per partition, each with two alerts: each webhook's breaker is probed by one
    alert while the other waits. The webhooks then hang, so every probe is in flight (up to Slack's 10 s
    timeout) when a second notifier joins and two partitions move to it. The old owner drops the probes of the
    partitions that moved when their attempts come back (before: they were queued again and kept probing, and
    once the webhooks were fixed the old owner sent their alerts too, a second time), and each alert reaches
    its webhook once."""
    hooks = [f"H-{p}" for p in range(4)]
    accounts = account_per_partition(4)
    receivers = "\n".join(
        f"  - {{name: hook-{p}, slack_configs: [{{webhook_url: '{slack_server.webhook_url(hooks[p])}'}}]}}"
        for p in range(4)
    )
    routes = "\n".join(f"    - {{matchers: ['account_id=\"{accounts[p]}\"'], receiver: hook-{p}}}" for p in range(4))
    text = f"receivers:\n{receivers}\nroute:\n  receiver: hook-0\n  group_by: [alert_id]\n  group_wait: 0s\n"
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, text + f"  routes:\n{routes}\n"),
        notifier_session_timeout_seconds=6,
        delivery_retry_initial_seconds=0.05,
        delivery_retry_max_seconds=0.1,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    for hook in hooks:
        slack_server.always(hook, Reply.slack_error("invalid_token"))
    first = start_notifier(process_factory, settings, name="notifier-1")
    alerts = [make_alert(accounts[p], title=f"signal {p}.{i}") for p in range(4) for i in range(2)]
    produce_alerts(producer, names.alerts, *alerts)
    wait_for_records(first, "delivery breaker open: one delivery at a time probes the destination, the others wait", 4)
    for hook in hooks:
        slack_server.always(hook, Reply.hang())  # each probe's next attempt hangs until Slack's timeout
    time.sleep(1.0)

    second = process_factory(
        ["preempt", "notifier"], settings.model_copy(update={"notifier_web_port": free_port()}), name="notifier-2"
    )
    second.wait_for_log("notifier ready", timeout_s=90)
    [handed] = wait_for_records(first, "pending deliveries handed over on rebalance", 1)
    moved = sorted(set(range(4)) - set(handed["kept_partitions"]))
    assert moved, handed
    for hook in hooks:
        slack_server.always(hook, Reply.ok())

    deadline = time.monotonic() + 60
    while len([r for r in slack_server.delivered() if r.reply.delay == 0]) < 8 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(15.0)  # the probes in flight come back after Slack's 10 s timeout; a second copy would be out by now
    answered = [r for r in slack_server.delivered() if r.reply.delay == 0]  # not the hung requests
    per_hook = Counter(r.target for r in answered)
    assert per_hook == Counter(dict.fromkeys(hooks, 2)), (moved, per_hook)
    titles = Counter(r.body.get("text", "") for r in answered)
    assert max(titles.values()) == 1, titles
    dropped = log_records(first, "delivery dropped: its alerts were handed over on rebalance while it was in flight")
    assert {r["target"].split("/")[0] for r in dropped} == {f"hook-{p}" for p in moved}
    assert log_records(first, "alert dead-lettered") + log_records(second, "alert dead-lettered") == []
