"""A Kafka user without an ACL a process needs at start: one line naming the user and the ACL, exit 1.

Against a broker with ACLs on (``acl_broker``), as a managed Kafka has them. The user ``preempt`` gets
the topic ACLs of docs/operations.md ("Connecting to a secured Kafka") but one: the consumer group
(the worker waited "for the consumer group to assign partitions" for ever, with nothing logged;
ingest's account merger stopped with a traceback), or CREATE on the Faust apps' own topics (Faust
declares them at every start, existing ones too: the worker stopped with a traceback in a log line).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourceType,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from streams.ingest.auth import key_digest
from streams.runtime.faust_compat import leader_topic_name
from streams.runtime.kafka_clients import kafka_python_config
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import ChangelogTopic, changelog_topics, ensure_changelog_topics, ensure_topics
from streams.worker.app import create_app, load_engine
from tests.integration.conftest import ManagedProcess
from tests.integration.ingest_support import KEY
from tests.integration.secured_kafka import SaslBroker, acl_broker  # noqa: F401


def _settings(fields: dict[str, Any], prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        **fields,
        topic_prefix=prefix,
        topic_partitions=2,
        store="memory://",
        data_dir=tmp_path / "data",
        log_format="json",
        worker_web_port=free_port(),
        notifier_web_port=free_port(),
        ingest_port=free_port(),
        ingest_api_keys=(key_digest(KEY),),
    )


def _grant(broker: SaslBroker, prefix: str, *, create: bool, group: Sequence[ACLOperation]) -> None:
    """Give ``preempt`` DESCRIBE, READ and WRITE on the deployment's topics (``<prefix>.…`` and the Faust
    apps' ``<prefix>-…``), CREATE on them as asked, and the ``group`` operations on its consumer groups."""
    operations = [ACLOperation.DESCRIBE, ACLOperation.READ, ACLOperation.WRITE]
    if create:
        operations.append(ACLOperation.CREATE)
    acls = [
        ACL("User:preempt", "*", op, ACLPermissionType.ALLOW, _prefixed(ResourceType.TOPIC, start))
        for op in operations
        for start in (f"{prefix}.", f"{prefix}-")
    ]
    group_acl = _prefixed(ResourceType.GROUP, prefix)
    acls += [ACL("User:preempt", "*", op, ACLPermissionType.ALLOW, group_acl) for op in group]
    with _broker_admin(broker) as admin:
        result = admin.create_acls(acls)
    assert not result["failed"], result


@contextmanager
def _broker_admin(broker: SaslBroker) -> Iterator[KafkaAdminClient]:
    """An admin client of the broker's own user, whom ACLs do not bind."""
    admin_settings = Settings(_env_file=None, **broker.admin_settings())  # type: ignore[call-arg]
    admin = KafkaAdminClient(bootstrap_servers=admin_settings.bootstrap_servers, **kafka_python_config(admin_settings))
    try:
        yield admin
    finally:
        admin.close()


def _prefixed(kind: ResourceType, start: str) -> ResourcePattern:
    return ResourcePattern(kind, start, ACLResourcePatternType.PREFIXED)


def _one_line_and_exit_1(proc: ManagedProcess, timeout_s: float = 90.0) -> str:
    """The last line of a process that must stop at start with one Error line (no traceback)."""
    proc.proc.wait(timeout=timeout_s)
    output = proc.log_text()
    assert proc.proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: "), output[-3000:]
    return lines[-1]


