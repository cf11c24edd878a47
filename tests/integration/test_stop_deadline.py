"""A graceful stop that cannot finish ends the process with an ERROR line (streams/runtime/stop_deadline.py).

Reproduced live before the deadline: ``preempt.events.dlq`` deleted, then a record that is not JSON;
the worker's output waits behind the dead letter it cannot write, and after SIGTERM the worker was
still running 61 s later (the notifier over 2 minutes, on ``preempt.alerts.dlq``), until the topic
existed again. Kubernetes' SIGKILL after 60 s ended it without a word in the log."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer

from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess
from tests.integration.pipeline_support import wait_for_metric

STOP_TIMEOUT_S = 25.0  # the smallest PREEMPT_STOP_TIMEOUT_SECONDS accepted
GAVE_UP = "graceful stop did not finish; exiting without it"


def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], client_id="stop-deadline-test")
    try:
        admin.delete_topics([topic], timeout_ms=30_000)
        deadline = time.monotonic() + 30
        while topic in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert topic not in admin.list_topics(), f"{topic} still listed 30 s after its deletion"
    finally:
        admin.close()


def _exit_within(proc: ManagedProcess, timeout_s: float) -> tuple[int | None, float]:
    """SIGTERM the process group; its exit status (None: still running) and how long it took."""
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    try:
        status: int | None = proc.proc.wait(timeout=timeout_s)
    except Exception:
        status = None
    return status, time.monotonic() - started


def _log_lines(proc: ManagedProcess) -> list[dict[str, Any]]:
    lines = []
    for line in proc.log_text().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def _assert_stops_at_the_deadline(proc: ManagedProcess) -> None:
    """SIGTERM ``proc``, stuck behind its dead letter: it exits at the deadline, status 1, one ERROR line."""
    status, took = _exit_within(proc, timeout_s=STOP_TIMEOUT_S + 40)
    assert status is not None, f"still running {took:.0f} s after SIGTERM:\n{proc.log_text()[-3000:]}"
    gave_up = [line for line in _log_lines(proc) if line.get("event") == GAVE_UP]
    assert status == 1, proc.log_text()[-3000:]
    assert len(gave_up) == 1, proc.log_text()[-3000:]
    assert gave_up[0]["level"] == "error"
    assert gave_up[0]["seconds"] == STOP_TIMEOUT_S
    assert took < STOP_TIMEOUT_S + 30, took


def test_a_worker_stuck_behind_a_deleted_dead_letter_topic_stops_at_its_deadline(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
) -> None:
    settings = settings_factory(worker_web_port=free_port(), stop_timeout_seconds=STOP_TIMEOUT_S)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=90)

    _delete_topic(kafka_bootstrap, names.events_dlq)
    for n in range(4):  # one a partition, whichever the key lands on
        producer.send(names.events, key=f"acct-{n}".encode(), value=b"this is not JSON {")
    producer.flush()
    wait_for_metric(settings.worker_web_port, "preempt_events_total", 4, timeout_s=60)
    time.sleep(2)  # the dead letters are with the producer, waiting for a topic that is gone

    _assert_stops_at_the_deadline(worker)


def test_a_notifier_stuck_behind_a_deleted_dead_letter_topic_stops_at_its_deadline(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
) -> None:
    settings = settings_factory(notifier_web_port=free_port(), stop_timeout_seconds=STOP_TIMEOUT_S)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    notifier = process_factory(["preempt", "notifier"], settings, name="notifier")
    notifier.wait_for_log("notifier ready", timeout_s=90)

    _delete_topic(kafka_bootstrap, names.alerts_dlq)
    producer.send(names.alerts, key=b"acct-1", value=b"this is not an alert")
    producer.flush()
    notifier.wait_for_log("undecodable alert dead-lettered", timeout_s=60)
    time.sleep(2)  # the dead letter is with the producer, waiting for a topic that is gone

    _assert_stops_at_the_deadline(notifier)
