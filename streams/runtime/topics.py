"""Topic names and creation.

The local broker runs with ``auto.create.topics.enable=false`` because a topic auto-created by a
producer gets one partition, which breaks Faust tables (source and changelog partition counts
must match). So every process creates the topics it uses, with the configured partition count,
before producing or consuming — the Faust apps their tables' changelog topics too
(:func:`ensure_changelog_topics`), before the Faust worker starts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import InvalidReplicationFactorError, KafkaError, TopicAlreadyExistsError

from schemas.errors import ConfigError
from schemas.formatting import plural
from streams.runtime.copartitioning import PartitionCountError, copartitioning_problem
from streams.runtime.kafka_clients import check_access, kafka_python_bootstrap, kafka_python_config
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings

log = get_logger(__name__)


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


def rules_app_id(settings: Settings) -> str:
    """The rules worker's Faust app id: its consumer group and the prefix of its changelog topics
    (``<topic_prefix>-rules``, ``preempt-rules`` by default)."""
    return f"{settings.topic_prefix}-rules"


def admin_client(settings: Settings, client_id: str, timeout_s: float) -> KafkaAdminClient:
    """An admin client for ``settings``' cluster (security included); the caller closes it."""
    return KafkaAdminClient(
        bootstrap_servers=kafka_python_bootstrap(settings),
        client_id=client_id,
        request_timeout_ms=int(timeout_s * 1000),
        **kafka_python_config(settings),
    )


def delete_topics_under(settings: Settings, prefixes: Iterable[str], timeout_s: float = 60.0) -> int:
    """Delete every topic named ``<prefix>.…`` or ``<prefix>-…`` (Faust's changelogs) for
    ``prefixes`` on ``settings``' cluster, 100 per request; returns how many were deleted.

    For throwaway deployments such as ``make bench``'s: a development broker that keeps every
    run's topics reaches its open-file limit (each partition holds open files) and stops.
    """
    starts = tuple(f"{prefix}{sep}" for prefix in prefixes for sep in (".", "-"))
    if not starts:
        return 0
    admin = admin_client(settings, "preempt-topics-delete", timeout_s)
    try:
        doomed = sorted(t for t in admin.list_topics() if t.startswith(starts))
        for i in range(0, len(doomed), 100):
            admin.delete_topics(doomed[i : i + 100], timeout_ms=int(timeout_s * 1000))
        return len(doomed)
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient, names: Iterable[str]) -> dict[str, int]:
    """Partition count of each of ``names`` that exists (a topic being deleted may list none)."""
    wanted = list(names)
    if not wanted:
        return {}
    described = admin.describe_topics(wanted)
    return {d["name"]: len(d["partitions"]) for d in described if d.get("partitions")}


def _check_partitions(admin: KafkaAdminClient, topic: str, settings: Settings, existing: set[str]) -> None:
    """Refuse an events topic whose partition count is not the setting's, nor the rules worker's state's
    (its changelog topics, ``<prefix>-rules-…-changelog``: partitions added to the topic later)."""
    state_prefix = f"{rules_app_id(settings)}-"
    changelogs = [t for t in existing if t.startswith(state_prefix) and t.endswith("-changelog")]
    _check_copartitioned(admin, topic, changelogs, settings)


def _check_copartitioned(admin: KafkaAdminClient, source: str, changelogs: Iterable[str], settings: Settings) -> None:
    """``PartitionCountError`` when ``source``'s partition count is not its ``changelogs``' or the setting's."""
    counts = _partition_counts(admin, [source, *changelogs])
    have = counts.pop(source, 0)
    problem = copartitioning_problem(source, have, counts, settings.topic_partitions) if have else None
    if problem:
        raise PartitionCountError(problem)


