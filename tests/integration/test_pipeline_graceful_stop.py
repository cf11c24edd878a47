"""A graceful stop (SIGTERM) writes the states the worker holds, so its last commit covers every processed event."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kafka import KafkaProducer

from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from streams.worker.app import app_id
from tests.integration.conftest import ManagedProcess
from tests.integration.pipeline_support import wait_for_metric
from tests.integration.restart_stress import committed_and_ends, publish_chunk


def _events(first: int, count: int, accounts: int) -> list[bytes]:
    """``count`` events stamped now (accepted live, so they change the accounts' states)."""
    now = format_ts(time.time())
    return [
        json.dumps(
            {
                "event_id": f"stop-{n}",
                "event": "Report Exported",
                "account_id": f"acct-{n % accounts}",
                "timestamp": now,
            }
        ).encode()
        for n in range(first, first + count)
    ]


def test_sigterm_writes_the_held_states_and_commits_every_processed_offset(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
) -> None:
    """With a 30 s state write interval the second publish's states and acks are held; SIGTERM
    writes them before Faust stops, so the group's committed offsets reach the end offsets."""
    settings = settings_factory(worker_web_port=free_port(), worker_state_write_interval_seconds=30.0)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=90)

    publish_chunk(producer, names.events, _events(0, 40, accounts=8))  # the first batch writes at once
    wait_for_metric(settings.worker_web_port, "preempt_events_total", 40, timeout_s=60)
    publish_chunk(producer, names.events, _events(40, 40, accounts=8))  # held: the interval has not passed
    wait_for_metric(settings.worker_web_port, "preempt_events_total", 80, timeout_s=60)
    group = app_id(settings)
    before = committed_and_ends(kafka_bootstrap, group, names.events, settings.topic_partitions)
    assert sum(end for _, end in before.values()) == 80
    assert sum(committed for committed, _ in before.values()) < 80  # the held batches are not acked

    worker.stop()  # SIGTERM
    assert worker.proc.returncode == 0, worker.log_text()[-4000:]
    assert "held states written before stopping" in worker.log_text()
    after = committed_and_ends(kafka_bootstrap, group, names.events, settings.topic_partitions)
    assert {p: committed for p, (committed, _) in after.items()} == {p: end for p, (_, end) in after.items()}
