"""Topic names and creation.

The local broker runs with ``auto.create.topics.enable=false`` because a topic auto-created by a
producer gets one partition, which breaks Faust tables (source and changelog partition counts
must match). So every process creates the topics it uses, with the configured partition count,
before producing or consuming.
"""

from __future__ import annotations

import contextlib
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


def _check_partitions(admin: KafkaAdminClient, topic: str, wanted: int) -> None:
    (description,) = admin.describe_topics([topic])
    have = len(description.get("partitions") or ())
    if have and have != wanted:
        raise ConfigError(
            f"topic {topic} has {have} partitions but PREEMPT_TOPIC_PARTITIONS is {wanted}: set "
            f"PREEMPT_TOPIC_PARTITIONS={have} for this deployment (the count is fixed when the topics are "
            "created; docs/pipeline.md, Sizing partitions and workers)"
        )


def ensure_topics(settings: Settings, names: TopicNames | None = None, timeout_s: float = 30.0) -> None:
    """Create every Preempt topic that does not exist yet (idempotent).

    Raises ``ConfigError`` when the events topic already exists with another partition count than
    ``PREEMPT_TOPIC_PARTITIONS`` (e.g. a deployment created with the old default of 4): Faust would
    create the tables' changelogs with the setting's count, which breaks co-partitioning.
    """
    names = names or TopicNames.from_settings(settings)
    check_access(settings)  # a refused login is one clear error now, not a 30 s bootstrap timeout
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="preempt-admin",
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
            for topic in (
                names.events,
                names.events_dlq,
                names.accounts,
                names.account_updates,
                names.alerts,
                names.alerts_dlq,
                names.feedback,
            )
            if topic not in existing
        ]
        if wanted:
            # Another process may win the race; the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
        if names.events in existing:
            _check_partitions(admin, names.events, settings.topic_partitions)
    finally:
        admin.close()
