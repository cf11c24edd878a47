"""Whether this client's Kafka user holds the ACLs a process uses at every start, asked before it starts.

A managed Kafka grants ACLs per user (docs/operations.md, "Connecting to a secured Kafka"). Two of
those a process needs fail badly when missing, so they are asked for first, once each:

* READ on the consumer group: aiokafka retries ``GROUP_AUTHORIZATION_FAILED`` for ever, so a rules
  worker or notifier without it waited "for the consumer group to assign partitions", not ready, with
  nothing logged; ingest's account merger stopped with a traceback. Asked by describing the group.
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
from collections.abc import Iterable

from kafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError

from streams.runtime.broker_probe import client_logs_quiet
from streams.runtime.kafka_clients import KafkaAccessError
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings
from streams.runtime.topics import admin_client

_DOCS = 'docs/operations.md, "Connecting to a secured Kafka"'
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
        try:
            # kafka-python cannot decode a Faust member's metadata (its own assignor protocol): a
            # WARNING with the whole group at every start of a second replica, about nothing.
            with client_logs_quiet("kafka.admin", logging.ERROR):
                admin.describe_groups([group_id])
        except GroupAuthorizationFailedError:
            raise KafkaAccessError(
                f"Kafka at {where} refuses {who} the consumer group {group_id!r} (GroupAuthorizationFailedError); "
                f"grant it READ on the group {group_id!r} ({_DOCS})"
            ) from None
        except KafkaError as exc:  # e.g. no coordinator yet on a broker just started: the consumer retries
            log.debug("permission check: consumer group not described", group=group_id, error=str(exc))
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
