"""The rules worker under topic changes an operator or a managed Kafka makes: a topic that refuses large
records, partitions added to the events topic, changelog topics that do not keep state."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

from schemas.event import format_ts
from streams.runtime.dead_letters import REASON, SOURCE_TOPIC, TRUNCATED
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import metric_sum, wait_for_metric
from tests.integration.topology_support import (
    crate_rules,
    delete_topic,
    exit_line,
    publish_crates,
    ready_watching_worker,
    ready_worker,
    readyz,
    reset_group,
    wait_readyz,
)


def _set_topic_config(bootstrap: str, topic: str, **config: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=config)])
    finally:
        admin.close()


def test_an_alert_the_broker_refuses_as_too_large_is_dead_lettered_and_the_worker_goes_on(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """An alerts topic whose max.message.bytes is below one rule's alerts (a long playbook): those alerts
    go to the events dead-letter topic with reason alert_too_large, counted; the other rule's alerts
    are emitted and the worker keeps running (before, it stopped on the first one, after every restart)."""
    settings = settings_factory(
        rules_path=crate_rules(tmp_path, "Walk the customer through it. " * 100), worker_web_port=free_port()
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    _set_topic_config(kafka_bootstrap, names.alerts, **{"max.message.bytes": "2500"})
    worker = ready_worker(process_factory, settings, "worker")
    accounts = [f"depot-{i}" for i in range(3)]
    publish_crates(producer, names.events, accounts)

    samples = wait_for_metric(
        settings.worker_web_port, 'preempt_events_dead_lettered_total{reason="alert_too_large"}', 3
    )
    emitted = consume_records(kafka_bootstrap, names.alerts, 3, timeout_s=30, idle_s=2.0)
    assert Counter(json.loads(r.value)["rule_id"] for r in emitted) == {"crate-dropped-note": 3}
    letters = consume_records(kafka_bootstrap, names.events_dlq, 3, timeout_s=30, idle_s=1.0)
    assert len(letters) == 3
    for letter in letters:
        headers = dict(letter.headers)
        assert headers[REASON] == b"alert_too_large"
        assert headers[SOURCE_TOPIC].decode() == names.alerts
        assert json.loads(letter.value)["rule_id"] == "crate-dropped-runbook"
    assert {json.loads(letter.value)["account_id"] for letter in letters} == set(accounts)
    assert samples.get('preempt_alerts_total{rule="crate-dropped-runbook",severity="high"}', 0.0) == 0
    assert worker.proc.poll() is None, worker.log_text()[-3000:]
    assert worker.log_text().count("alert too large for Kafka; dead-lettered") == 3
    assert "Traceback" not in worker.log_text()


def test_a_dead_letter_the_broker_refuses_as_too_large_is_written_cut_and_the_worker_goes_on(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """An events dead-letter topic whose max.message.bytes is below a rejected record (an oversize event, a
    20 KB event with a wrong field): each dead letter is written cut to fit, with its verdict and
    ``preempt.dlq.truncated``, and the good events after them alert. Before, the broker's refusal failed the
    batch: the worker stopped, and stopped again on the same record after every restart."""
    settings = settings_factory(rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port())
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    _set_topic_config(kafka_bootstrap, names.events_dlq, **{"max.message.bytes": "3000"})
    worker = ready_worker(process_factory, settings, "worker")
    now = format_ts(time.time())
    oversize = {"event_id": "big", "event": "Crate Dropped", "account_id": "hold-0", "timestamp": now}
    producer.send(
        names.events, key=b"hold-0", value=json.dumps({**oversize, "properties": {"b": "x" * 40_000}}).encode()
    )
    wrong = {**oversize, "event_id": "wrong", "properties": {"note": "y" * 8000, "more": "z" * 8000}, "timestamp": 7}
    producer.send(names.events, key=b"hold-1", value=json.dumps(wrong).encode())
    producer.flush()
    accounts = [f"hold-{i}" for i in range(2, 5)]
    publish_crates(producer, names.events, accounts)

    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 3, timeout_s=60)
    emitted = consume_records(kafka_bootstrap, names.alerts, 6, timeout_s=30, idle_s=2.0)
    assert {json.loads(r.value)["account_id"] for r in emitted} == set(accounts)
    letters = consume_records(kafka_bootstrap, names.events_dlq, 2, timeout_s=30, idle_s=1.0)
    assert Counter(dict(r.headers)[REASON].decode() for r in letters) == {"too_large": 1, "invalid_field": 1}
    for letter in letters:
        headers = dict(letter.headers)
        assert headers[SOURCE_TOPIC].decode() == names.events
        assert TRUNCATED in headers, headers
        assert len(letter.value or b"") < 3000
    assert worker.proc.poll() is None, worker.log_text()[-3000:]
    assert worker.log_text().count("dead letter too large for the dead-letter topic; written cut") == 2
    assert "Traceback" not in worker.log_text()


def _add_partitions(bootstrap: str, topic: str, total: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        admin.create_partitions({topic: NewPartitions(total)})
    finally:
        admin.close()


def test_partitions_added_to_the_events_topic_stop_a_running_worker_and_its_restart_with_one_line(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Events topic altered from 4 to 6 partitions under a running worker: at its next metadata refresh it
    stops (status 1) with a CRITICAL line naming both counts; a restart, with PREEMPT_TOPIC_PARTITIONS
    4 or 6 (the count the old message told the operator to set), refuses to start with the same one line.
    Before, the running worker read the new partitions and went on, and the restart with 6 started,
    reported ready and stopped on its first batch with Faust's PartitionsMismatch."""
    rules = crate_rules(tmp_path, "Call them.")
    settings = settings_factory(rules_path=rules, worker_web_port=free_port(), metadata_max_age_seconds=3)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = ready_worker(process_factory, settings, "worker")
    publish_crates(producer, names.events, [f"dock-{i}" for i in range(4)])
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 4)

    _add_partitions(kafka_bootstrap, names.events, 6)
    exit_line(worker, timeout_s=60)
    assert f"topic {names.events} has 6 partitions but the state built from it has 4" in worker.log_text()
    assert "partition count changed; stopping the worker" in worker.log_text()

    expected = f"Error: topic {names.events} has 6 partitions but the state built from it has 4"
    for count in (4, 6):
        again = process_factory(
            ["preempt", "worker"], settings_factory(rules_path=rules, topic_partitions=count), name=f"restart-{count}"
        )
        line = exit_line(again, timeout_s=60)
        assert line.startswith(expected), line
        assert f"recreate {names.events} with 4 partitions" in line
        assert "PREEMPT_TOPIC_PARTITIONS=6 and replay" in line


