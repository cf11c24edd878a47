"""The dead-letter topics deleted under a running rules worker or notifier (``kafka-topics.sh --delete``), on the real
broker: the process says so on ``/readyz`` and in one ERROR line, and once the topic is back the dead letter and
the good records after it go out (streams/runtime/missing_topics.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from streams.runtime.dead_letters import REASON
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.notifier_harness import (
    CONSOLE_PER_ALERT_ROUTES,
    make_alert,
    produce_alerts,
    start_notifier,
    wait_for_records,
    write_routes,
)
from tests.integration.topology_support import (
    crate_rules,
    delete_topic,
    missing_then_back,
    publish_crates,
    ready_worker,
    wait_readyz,
)


def test_the_events_dead_letter_topic_deleted_under_a_running_worker_is_named_and_nothing_is_lost(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """events.dlq deleted, then a record that is not JSON and good events after it: /readyz 503 naming the
    topic, one ERROR line; the topic made again: ready, the dead letter with its reason, every good event's
    alert. Before, the worker retried the dead letter for ever, the good events after it waited with it, and
    /readyz said ready (the watchdog's 'partition stalled', without the topic, only after 120 s)."""
    settings = settings_factory(
        rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port(), metadata_max_age_seconds=3
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = ready_worker(process_factory, settings, "worker")
    wait_readyz(settings.worker_web_port, 200)

    delete_topic(kafka_bootstrap, names.events_dlq)
    producer.send(names.events, key=b"quay-0", value=b"not json at all")
    accounts = [f"quay-{i}" for i in range(3)]
    publish_crates(producer, names.events, accounts)
    missing_then_back(worker, settings.worker_web_port, settings, names.events_dlq)
    letters = consume_records(kafka_bootstrap, names.events_dlq, 1, timeout_s=60)
    assert [dict(r.headers)[REASON] for r in letters] == [b"invalid_json"]
    emitted = consume_records(kafka_bootstrap, names.alerts, 2 * len(accounts), timeout_s=60, idle_s=2.0)
    assert {json.loads(r.value)["account_id"] for r in emitted} == set(accounts)


def test_the_alerts_dead_letter_topic_deleted_under_a_running_notifier_is_named_and_nothing_is_lost(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """alerts.dlq deleted under a notifier, then an alert that is not JSON and good alerts after it: /readyz 503
    naming the topic within the metadata age, one ERROR line; the topic made again: ready, the dead letter
    written, every good alert delivered. Before, /readyz said ready for 120 s and then only 'dead letter not
    written', without the topic."""
    settings = settings_factory(
        notifier_web_port=free_port(),
        metadata_max_age_seconds=3,
        routes_path=write_routes(tmp_path, CONSOLE_PER_ALERT_ROUTES),
    )
    names = TopicNames.from_settings(settings)
    notifier = start_notifier(process_factory, settings)
    wait_readyz(settings.notifier_web_port, 200)

    delete_topic(kafka_bootstrap, names.alerts_dlq)
    good = [make_alert(f"berth-{i}") for i in range(3)]
    producer.send(names.alerts, key=b"berth-0", value=b"not json at all")
    produce_alerts(producer, names.alerts, *good)
    missing_then_back(notifier, settings.notifier_web_port, settings, names.alerts_dlq)
    assert len(consume_records(kafka_bootstrap, names.alerts_dlq, 1, timeout_s=60)) == 1
    delivered = wait_for_records(notifier, "alert delivered", len(good), timeout_s=60)
    assert {r["alert_id"] for r in delivered} == {a.alert_id for a in good}