@pytest.mark.parametrize(
    ("command", "group"),
    [(["preempt", "worker"], "rules"), (["preempt", "notifier"], "notify"), (["preempt", "ingest"], "ingest-accounts")],
    ids=["worker", "notifier", "ingest"],
)
def test_a_user_without_its_consumer_group_acl_stops_at_start_with_one_line(
    acl_broker: SaslBroker,  # noqa: F811
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
    command: list[str],
    group: str,
) -> None:
    """Every topic ACL but READ on the consumer group: the process stops at once, naming the user, the
    group and the ACL to grant (the worker and the notifier waited for ever, not ready, logging nothing;
    ingest stopped with aiokafka's GroupAuthorizationFailedError traceback)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _grant(acl_broker, prefix, create=True, group=())
    settings = _settings(acl_broker.settings(), prefix, tmp_path)
    line = _one_line_and_exit_1(process_factory(command, settings, name=group))
    assert f"refuses user 'preempt' the consumer group '{prefix}-{group}'" in line, line
    assert f"grant it READ on the group '{prefix}-{group}'" in line, line


@pytest.mark.parametrize("group_exists", [False, True], ids=["new-group", "group-with-offsets"])
def test_a_user_that_may_describe_its_consumer_group_but_not_read_it_stops_at_start_with_one_line(
    acl_broker: SaslBroker,  # noqa: F811
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
    group_exists: bool,
) -> None:
    """DESCRIBE but not READ on the consumer group: describing the group needs DESCRIBE only, so the check
    passed and the worker's JoinGroup was refused: it waited for ever, not ready, logging nothing. Both
    on a first start (the broker names no authorized operations for a group that does not exist yet) and
    once the group has committed offsets (it names them: DESCRIBE only)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _grant(acl_broker, prefix, create=True, group=(ACLOperation.DESCRIBE,))
    group = f"{prefix}-rules"
    if group_exists:
        with _broker_admin(acl_broker) as admin:
            seed = f"{prefix}.offsets-seed"
            admin.create_topics([NewTopic(seed, 1, 1)])
            admin.alter_group_offsets(group, {TopicPartition(seed, 0): OffsetAndMetadata(0, "", -1)})
            assert admin.describe_groups([group])[group]["error"] is None  # the group exists
    settings = _settings(acl_broker.settings(), prefix, tmp_path)
    line = _one_line_and_exit_1(process_factory(["preempt", "worker"], settings, name="worker"))
    assert f"refuses user 'preempt' the consumer group '{group}'" in line, line
    assert f"grant it READ on the group '{group}'" in line, line


def test_a_user_without_create_on_the_apps_own_topics_stops_at_start_with_one_line(
    acl_broker: SaslBroker,  # noqa: F811
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """Topics made beforehand by an administrator, every ACL but CREATE: Faust still declares its own
    topics (changelogs, the leader topic) at every start, so the worker cannot run; it stops with one line
    naming CREATE and the topics' prefix, not with Faust's TopicAuthorizationFailedError traceback."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _grant(acl_broker, prefix, create=False, group=(ACLOperation.READ,))
    admin = _settings(acl_broker.admin_settings(), prefix, tmp_path)
    ensure_topics(admin)
    app = create_app(admin, *load_engine(admin))
    leader = leader_topic_name(app)
    assert leader is not None
    ensure_changelog_topics(admin, [*changelog_topics(app, admin.topic_partitions), ChangelogTopic(leader, 1)])

    settings = _settings(acl_broker.settings(), prefix, tmp_path)
    line = _one_line_and_exit_1(process_factory(["preempt", "worker"], settings, name="worker"))
    assert f"refuses user 'preempt' to create the topics {prefix}-rules-" in line, line
    assert f"grant it CREATE on the topics prefixed '{prefix}-rules-'" in line, line


@pytest.mark.parametrize("command", [["events", "dead-letters"], ["alerts", "dead-letters"]], ids=["events", "alerts"])
def test_a_dead_letter_topic_the_user_may_not_read_is_named_as_such(
    acl_broker: SaslBroker,  # noqa: F811
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
    command: list[str],
) -> None:
    """A dead-letter topic that exists but that the user may not describe is one line naming the ACL; it
    printed "0 dead letters shown" and a note that no worker had ever run with this topic prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    ensure_topics(_settings(acl_broker.admin_settings(), prefix, tmp_path))  # the deployment exists
    settings = _settings(acl_broker.settings(), prefix, tmp_path)
    line = _one_line_and_exit_1(process_factory(["preempt", *command], settings, name=command[0]), timeout_s=60)
    topic = f"{prefix}.{command[0]}.dlq"
    assert f"refuses user 'preempt' the topic {topic} (TopicAuthorizationFailedError)" in line, line
    assert f"grant it DESCRIBE and READ on the topic {topic}" in line, line