def test_a_changelog_topic_made_beforehand_with_cleanup_policy_delete_is_refused_with_one_line(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """The account-state changelog made beforehand (a provisioning tool, a managed Kafka's default) with
    cleanup.policy=delete and a day's retention: the worker refuses to start, naming the topic, its
    policy and the command that fixes it. Before, it ran, and Kafka deleted account state older than a day."""
    settings = settings_factory(rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port())
    ensure_topics(settings)
    changelog = f"{settings.topic_prefix}-rules-account-state-changelog"
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    try:
        config = {"cleanup.policy": "delete", "retention.ms": "86400000"}
        admin.create_topics([NewTopic(changelog, 4, 1, topic_configs=config)])
    finally:
        admin.close()
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    line = exit_line(worker, timeout_s=60)
    assert line.startswith(f"Error: changelog topic {changelog} has cleanup.policy=delete (retention.ms=86400000)"), (
        line
    )
    assert f"--entity-name {changelog} --add-config cleanup.policy=compact" in line


def test_an_events_topic_made_beforehand_compacted_is_refused_with_one_line_and_new_topics_say_delete(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """The events topic made beforehand compacted (a provisioning tool, a managed Kafka whose default policy is
    compact): Kafka would keep each account's latest event only and delete the rest unread. The worker and
    ``preempt publish`` refuse to start, naming the topic, its policy and the command that fixes it; before, they
    ran. The topics Preempt makes itself say their policy, so a broker default does not choose it."""
    settings = settings_factory(rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port())
    names = TopicNames.from_settings(settings)
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    try:
        admin.create_topics([NewTopic(names.events, 4, 1, topic_configs={"cleanup.policy": "compact"})])
        expected = f"Error: topic {names.events} has cleanup.policy=compact: Kafka keeps only the latest record"
        fix = f"--entity-name {names.events} --add-config cleanup.policy=delete"
        worker = process_factory(["preempt", "worker"], settings, name="worker")
        line = exit_line(worker, timeout_s=60)
        assert line.startswith(expected), line
        assert fix in line
        publish = process_factory(
            ["preempt", "publish", "--event", "Crate Packed", "--account", "dock-1"], settings, name="publish"
        )
        line = exit_line(publish, timeout_s=60)
        assert line.startswith(expected), line

        resource = ConfigResource(ConfigResourceType.TOPIC, names.alerts, configs=["cleanup.policy"])
        shown = admin.describe_configs([resource])["topic"][names.alerts]["cleanup.policy"]
        assert (shown["value"], shown["config_source"]) == ("delete", "DYNAMIC_TOPIC_CONFIG")
    finally:
        admin.close()


def test_an_offset_reset_while_stopped_is_counted_when_it_skips_and_sends_nothing_twice_when_it_replays(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Reset to latest with 5 unread events: the restarted worker counts 5 in preempt_events_skipped_total
    and logs a WARN (before: nothing said it). Reset to earliest: every event is read again and dropped as
    a duplicate, no alert is sent twice, nothing counted as skipped."""
    settings = settings_factory(rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port())
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    group = f"{settings.topic_prefix}-rules"

    first = ready_worker(process_factory, settings, "first")
    publish_crates(producer, names.events, [f"bay-{i}" for i in range(3)])
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 3)
    first.stop()

    publish_crates(producer, names.events, [f"yard-{i}" for i in range(5)])  # never read: the reset skips them
    reset_group(kafka_bootstrap, group, names.events, "latest")
    second = ready_worker(process_factory, settings, "second")
    samples = wait_for_metric(settings.worker_web_port, "preempt_events_skipped_total", 5, timeout_s=30)
    assert samples['preempt_events_skipped_total{reason="offset_moved"}'] == 5
    assert samples['preempt_events_skipped_total{reason="retention"}'] == 0
    assert "records skipped: the consumer group's offset moved past records no worker read" in second.log_text()
    second.stop()

    reset_group(kafka_bootstrap, group, names.events, "earliest")
    ready_worker(process_factory, settings, "third")
    samples = wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="duplicate"}', 3, timeout_s=30)
    assert metric_sum(samples, "preempt_events_skipped_total") == 0
    emitted = [json.loads(r.value) for r in consume_records(kafka_bootstrap, names.alerts, 6, timeout_s=30, idle_s=3.0)]
    per_id = Counter(alert["alert_id"] for alert in emitted)
    assert max(per_id.values()) == 1, per_id  # the replay sent no alert a second time
    assert sum(1 for alert in emitted if alert["account_id"].startswith("bay-")) == 6  # 3 accounts x 2 rules


def test_records_retention_deleted_before_a_worker_read_them_are_counted_as_skipped(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """5 events published while the workers were stopped, then deleted by retention (what
    kafka-delete-records.sh does) before any worker read them: the consumer resets to the log start and the
    restarted worker counts 5 in preempt_events_skipped_total{reason="retention"} with a WARN naming
    retention (before: nothing counted or said, the committed offset had not moved); the events published
    after are evaluated."""
    settings = settings_factory(rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port())
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)

    first = ready_worker(process_factory, settings, "first")
    publish_crates(producer, names.events, [f"quay-{i}" for i in range(3)])
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 3)
    first.stop()

    publish_crates(producer, names.events, [f"silt-{i}" for i in range(5)])  # deleted before anyone reads them
    delete_records_to_end(kafka_bootstrap, names.events)
    publish_crates(producer, names.events, [f"tide-{i}" for i in range(2)])
    second = ready_worker(process_factory, settings, "second")
    samples = wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 2)
    samples = wait_for_metric(settings.worker_web_port, 'preempt_events_skipped_total{reason="retention"}', 5)
    assert samples['preempt_events_skipped_total{reason="retention"}'] == 5
    assert samples['preempt_events_skipped_total{reason="offset_moved"}'] == 0
    assert samples['preempt_events_total{outcome="accepted"}'] == 2
    assert "records deleted by retention before a worker read them" in second.log_text()


def test_partitions_whose_unread_records_retention_deleted_are_not_reported_stalled(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Events published while the workers were stopped and deleted by retention, then nothing more: the restarted
    worker counts them (retention) once and, as nothing is left to read, stays ready. Before, the group's
    offset stayed below the log start (lag, no progress): every partition was reported stalled (``/readyz``
    503, PreemptPartitionStalled) and an ERROR ``records deleted … lost`` came again at every watchdog sample
    until new events arrived on the partition."""
    settings = settings_factory(
        rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port(), partition_stall_seconds=4
    )
    names = _events_deleted_while_stopped(kafka_bootstrap, settings, process_factory, producer)
    second = ready_worker(process_factory, settings, "second")
    wait_for_metric(settings.worker_web_port, 'preempt_events_skipped_total{reason="retention"}', 8)
    time.sleep(4 + 12)  # the stall time, then several watchdog samples

    status, body = readyz(settings.worker_web_port)
    assert status == 200, body
    samples = wait_for_metric(settings.worker_web_port, 'preempt_events_skipped_total{reason="retention"}', 8)
    assert samples['preempt_events_skipped_total{reason="retention"}'] == 8
    assert metric_sum(samples, "preempt_partition_stalls_total") == 0
    assert "partition stalled" not in second.log_text()
    assert "before the worker read them: lost" not in second.log_text()
    # The deleted offsets are behind the group's offset for good: commits go past them, on busy partitions too.
    publish_crates(producer, names.events, [f"tide-{i}" for i in range(12)])
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 12)
    assert committed_to_end(kafka_bootstrap, names.events, f"{settings.topic_prefix}-rules", timeout_s=30) == {}


def test_commits_go_past_records_retention_deleted_on_a_partition_that_gets_new_events(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Events deleted by retention while the workers were stopped, new events right after the restart: the group
    commits every partition to its end. Before, the deleted offsets were never acked, Faust commits only up to
    the first offset not acked, and the group's offset stayed below the log start for good: the lag grew with
    every event (PreemptConsumerLagGrowing), and every restart read the partition again from there."""
    settings = settings_factory(rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port())
    names = _events_deleted_while_stopped(kafka_bootstrap, settings, process_factory, producer)
    ready_worker(process_factory, settings, "second")
    publish_crates(producer, names.events, [f"tide-{i}" for i in range(12)])
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 12)
    assert committed_to_end(kafka_bootstrap, names.events, f"{settings.topic_prefix}-rules", timeout_s=30) == {}


def _events_deleted_while_stopped(
    bootstrap: str, settings: Settings, process_factory: Callable[..., ManagedProcess], producer: KafkaProducer
) -> TopicNames:
    """A worker evaluates 8 events and stops; 8 more are published and deleted (retention) before any worker runs."""
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    first = ready_worker(process_factory, settings, "first")
    publish_crates(producer, names.events, [f"reef-{i}" for i in range(8)])
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 8)
    first.stop()
    publish_crates(producer, names.events, [f"sand-{i}" for i in range(8)], event="Sand Shifted")
    delete_records_to_end(bootstrap, names.events)
    return names


def committed_to_end(bootstrap: str, topic: str, group: str, timeout_s: float) -> dict[int, tuple[int | None, int]]:
    """Wait (bounded) until ``group`` has committed every partition of ``topic`` to its end; {} when it has,
    else each partition's (committed, end) at the deadline (a test asserts the empty dict)."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        deadline = time.monotonic() + timeout_s
        while True:
            ends = consumer.end_offsets(parts)
            behind = {
                tp.partition: (consumer.committed(tp), ends[tp]) for tp in parts if consumer.committed(tp) != ends[tp]
            }
            if not behind or time.monotonic() > deadline:
                return behind
            time.sleep(1)
    finally:
        consumer.close()


def delete_records_to_end(bootstrap: str, topic: str) -> None:
    """Delete every record of ``topic`` (Kafka's retention, on demand: kafka-delete-records.sh)."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap])
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        admin.delete_records({tp: offset for tp, offset in ends.items() if offset})
    finally:
        admin.close()
        consumer.close()


def test_a_notifier_on_an_alerts_topic_made_with_another_partition_count_refuses_with_one_line(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """The alerts topic made beforehand with 6 partitions, PREEMPT_TOPIC_PARTITIONS 4: the notifier stops at
    start with the setting to use, and makes no changelog with the wrong count. Before, it made its
    tables' changelogs with 4 partitions and ran on 6 (its tables no longer co-partitioned with alerts)."""
    settings = settings_factory(notifier_web_port=free_port())
    names = TopicNames.from_settings(settings)
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    try:
        admin.create_topics([NewTopic(names.alerts, 6, 1)])
    finally:
        admin.close()
    notifier = process_factory(["preempt", "notifier"], settings, name="notifier")
    line = exit_line(notifier, timeout_s=60)
    assert line == (
        f"Error: topic {names.alerts} has 6 partitions but PREEMPT_TOPIC_PARTITIONS is 4: set "
        "PREEMPT_TOPIC_PARTITIONS=6 for this deployment (the count is fixed when the topics are created; "
        "docs/pipeline.md, Sizing partitions and workers)"
    )
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    try:
        assert not [t for t in admin.list_topics() if t.startswith(f"{settings.topic_prefix}-notify-")]
    finally:
        admin.close()


def test_the_events_topic_deleted_under_a_running_worker_makes_it_not_ready_until_it_is_back(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """The events topic deleted while the worker runs: /readyz 503 naming the topic, one ERROR line; the
    topic made again: ready, and an event published then is evaluated. Before, /readyz said ready
    ("0 partitions assigned"), as for a healthy standby."""
    settings, names, worker = ready_watching_worker(settings_factory, process_factory, tmp_path)

    delete_topic(kafka_bootstrap, names.events)
    wait_readyz(settings.worker_web_port, 503, f"topic {names.events} does not exist (deleted?)")
    assert worker.log_text().count("events topic missing; not ready until it is back") == 1

    ensure_topics(settings)
    wait_readyz(settings.worker_web_port, 200)
    publish_crates(producer, names.events, ["quay-1"])
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 1)
    assert worker.proc.poll() is None


def test_partitions_added_to_the_alerts_topic_stop_a_running_notifier(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """Alerts topic altered from 4 to 6 partitions under a running notifier: at its next metadata refresh it
    stops (status 1) with a CRITICAL line naming both counts (its delivery log and snoozes are no longer
    co-partitioned with the alerts). Before, it went on."""
    settings = settings_factory(notifier_web_port=free_port(), metadata_max_age_seconds=3)
    names = TopicNames.from_settings(settings)
    notifier = process_factory(["preempt", "notifier"], settings, name="notifier")
    wait_readyz(settings.notifier_web_port, 200, timeout_s=90)
    _add_partitions(kafka_bootstrap, names.alerts, 6)
    exit_line(notifier, timeout_s=60)
    assert "partition count changed; stopping the notifier" in notifier.log_text()
    assert f"topic {names.alerts} has 6 partitions but the state built from it has 4" in notifier.log_text()


def test_records_the_broker_refuses_as_too_large_leave_no_unretrieved_future_in_the_worker_log(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Alerts refused by the alerts topic and dead letters refused by the dead-letter topic (both with a small
    max.message.bytes), in a worker that collects garbage often (``PREEMPT_WORKER_GC_THRESHOLD=0``): the
    alerts are dead-lettered, the oversize event's letter is written cut, and no asyncio "exception was never
    retrieved" is logged. Before, ``Topic.send`` kept each refused record's ``FutureMessage`` (failed too) to
    itself and the collector's sweep logged one per refused record, with a traceback."""
    settings = settings_factory(
        rules_path=crate_rules(tmp_path, "Walk the customer through it. " * 100),
        worker_web_port=free_port(),
        worker_gc_threshold=0,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    _set_topic_config(kafka_bootstrap, names.alerts, **{"max.message.bytes": "2500"})
    _set_topic_config(kafka_bootstrap, names.events_dlq, **{"max.message.bytes": "3000"})
    worker = ready_worker(process_factory, settings, "worker")
    oversize = {"event_id": "big", "event": "Crate Dropped", "account_id": "cut-0", "timestamp": format_ts(time.time())}
    producer.send(
        names.events, key=b"cut-0", value=json.dumps({**oversize, "properties": {"b": "x" * 40_000}}).encode()
    )
    producer.flush()
    publish_crates(producer, names.events, [f"cut-{i}" for i in range(1, 4)])
    wait_for_metric(settings.worker_web_port, 'preempt_events_dead_lettered_total{reason="alert_too_large"}', 3)
    for wave in range(3):  # more work after the refusals: the collector runs many times meanwhile
        publish_crates(producer, names.events, [f"more-{wave}-{i}" for i in range(20)], event="Crate Opened")
    wait_for_metric(settings.worker_web_port, 'preempt_events_total{outcome="accepted"}', 63, timeout_s=60)
    time.sleep(2)

    letters = consume_records(kafka_bootstrap, names.events_dlq, 4, timeout_s=30, idle_s=1.0)
    assert Counter(dict(r.headers)[REASON].decode() for r in letters) == {"too_large": 1, "alert_too_large": 3}
    (cut,) = [r for r in letters if dict(r.headers)[REASON] == b"too_large"]
    assert TRUNCATED in dict(cut.headers)
    assert worker.proc.poll() is None, worker.log_text()[-3000:]
    assert worker.log_text().count("dead letter too large for the dead-letter topic; written cut") == 1
    assert "never retrieved" not in worker.log_text()
    assert "Traceback" not in worker.log_text()