def _cleanup_policies(admin: KafkaAdminClient, names: list[str]) -> tuple[dict[str, tuple[str, str | None]], list[str]]:
    """Each topic's ``cleanup.policy`` (with `` (the broker's default)`` when not set on it) and ``retention.ms``;
    and the topics whose configs the broker did not show.

    Every config is asked for, defaults included: a topic whose configs the broker shows always has
    cleanup.policy. One it does not show (kafka-python drops the per-topic error: no DESCRIBE_CONFIGS ACL, as a
    managed Kafka's usual grants of DESCRIBE/READ/WRITE/CREATE leave out) cannot be checked, and is not refused.
    """
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    described = admin.describe_configs(resources, config_filter="all").get("topic", {}) if resources else {}
    policies: dict[str, tuple[str, str | None]] = {}
    unreadable = []
    for name in names:
        configs = described.get(name) or {}
        if "cleanup.policy" not in configs:
            unreadable.append(name)
            continue
        cleanup = configs["cleanup.policy"]
        policy = str(cleanup.get("value") or "")
        if cleanup.get("config_source") == "DEFAULT_CONFIG":
            policy += " (the broker's default)"
        policies[name] = (policy, (configs.get("retention.ms") or {}).get("value"))
    return policies, unreadable


def _check_not_compacted(admin: KafkaAdminClient, names: list[str], settings: Settings) -> None:
    """``ConfigError`` when a topic that must keep every record (events, alerts, dead letters, feedback: keyed by
    account) is compacted: Kafka would keep only each account's latest record and delete the rest — events never
    evaluated, alerts never delivered — with nothing counted anywhere. A topic made beforehand with a managed
    Kafka's default of ``compact``, or changed later, is refused here, naming the command that fixes it."""
    policies, unreadable = _cleanup_policies(admin, names)
    for name, (policy, _retention) in policies.items():
        if "compact" in policy:
            raise ConfigError(
                f"topic {name} has cleanup.policy={policy}: Kafka keeps only the latest record of each account "
                "and deletes the others, so events or alerts would be lost unseen. Make it delete only: "
                f"kafka-configs.sh --bootstrap-server {settings.bootstrap_servers[0]} --alter --entity-type topics "
                f"--entity-name {name} --add-config cleanup.policy=delete"
            )
    if unreadable:
        log.warning(
            "topics' cleanup policy not checked",
            topics=unreadable[:5],
            more=max(0, len(unreadable) - 5),
            why="the broker did not show their configs (this user lacks DESCRIBE_CONFIGS on them); they must not be "
            "compacted (cleanup.policy=delete), or Kafka deletes all but each account's latest record",
        )


_STATE_LOST = (
    "Kafka deletes its state records once they are older than the retention, and a worker recovering the table then "
    "starts those accounts afresh (alerts repeated or missed, deadlines lost)"
)
_ACCOUNTS_LOST = (
    "Kafka deletes its account records once they are older than the retention, and a worker or ingest that starts "
    "then no longer knows those accounts (alerts without their name, owner or plan; routes by plan missed)"
)


def _check_kept(
    admin: KafkaAdminClient,
    topics: list[ChangelogTopic],
    settings: Settings,
    *,
    what: str = "changelog topic",
    lost: str = _STATE_LOST,
) -> None:
    """``ConfigError`` when a changelog topic that must keep every key's latest record is not compacted
    only: made beforehand by a tool or a managed Kafka's default, or changed later, its records are
    deleted by retention, and a restarted or rebalanced worker recovers accounts without their state
    (alerts missed or repeated, deadlines and cooldowns lost) — silently. ``what`` and ``lost`` name the topic
    and the loss in the message (the accounts topic: ``ensure_topics``)."""
    policies, unreadable = _cleanup_policies(admin, [t.name for t in topics])
    for topic in topics:
        if topic.name not in policies:
            continue
        policy, retention = policies[topic.name]
        deleting = "compact" not in policy or ("delete" in policy and retention != "-1")
        if deleting:
            fix = f"--entity-type topics --entity-name {topic.name} --add-config cleanup.policy=compact"
            raise ConfigError(
                f"{what} {topic.name} has cleanup.policy={policy}"
                + (f" (retention.ms={retention})" if "delete" in policy and retention else "")
                + f": {lost}. Make it compacted only: kafka-configs.sh --bootstrap-server "
                f"{settings.bootstrap_servers[0]} --alter {fix}"
            )
    if unreadable:
        log.warning(
            f"{what}s' cleanup policy not checked",
            topics=unreadable[:5],
            more=max(0, len(unreadable) - 5),
            why="the broker did not show their configs (this user lacks DESCRIBE_CONFIGS on them); they must be "
            "compacted only (cleanup.policy=compact), or a recovering worker loses the state retention deleted",
        )


