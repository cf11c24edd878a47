"""Topics deleted under a running rules worker or notifier (``kafka-topics.sh --delete``), on the real broker:
a changelog topic stops the process and its restart refuses to recreate it empty while state existed; the
worker's alerts topic makes it not ready, named, until it is back (streams/runtime/missing_topics.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from streams.runtime.missing_topics import records_read
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.notifier_harness import make_alert, produce_alerts, start_notifier
from tests.integration.pipeline_support import scrape, wait_for_metric
from tests.integration.topology_support import (
    crate_rules,
    delete_topic,
    exit_line,
    missing_then_back,
    publish_crates,
    ready_watching_worker,
    ready_worker,
    readyz,
    reset_group,
    wait_committed,
    wait_readyz,
)


def _topics(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def _records_in(bootstrap: str, topic: str) -> int:
    """The end offsets of ``topic``'s partitions, summed (the records ever written to it)."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap])
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def _read_by_a_group(
    kafka_bootstrap: str,
    producer: KafkaProducer,
    admin: KafkaAdminClient,
    records: tuple[int, int],
    committed: tuple[int, int],
) -> tuple[str, str]:
    """A new topic of 2 partitions with ``records`` records each, and a new group that committed ``committed``."""
    topic, group = f"records-read-{uuid.uuid4().hex[:8]}", f"records-read-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 2, 1)])
    for partition, count in enumerate(records):
        for i in range(count):
            producer.send(topic, key=b"k", value=str(i).encode(), partition=partition)
    producer.flush()
    consumer = KafkaConsumer(bootstrap_servers=[kafka_bootstrap], group_id=group, enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(at, "", -1) for p, at in enumerate(committed)})
    finally:
        consumer.close()
    return topic, group


def test_records_read_counts_a_committed_offset_that_retention_passed(
    kafka_bootstrap: str, producer: KafkaProducer
) -> None:
    """A group that committed 3 records of a partition, then retention deleted those and 2 unread ones: it read
    records there (3 offsets behind its commit), not none; the second partition, committed at 1 with nothing
    deleted, counts 1. Before, 0 for the first: a changelog missing looked like a new deployment's."""
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    topic, group = _read_by_a_group(kafka_bootstrap, producer, admin, records=(5, 1), committed=(3, 1))
    try:
        assert records_read(admin, group, topic) == 4
        admin.delete_records({TopicPartition(topic, 0): 5})  # retention, on demand: 2 of them never read
        assert records_read(admin, group, topic) == 4
    finally:
        admin.delete_topics([topic])
        admin.close()


def test_records_read_counts_a_committed_offset_at_the_start_of_a_partition_retention_emptied(
    kafka_bootstrap: str, producer: KafkaProducer
) -> None:
    """A group that read all 3 records of a partition, which retention then deleted (nothing came since: its
    committed offset is the log start and the log end): it read 3 records there, not none — no replay can
    rebuild their state. A replay's offset at the start of records still there (the second partition: 2 of 4
    deleted, committed at the log start) still counts 0. Before, the first counted 0 too: a changelog missing
    then looked like a new deployment's and was made again empty, the state lost without a word."""
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    topic, group = _read_by_a_group(kafka_bootstrap, producer, admin, records=(3, 4), committed=(3, 2))
    try:
        admin.delete_records({TopicPartition(topic, 0): 3, TopicPartition(topic, 1): 2})  # retention, on demand
        assert records_read(admin, group, topic) == 3
    finally:
        admin.delete_topics([topic])
        admin.close()


def _stopped_after_three_events(
    bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
    prefix: str,
) -> tuple[Settings, TopicNames, str]:
    """A worker that evaluated 3 events (its group committed them) and stopped: its settings, topics, group."""
    settings = settings_factory(rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port())
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    group = f"{settings.topic_prefix}-rules"
    worker = ready_worker(process_factory, settings, "before")
    publish_crates(producer, names.events, [f"{prefix}-{i}" for i in range(3)])
    wait_committed(bootstrap, group, names.events, 3)
    worker.stop()
    worker.proc.wait(timeout=60)
    return settings, names, group


