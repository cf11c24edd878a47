"""Topic creation against the real broker: every topic, or a chosen subset (the notifier's)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient

from schemas.errors import ConfigError
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames, ensure_topics


def _existing(settings: Settings, expected: dict[str, int], timeout_s: float = 30.0) -> dict[str, int]:
    """This test's topics and partition counts, once they equal ``expected`` (metadata lags creation)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="preempt-test-admin")
    prefix = settings.topic_prefix + "."
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            mine = [t for t in admin.list_topics() if t.startswith(prefix)]
            found = {d["name"]: len(d["partitions"]) for d in admin.describe_topics(mine)} if mine else {}
            if found == expected or time.monotonic() > deadline:
                return found
            time.sleep(0.2)
    finally:
        admin.close()


def test_a_subset_creates_only_those_topics_and_is_idempotent(settings_factory: Callable[..., Settings]) -> None:
    """The notifier's subset creates alerts, alerts.dlq and feedback, nothing else; a second call is a no-op."""
    settings = settings_factory()
    names = TopicNames.from_settings(settings)
    ensure_topics(settings, topics=names.notifier(), client_id="preempt-notify-admin")
    ensure_topics(settings, topics=names.notifier(), client_id="preempt-notify-admin")
    expected = dict.fromkeys(names.notifier(), settings.topic_partitions)
    assert _existing(settings, expected) == expected


def test_every_topic_by_default_and_a_wrong_events_partition_count_is_refused(
    settings_factory: Callable[..., Settings],
) -> None:
    """By default all seven topics exist afterwards; the events topic's count must match the setting."""
    settings = settings_factory()
    names = TopicNames.from_settings(settings)
    ensure_topics(settings)
    expected = dict.fromkeys(names.every(), settings.topic_partitions)
    assert _existing(settings, expected) == expected
    other = settings.model_copy(update={"topic_partitions": settings.topic_partitions + 2})
    ensure_topics(other, topics=names.notifier())  # the events topic is not among them: not checked
    with pytest.raises(ConfigError, match="PREEMPT_TOPIC_PARTITIONS"):
        ensure_topics(other)