def _create(admin: KafkaAdminClient, topics: list[NewTopic], settings: Settings) -> None:
    """``admin.create_topics``; a refusal the settings can fix is a ``ConfigError`` naming the setting.

    kafka-python raised the broker's error with the whole request in its text (a screenful), which
    the commands printed as "cannot reach Kafka: …" or a traceback.
    """
    try:
        admin.create_topics(topics)
    except TopicAlreadyExistsError:
        raise
    except InvalidReplicationFactorError:
        brokers = len(admin.describe_cluster().get("brokers") or ())
        raise ConfigError(
            f"Kafka refused to create topic {topics[0].name} with PREEMPT_TOPIC_REPLICATION="
            f"{settings.topic_replication}: the cluster has {plural(brokers, 'broker')}; set PREEMPT_TOPIC_REPLICATION "
            f"to at most {brokers}"
        ) from None
    except KafkaError as exc:
        names = ", ".join(t.name for t in topics[:3]) + (" …" if len(topics) > 3 else "")
        raise ConfigError(
            f"Kafka refused to create the topics {names}: {type(exc).__name__} ({exc.description}); "
            "check the broker's topic policy and this client's permissions"
        ) from None


def _has_leader(partition: dict[str, Any]) -> bool:
    """A partition of kafka-python's ``describe_topics`` has a leader (``leader_id`` since kafka-python 3,
    ``leader`` before)."""
    return int(partition.get("leader_id", partition.get("leader", -1))) >= 0