def test_a_changelog_deleted_under_a_running_worker_stops_it_and_the_restart_refuses_to_recreate_it_empty(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """The account-state changelog deleted under a worker that has committed 4 events: it stops (status 1)
    with one CRITICAL line naming the topic; a restart refuses with one line (the topic is not made again);
    a start with PREEMPT_ACCEPT_LOST_STATE=true recreates it, removes the RocksDB files of the deleted one,
    and runs. Before, the worker stayed ready and retried the writes for ever, and a restart recreated the
    topic empty without a word (or, with its RocksDB kept, stopped on Faust's ConsistencyError traceback)."""
    settings = settings_factory(
        rules_path=crate_rules(tmp_path, "Call them."),
        worker_web_port=free_port(),
        metadata_max_age_seconds=3,
        store="rocksdb://",
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    group = f"{settings.topic_prefix}-rules"
    changelog = f"{group}-account-state-changelog"
    worker = ready_worker(process_factory, settings, "worker")
    publish_crates(producer, names.events, [f"pier-{i}" for i in range(4)])
    wait_committed(kafka_bootstrap, group, names.events, 4)

    delete_topic(kafka_bootstrap, changelog)
    exit_line(worker, timeout_s=60)
    log = worker.log_text()
    assert log.count('"changelog topic missing; stopping"') == 1, log[-3000:]
    assert f"changelog topic {changelog} does not exist (deleted?)" in log

    again = process_factory(["preempt", "worker"], settings, name="restart")
    line = exit_line(again, timeout_s=60)
    assert line.startswith(
        f"Error: changelog topic {changelog} does not exist, but consumer group {group} has read 4 records of "
        f"{names.events}: recreated empty, the state built from them would be lost"
    ), line
    assert "--reset-offsets --to-earliest" in line
    assert "PREEMPT_ACCEPT_LOST_STATE=true" in line
    assert changelog not in _topics(kafka_bootstrap)

    accepting = settings.model_copy(update={"accept_lost_state": True})
    accepted = ready_worker(process_factory, accepting, "accepted")
    wait_readyz(settings.worker_web_port, 200)
    log = accepted.log_text()
    assert "changelog topics missing; recreated empty (PREEMPT_ACCEPT_LOST_STATE=true)" in log
    assert "local table files of a recreated changelog topic removed" in log
    assert changelog in _topics(kafka_bootstrap)
    assert "Traceback" not in log


def test_an_upgrade_from_a_version_without_the_progress_table_starts_and_keeps_the_state(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """A deployment of a version before the partition-progress table (added 2026-12-01): its group has
    committed offsets and its account-state changelog exists, the progress changelog does not. The new
    version starts without the setting — the table only tells skipped offsets apart, so it may start
    empty — with one INFO line (the start refused with the lost-state line before), and the state built
    before is kept: the account-state changelog is not recreated."""
    settings, _names, group = _stopped_after_three_events(
        kafka_bootstrap, settings_factory, process_factory, producer, tmp_path, "quay"
    )

    kept = _records_in(kafka_bootstrap, f"{group}-account-state-changelog")
    delete_topic(kafka_bootstrap, f"{group}-partition-progress-changelog")  # the older version had none
    upgraded = ready_worker(process_factory, settings, "upgraded")
    log = upgraded.log_text()
    assert "changelog topics of tables that start empty created (new in this version, or lost)" in log, log[-3000:]
    assert "changelog topics missing; recreated empty" not in log
    assert f"{group}-partition-progress-changelog" in _topics(kafka_bootstrap)
    assert _records_in(kafka_bootstrap, f"{group}-account-state-changelog") >= kept > 0  # not made anew


def test_a_replay_after_the_changelog_was_deleted_starts_without_the_setting(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """The changelog deleted while the worker was stopped, then the group's offsets reset to the earliest (the
    line's second remedy): the worker starts, recreates the topic and reads the events again."""
    settings, names, group = _stopped_after_three_events(
        kafka_bootstrap, settings_factory, process_factory, producer, tmp_path, "jetty"
    )

    delete_topic(kafka_bootstrap, f"{group}-account-state-changelog")
    refused = exit_line(process_factory(["preempt", "worker"], settings, name="refused"), timeout_s=60)
    assert refused.startswith("Error: changelog topic"), refused
    reset_group(kafka_bootstrap, group, names.events, "earliest")
    ready_worker(process_factory, settings, "replay")
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 3)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_the_alerts_topic_deleted_under_a_running_worker_is_named_and_no_alert_is_lost(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
    guarantee: str,
) -> None:
    """The alerts topic deleted under a worker, then events that fire alerts: /readyz 503 naming the topic
    (before: 'partition stalled' after 120 s, without the topic) and one ERROR line; the topic made again:
    ready, INFO 'topic back', and every alert on the topic."""
    settings = settings_factory(
        rules_path=crate_rules(tmp_path, "Call them."),
        worker_web_port=free_port(),
        metadata_max_age_seconds=3,
        processing_guarantee=guarantee,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = ready_worker(process_factory, settings, "worker")
    wait_readyz(settings.worker_web_port, 200)

    delete_topic(kafka_bootstrap, names.alerts)
    accounts = [f"wharf-{i}" for i in range(3)]
    publish_crates(producer, names.events, accounts)
    missing_then_back(worker, settings.worker_web_port, settings, names.alerts)
    emitted = [json.loads(r.value) for r in consume_records(kafka_bootstrap, names.alerts, 6, timeout_s=60, idle_s=2.0)]
    assert Counter(alert["account_id"] for alert in emitted) == dict.fromkeys(accounts, 2)
    # exactly_once reads committed records only; its outputs are not transactional, and the worker says so
    warned = '"processing guarantee"' in worker.log_text()
    assert warned == (guarantee == "exactly_once")
    assert worker.proc.poll() is None


def test_the_alerts_topic_deleted_under_an_idle_worker_is_named_within_the_metadata_age(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """The alerts topic deleted under a worker that writes nothing (no write fails to force a refresh): its
    producer's metadata refresh (PREEMPT_METADATA_MAX_AGE_SECONDS, 3 s) leaves the topic out, and /readyz is
    503 naming it once it stayed absent 15 s. Before, the producer refreshed every 5 minutes (Faust's
    default): the worker answered ready all that time."""
    settings, names, worker = ready_watching_worker(settings_factory, process_factory, tmp_path)

    delete_topic(kafka_bootstrap, names.alerts)
    wait_readyz(settings.worker_web_port, 503, f"topic {names.alerts} does not exist (deleted?)", timeout_s=45)
    ensure_topics(settings)
    wait_readyz(settings.worker_web_port, 200, timeout_s=30)
    assert worker.proc.poll() is None


def test_the_delivery_log_changelog_deleted_under_a_running_notifier_stops_it_and_the_restart_refuses(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
) -> None:
    """The notifier's delivery-log changelog deleted after it committed 3 alerts: it stops (status 1) with one
    CRITICAL line naming the topic, and its restart refuses to recreate it empty (the delivery log is what
    keeps a re-read alert from being sent twice). Before, it ran on, and the restart started with no log."""
    settings = settings_factory(notifier_web_port=free_port(), metadata_max_age_seconds=3)
    names = TopicNames.from_settings(settings)
    group = f"{settings.topic_prefix}-notify"
    changelog = f"{group}-deliveries-changelog"
    notifier = start_notifier(process_factory, settings)
    produce_alerts(producer, names.alerts, *(make_alert(f"dock-{i}") for i in range(3)))
    wait_committed(kafka_bootstrap, group, names.alerts, 3, timeout_s=120)

    delete_topic(kafka_bootstrap, changelog)
    assert notifier.proc.wait(timeout=60) == 1  # exit_line would refuse the console receiver's previews
    assert notifier.log_text().count('"changelog topic missing; stopping"') == 1
    assert f"changelog topic {changelog} does not exist (deleted?)" in notifier.log_text()

    line = exit_line(process_factory(["preempt", "notifier"], settings, name="restart"), timeout_s=60)
    assert line.startswith(
        f"Error: changelog topic {changelog} does not exist, but consumer group {group} has read 3 records of "
        f"{names.alerts}"
    ), line
    assert changelog not in _topics(kafka_bootstrap)


def test_a_worker_whose_producer_asks_for_fewer_topics_does_not_call_the_alerts_topic_deleted(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Dead letters sent while the events' dead-letter topic was briefly gone make the producer ask the metadata
    of that topic only (aiokafka); the alerts topic, which exists, is then absent from every answer. Before, the
    worker said 'topic … alerts does not exist (deleted?)' (/readyz 503) until an alert was sent; it stays ready."""
    settings, names, worker = ready_watching_worker(settings_factory, process_factory, tmp_path)

    delete_topic(kafka_bootstrap, names.events_dlq)
    time.sleep(3)
    for key in (b"bad-1", b"bad-2"):  # the second one sent once the producer's metadata lacks the topic
        producer.send(names.events, key=key, value=b"not json")
        producer.flush()
        time.sleep(4)
    ensure_topics(settings)
    statuses = []
    deadline = time.monotonic() + 35  # past the 15 s a topic must stay absent to count as missing
    while time.monotonic() < deadline:
        status, body = readyz(settings.worker_web_port)
        statuses.append((status, str(body.get("reason", ""))[:80]))
        time.sleep(1)
    # The dead-letter topic itself, gone for about 11 s, counts as missing after 15 s: on a loaded machine the
    # test may take that long to create it again, and then saying so is right. The alerts topic never is.
    assert not [reason for status, reason in statuses if status != 200 and names.alerts in reason], statuses
    missing = [line for line in worker.log_text().splitlines() if '"topic missing; not ready until it is back"' in line]
    assert not [line for line in missing if f'"{names.alerts}"' in line], missing
    assert statuses[-1][0] == 200, statuses


def _missing_gauge(port: int, app: str, topic: str) -> float:
    return scrape(port).get(f'preempt_topic_missing{{app="{app}",topic="{topic}"}}', -1.0)


def test_the_dead_letter_topic_missing_under_a_running_worker_is_named_and_the_dead_letter_is_not_lost(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """The events' dead-letter topic deleted before the worker wrote any dead letter, then a record it must
    dead-letter and a good event behind it on the same partition: the worker waits (order, no dead letter
    lost) with /readyz 503 naming the topic and how to create it, one ERROR line and preempt_topic_missing 1
    (before: 'partition stalled' after 120 s, naming nothing); the topic created, it goes on by itself: the
    dead letter on the topic, the event's alerts out, ready again."""
    settings, names, worker = ready_watching_worker(settings_factory, process_factory, tmp_path)
    port, app = settings.worker_web_port, f"{settings.topic_prefix}-rules"

    delete_topic(kafka_bootstrap, names.events_dlq)
    deadline = time.monotonic() + 30
    while names.events_dlq in _topics(kafka_bootstrap):
        assert time.monotonic() < deadline, f"{names.events_dlq} not deleted"
        time.sleep(0.2)
    producer.send(names.events, key=b"wharf-0", value=b"not json")
    producer.flush()
    publish_crates(producer, names.events, ["wharf-0"])
    body = wait_readyz(port, 503, f"dead-letter topic {names.events_dlq} does not exist", timeout_s=60)
    assert f"--create --topic {names.events_dlq}" in body["reason"], body
    assert _missing_gauge(port, app, names.events_dlq) == 1
    time.sleep(5)  # the worker stays blocked; the line is not said again
    assert worker.log_text().count('"topic missing; not ready until it is back"') == 1
    assert consume_records(kafka_bootstrap, names.alerts, 1, timeout_s=3) == []  # the event waits behind it

    ensure_topics(settings)
    wait_readyz(port, 200, timeout_s=60)
    worker.wait_for_log('"topic back"', timeout_s=10)
    assert _missing_gauge(port, app, names.events_dlq) == 0
    letters = consume_records(kafka_bootstrap, names.events_dlq, 1, timeout_s=60, idle_s=2.0)
    assert [dict(r.headers)["preempt.dlq.reason"] for r in letters] == [b"invalid_json"]
    emitted = [json.loads(r.value) for r in consume_records(kafka_bootstrap, names.alerts, 2, timeout_s=60, idle_s=2.0)]
    assert [alert["account_id"] for alert in emitted] == ["wharf-0", "wharf-0"]
    assert worker.proc.poll() is None
