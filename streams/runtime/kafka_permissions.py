"""Whether this client's Kafka user holds the ACLs a process uses at every start, asked before it starts.

A managed Kafka grants ACLs per user (docs/operations.md, "Connecting to a secured Kafka"). Two of
those a process needs fail badly when missing, so they are asked for first, once each:

* READ on the consumer group: aiokafka retries ``GROUP_AUTHORIZATION_FAILED`` for ever, so a rules
  worker or notifier without it waited "for the consumer group to assign partitions", not ready, with
  nothing logged; ingest's account merger stopped with a traceback. Asked by describing the group with
  its authorized operations, or, when the broker names none (a group not made yet), by a
  LeaveGroup of a member that does not exist: it needs READ, as the consumer's JoinGroup does, and
  changes nothing. Describing alone needs only DESCRIBE, which a user with DESCRIBE but not READ passed.
* CREATE on the Faust apps' own topics (their tables' changelogs, the leader assignor's topic): Faust
  declares them at every start, existing ones too, and a refusal stopped the worker with a
  TopicAuthorizationFailedError traceback in a log line. Asked by a validate-only creation, which the
  broker answers "exists" (allowed) or "not authorized" without creating anything.

A third, :func:`check_topic_readable`, is for the dead-letter readers: a topic the user may not
describe looks absent, and they printed "0 dead letter(s) shown" with a note blaming the topic prefix.

Each refusal is a :class:`KafkaAccessError`: one line naming the user, the group or topics and the
ACL to grant. Anything else the broker answers is left to the clients, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import MemberToRemove
from kafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError

from streams.runtime.broker_probe import client_logs_quiet
from streams.runtime.kafka_clients import KafkaAccessError
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings
from streams.runtime.topics import admin_client

_DOCS = 'docs/operations.md, "Connecting to a secured Kafka"'
_RETRY_S = 0.5
_PROBE_MEMBER = "preempt-permission-check"  # not a member id a broker gives out (those end in a UUID)
log = get_logger(__name__)


def check_permissions(
    settings: Settings,
    *,
    group_id: str,
    declared_topics: Iterable[str] = (),
    client_id: str = "preempt-admin",
    timeout_s: float = 30.0,
) -> None:
    """Raise :class:`KafkaAccessError` when the brokers refuse this client the consumer group
    ``group_id`` or the creation of ``declared_topics`` (the topics Faust declares at start: all begin
    with ``<group_id>-``). Called by ``preempt worker``, ``notifier`` and ``ingest`` after their topics
    are made, before their Kafka clients start."""
    where = ", ".join(settings.bootstrap_servers)
    who = _principal(settings)
    admin = admin_client(settings, client_id, timeout_s)
    try:
        if _group_read_refused_retrying(admin, group_id, timeout_s):
            raise KafkaAccessError(
                f"Kafka at {where} refuses {who} the consumer group {group_id!r} (GroupAuthorizationFailedError); "
                f"grant it READ on the group {group_id!r} ({_DOCS})"
            )
        topics = sorted(set(declared_topics))
        if not topics:
            return
        try:
            result = admin.create_topics(
                {name: {"num_partitions": -1, "replication_factor": -1} for name in topics},
                validate_only=True,
                raise_errors=False,
            )
        except KafkaError as exc:  # not an answer about permissions: Faust's own declaration decides
            log.debug("permission check: topic creation not validated", error=str(exc))
            return
        refused = [t["name"] for t in result["topics"] if t["error_code"] == TopicAuthorizationFailedError.errno]
        if refused:
            names = ", ".join(refused[:3]) + (" …" if len(refused) > 3 else "")
            raise KafkaAccessError(
                f"Kafka at {where} refuses {who} to create the topics {names} (TopicAuthorizationFailedError), "
                "which Faust declares at every start, existing ones too; grant it CREATE on the topics "
                f"prefixed '{group_id}-' ({_DOCS})"
            )
    finally:
        admin.close()


def _group_read_refused_retrying(admin: KafkaAdminClient, group_id: str, timeout_s: float) -> bool:
    """:func:`_group_read_refused`, asked again for up to ``timeout_s`` while the answer is one to retry: on
    a new cluster the first FindCoordinator makes the offsets topic and answers COORDINATOR_NOT_AVAILABLE
    (the check was skipped there, and the consumer then waited for ever on its refused JoinGroup)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            # kafka-python cannot decode a Faust member's metadata (its own assignor protocol): a
            # WARNING with the whole group at every start of a second replica, about nothing.
            with client_logs_quiet("kafka.admin", logging.ERROR):
                return _group_read_refused(admin, group_id)
        except KafkaError as exc:
            if exc.retriable and time.monotonic() + _RETRY_S < deadline:
                time.sleep(_RETRY_S)
                continue
            # not an answer about permissions (still no coordinator, say): the consumer retries itself
            log.debug("permission check: consumer group not described", group=group_id, error=str(exc))
            return False


