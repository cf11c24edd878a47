"""The alerts dead-letter topic deleted under a running notifier (``kafka-topics.sh --delete``), on the real broker:
the notifier says so on ``/readyz`` and in one ERROR line, and once the topic is back the dead letter and the good
alerts after it go out (streams/runtime/missing_topics.py). The rules worker's events dead-letter topic:
tests/integration/test_missing_topics.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames
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
    delete_topic,
    missing_then_back,
    wait_readyz,
)


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
    missing_then_back(notifier, settings.notifier_web_port, settings, names.alerts_dlq, kind="dead-letter ")
    assert len(consume_records(kafka_bootstrap, names.alerts_dlq, 1, timeout_s=60)) == 1
    delivered = wait_for_records(notifier, "alert delivered", len(good), timeout_s=60)
    assert {r["alert_id"] for r in delivered} == {a.alert_id for a in good}