def _await_leaders(admin: KafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """Return once every partition of ``names`` has a leader, or after ``timeout_s`` (the clients retry).

    A consumer started on a topic made a moment ago asked a broker that did not lead its partitions
    yet: aiokafka logged "Failed fetch offsets … NotLeaderForPartitionError" on every fresh deployment
    (HTTP ingest's account merger). The broker may still answer so for a moment after its metadata
    names the leader; aiokafka retries, and such lines are warnings (``logs.MovingLeaderFilter``).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = admin.describe_topics(names)
        if len(described) == len(names) and all(
            d.get("partitions") and all(_has_leader(p) for p in d["partitions"]) for d in described
        ):
            return
        time.sleep(0.2)


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
    admin = admin_client(settings, client_id, timeout_s)
    try:
        existing = set(admin.list_topics())
        compacted = names.compacted()
        wanted = [
            NewTopic(
                name=topic,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                # Said either way: a managed Kafka's default policy could be compact (or delete, for the accounts).
                topic_configs={"cleanup.policy": "compact" if topic in compacted else "delete"},
            )
            for topic in chosen
            if topic not in existing
        ]
        if wanted:
            # Another process may win the race; the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                _create(admin, wanted, settings)
            _await_leaders(admin, [t.name for t in wanted], timeout_s)
        if names.events in chosen and names.events in existing:
            _check_partitions(admin, names.events, settings, existing)
        _check_not_compacted(admin, [t for t in chosen if t in existing and t not in compacted], settings)
        # The accounts topic made beforehand with a managed Kafka's default of delete: accounts gone after retention.
        kept = [ChangelogTopic(t, settings.topic_partitions) for t in chosen if t in existing and t in compacted]
        if kept:
            _check_kept(admin, kept, settings, what="topic", lost=_ACCOUNTS_LOST)
    finally:
        admin.close()


@dataclass(frozen=True, slots=True)
class ChangelogTopic:
    """A table's changelog topic as Faust creates it: name, partition count and topic config."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def changelog_topics(app: Any, default_partitions: int) -> list[ChangelogTopic]:
    """The changelog topics of ``app``'s tables (a ``faust.App``), with the config Faust gives them.

    Faust's rule (its Kafka transport's topic config): ``cleanup.policy`` is ``compact`` and/or
    ``delete`` as the topic is compacting/deleting, ``retention.ms`` its retention (windowed tables).
    A table that reads an existing topic (the accounts global table: not an ``internal`` topic of
    Faust's) is left out: that topic is the deployment's, made by :func:`ensure_topics`.
    """
    out: list[ChangelogTopic] = []
    for table in app.tables.values():
        topic = table.changelog_topic
        if not topic.internal:
            continue
        config: dict[str, str] = {}
        policy = sorted(({"compact"} if topic.compacting else set()) | ({"delete"} if topic.deleting else set()))
        if policy:
            config["cleanup.policy"] = ",".join(policy)
        if topic.retention:
            retention = topic.retention
            seconds = retention.total_seconds() if isinstance(retention, timedelta) else float(retention)
            config["retention.ms"] = str(int(seconds * 1000))
        out.append(ChangelogTopic(topic.get_topic_name(), topic.partitions or default_partitions, config))
    return out


def ensure_changelog_topics(
    settings: Settings,
    topics: Iterable[ChangelogTopic],
    timeout_s: float = 30.0,
    *,
    source: str | None = None,
    group: str | None = None,
    rebuildable: Iterable[str] = (),
    client_id: str = "preempt-admin",
) -> list[str]:
    """Create the missing changelog topics and wait (bounded) until the broker lists their partitions;
    return the names of those it created.

    ``source``: the topic the tables are co-partitioned with (the worker's events topic, the
    notifier's alerts topic): a ``PartitionCountError`` when its partition count is not the
    changelogs' (partitions added to it after the state was built) or the setting's. With ``group``
    (the app's consumer group) too: a ``LostStateError`` when a changelog is missing although the group
    has read records of ``source`` (``streams.runtime.missing_topics.check_state_kept``), except for the
    ``rebuildable`` changelogs (tables that may start empty: new after an upgrade, not lost).

    Called by ``preempt worker`` and ``preempt notifier`` after the app is built, before the Faust
    worker starts. Left to Faust, a changelog topic is created while the worker starts, and the
    consumer group's first assignment can be made on metadata that does not list it yet (Faust logs
    "Ignoring missing topic"); the first write to that table outside a stream then fails Faust's
    partition check ("changelog topic … has 0 partitions", ``PartitionsMismatch``) and stops the
    worker. Made here first, the topic is in the broker's metadata before the group forms.
    """
    wanted = {t.name: t for t in topics}
    if not wanted:
        return []
    admin = admin_client(settings, client_id, timeout_s)
    try:
        existing = set(admin.list_topics())
        if source is not None:  # before any changelog is made with the setting's count
            _check_copartitioned(admin, source, [name for name in wanted if name in existing], settings)
            if group is not None:  # before a changelog whose state existed is made empty
                from streams.runtime.missing_topics import check_state_kept  # imports Faust: only the apps call this

                absent = sorted(name for name in wanted if name not in existing)
                check_state_kept(admin, settings, absent, group=group, source=source, rebuildable=rebuildable)
        missing = [
            NewTopic(
                name=t.name,
                num_partitions=t.partitions,
                replication_factor=settings.topic_replication,
                topic_configs=dict(t.config),
            )
            for t in wanted.values()
            if t.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker may win the race
                _create(admin, missing, settings)
        deadline = time.monotonic() + timeout_s
        while True:
            described = admin.describe_topics(list(wanted))
            listed = {d["name"] for d in described if d.get("partitions")}
            if listed >= wanted.keys():
                break
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"changelog topics {', '.join(sorted(wanted.keys() - listed))} not in the broker's metadata "
                    f"{timeout_s:.0f} s after they were created; is the Kafka cluster healthy?"
                )
            time.sleep(0.2)
        kept = [t for t in wanted.values() if t.name in existing and t.config.get("cleanup.policy") == "compact"]
        if kept:
            _check_kept(admin, kept, settings)
        return [t.name for t in missing]
    finally:
        admin.close()