def _group_read_refused(admin: KafkaAdminClient, group_id: str) -> bool:
    """Whether the brokers refuse this client READ on the consumer group ``group_id``.

    kafka-python raises for a refused FindCoordinator (no DESCRIBE) but puts a per-group DescribeGroups
    error in the result; a user with DESCRIBE but not READ gets neither, so the group's authorized
    operations decide. The broker names none for a group that does not exist yet (kafka-python: None; an
    old broker neither); then a LeaveGroup of a member that cannot exist asks (the broker checks READ
    first, then answers UNKNOWN_MEMBER_ID: nothing changes, even in a group with members). Without an
    authorizer the broker names every operation, and the LeaveGroup is not refused."""
    try:
        described = admin.describe_groups([group_id], include_authorized_operations=True)[group_id]
    except GroupAuthorizationFailedError:
        return True
    if GroupAuthorizationFailedError.__name__ in (described.get("error") or ""):
        return True
    operations = described.get("authorized_operations")
    if operations is not None:
        return "READ" not in operations
    try:
        answers = admin.remove_group_members(group_id, [MemberToRemove(member_id=_PROBE_MEMBER)])
    except GroupAuthorizationFailedError:  # LeaveGroup v3+: one error for the whole request
        return True
    return GroupAuthorizationFailedError in answers.values()  # older brokers: one error per member


def check_topic_readable(settings: Settings, topic: str, *, timeout_s: float = 30.0) -> None:
    """Raise :class:`KafkaAccessError` when the brokers refuse this client ``topic`` (no DESCRIBE: to it
    the topic looks absent, so a reader showed nothing and blamed the topic prefix). Called by the
    dead-letter readers when the topic has no partitions for them."""
    try:
        admin = admin_client(settings, "preempt-dead-letters", timeout_s)
    except KafkaError as exc:  # not an answer about permissions: the caller's own note stands
        log.debug("permission check: no admin client", topic=topic, error=str(exc))
        return
    try:
        (described,) = admin.describe_topics([topic])
    except KafkaError as exc:
        log.debug("permission check: topic not described", topic=topic, error=str(exc))
        return
    finally:
        admin.close()
    if described.get("error_code") == TopicAuthorizationFailedError.errno:
        raise KafkaAccessError(
            f"Kafka at {', '.join(settings.bootstrap_servers)} refuses {_principal(settings)} the topic {topic} "
            f"(TopicAuthorizationFailedError); grant it DESCRIBE and READ on the topic {topic} ({_DOCS})"
        )


def _principal(settings: Settings) -> str:
    """Whom the broker's ACLs are about, in words: the SASL user, else the TLS client certificate."""
    if settings.kafka_sasl_username:
        return f"user {settings.kafka_sasl_username!r}"
    if settings.kafka_ssl_cert_file is not None:
        return f"the user of the client certificate {settings.kafka_ssl_cert_file}"
    return "this client (user ANONYMOUS)"
