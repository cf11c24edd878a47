"""Topic creation against the real broker: every topic, or a chosen subset (the notifier's)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient

from schemas.errors import ConfigError
from streams.runtime.settings import Settings
from streams.runtime.topics import (
    ChangelogTopic,
    TopicNames,
    changelog_topics,
    delete_topics_under,
    ensure_changelog_topics,
    ensure_topics,
)


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


def test_changelog_topics_exist_with_their_partitions_when_the_call_returns(
    settings_factory: Callable[..., Settings],
) -> None:
    """The rules app's changelog topics are created with the app's partition count and listed in the
    broker's metadata by the time ``ensure_changelog_topics`` returns; a second call is a no-op."""
    from streams.worker.app import create_app

    settings = settings_factory()
    topics = changelog_topics(create_app(settings), settings.topic_partitions)
    ensure_changelog_topics(settings, topics)
    ensure_changelog_topics(settings, topics)
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="preempt-test-admin")
    try:
        described = {d["name"]: len(d["partitions"]) for d in admin.describe_topics([t.name for t in topics])}
    finally:
        admin.close()
    assert described == {t.name: settings.topic_partitions for t in topics}
    assert {t.name.removeprefix(settings.topic_prefix) for t in topics} == {
        "-rules-account-state-changelog",
        "-rules-partition-clock-changelog",
        "-rules-partition-progress-changelog",
    }


def test_delete_topics_under_removes_only_the_given_prefixes_topics(settings_factory: Callable[..., Settings]) -> None:
    """Every topic of the given prefix goes (count returned); another prefix's topics stay."""
    kept = settings_factory()  # this test's prefix (the session deletes it at the end)
    doomed = kept.model_copy(update={"topic_prefix": kept.topic_prefix + "x"})  # shares it as a start only
    ensure_topics(doomed)
    ensure_topics(kept, topics=TopicNames.from_settings(kept).notifier())
    expected = dict.fromkeys(TopicNames.from_settings(doomed).every(), doomed.topic_partitions)
    assert _existing(doomed, expected) == expected
    assert delete_topics_under(doomed, [doomed.topic_prefix]) == len(expected)
    assert _existing(doomed, {}) == {}
    kept_expected = dict.fromkeys(TopicNames.from_settings(kept).notifier(), kept.topic_partitions)
    assert _existing(kept, kept_expected) == kept_expected
    assert delete_topics_under(doomed, []) == 0


def test_a_replication_factor_above_the_broker_count_names_the_setting(
    settings_factory: Callable[..., Settings],
) -> None:
    """PREEMPT_TOPIC_REPLICATION=3 on a one-broker cluster is a ConfigError saying how many brokers there are
    (it was kafka-python's InvalidReplicationFactorError carrying the whole request: a traceback in the worker)."""
    settings = settings_factory(topic_replication=3)
    with pytest.raises(ConfigError) as caught:
        ensure_topics(settings)
    assert str(caught.value) == (
        f"Kafka refused to create topic {settings.topic_prefix}.events with PREEMPT_TOPIC_REPLICATION=3: the cluster "
        "has 1 broker; set PREEMPT_TOPIC_REPLICATION to at most 1"
    )
    changelog = [ChangelogTopic(f"{settings.topic_prefix}-rules-account-state-changelog", 2)]
    with pytest.raises(ConfigError, match=r"PREEMPT_TOPIC_REPLICATION=3: the cluster has 1 broker;"):
        ensure_changelog_topics(settings, changelog)
