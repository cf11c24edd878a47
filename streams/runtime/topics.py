"""Topic names and creation.

The local broker runs with ``auto.create.topics.enable=false`` because a topic auto-created by a
producer gets one partition, which breaks Faust tables (source and changelog partition counts
must match). So every process creates the topics it uses, with the configured partition count,
before producing or consuming.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from schemas.errors import ConfigError
from streams.runtime.kafka_clients import check_access, kafka_python_config
from streams.runtime.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The topic names of one deployment (prefix applied)."""

    events: str
    events_dlq: str
    accounts: str
    account_updates: str
    alerts: str
    alerts_dlq: str
    feedback: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicNames:
        """Names for ``settings.topic_prefix`` (default ``preempt``)."""
        return cls(
            events=settings.topic("events"),
            events_dlq=settings.topic("events.dlq"),
            accounts=settings.topic("accounts"),
            # partial account records from ingest's group calls, merged into `accounts` (streams/ingest)
            account_updates=settings.topic("accounts.updates"),
            alerts=settings.topic("alerts"),
            alerts_dlq=settings.topic("alerts.dlq"),
            feedback=settings.topic("feedback"),
        )

    def compacted(self) -> set[str]:
        """Topics that keep the latest record per key."""
        return {self.accounts}

    def every(self) -> tuple[str, ...]:
        """Every topic of the deployment (what the rules worker, ingest and the tools create)."""
        return (
            self.events,
            self.events_dlq,
            self.accounts,
            self.account_updates,
            self.alerts,
            self.alerts_dlq,
            self.feedback,
        )

    def notifier(self) -> tuple[str, ...]:
        """The topics the notifier reads and writes: alerts, the alerts dead-letter topic, feedback."""
        return (self.alerts, self.alerts_dlq, self.feedback)


def _check_partitions(admin: KafkaAdminClient, topic: str, wanted: int) -> None:
    (description,) = admin.describe_topics([topic])
    have = len(description.get("partitions") or ())
    if have and have != wanted:
        raise ConfigError(
            f"topic {topic} has {have} partitions but PREEMPT_TOPIC_PARTITIONS is {wanted}: set "
            f"PREEMPT_TOPIC_PARTITIONS={have} for this deployment (the count is fixed when the topics are "
            "created; docs/pipeline.md, Sizing partitions and workers)"
        )


def ensure_topics(
    settings: Settings,
    names: TopicNames | None = None,
    timeout_s: float = 30.0,
    *,
    topics: Iterable[str] | None = None,
    client_id: str = "preempt-admin",
) -> None:
    """Create the Preempt topics that do not exist yet (idempotent): ``topics``, by default every one.

    ``topics`` picks some of the deployment's topics (the notifier passes ``names.notifier()``);
    each is created with the configured partition count and replication, compacted when
    ``names.compacted()`` says so. Raises ``ConfigError`` when the events topic is among them and
    already exists with another partition count than ``PREEMPT_TOPIC_PARTITIONS`` (e.g. a
    deployment created with the old default of 4): Faust would create the tables' changelogs with
    the setting's count, which breaks co-partitioning.
    """
    names = names or TopicNames.from_settings(settings)
    chosen = names.every() if topics is None else tuple(topics)
    check_access(settings)  # a refused login is one clear error now, not a 30 s bootstrap timeout
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        request_timeout_ms=int(timeout_s * 1000),
        **kafka_python_config(settings),
    )
    try:
        existing = set(admin.list_topics())
        compacted = names.compacted()
        wanted = [
            NewTopic(
                name=topic,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs={"cleanup.policy": "compact"} if topic in compacted else {},
            )
            for topic in chosen
            if topic not in existing
        ]
        if wanted:
            # Another process may win the race; the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
        if names.events in chosen and names.events in existing:
            _check_partitions(admin, names.events, settings.topic_partitions)
    finally:
        admin.close()
