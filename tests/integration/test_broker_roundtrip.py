"""The foundation: records published with kafka-python go through a Faust agent and come back."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from streams.runtime.testing import free_port
from tests.integration.conftest import REPO, ManagedProcess, consume_records


def test_events_flow_through_a_faust_agent(
    kafka_bootstrap: str, producer: KafkaProducer, process_factory: Callable[..., ManagedProcess], tmp_path: Path
) -> None:
    """50 records produced by kafka-python are transformed by a Faust agent and read back in order per key."""
    run = uuid.uuid4().hex[:8]
    topic_in, topic_out = f"echo-in-{run}", f"echo-out-{run}"
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    admin.create_topics([NewTopic(t, 2, 1) for t in (topic_in, topic_out)])
    admin.close()

    web_port = ["--web-port", str(free_port())]
    worker = process_factory(
        # Faust's worker command opens its web port even with web_enabled=False: a free one, not 6066,
        # which any other Faust worker on the machine may hold
        [sys.executable, "-m", "faust", "-A", "tests.integration.echo_app", "worker", "-l", "info", *web_port],
        name="echo",
        ECHO_APP_ID=f"echo-{run}",
        ECHO_BROKER=f"kafka://{kafka_bootstrap}",
        ECHO_IN=topic_in,
        ECHO_OUT=topic_out,
        ECHO_DATADIR=str(tmp_path / "echo-data"),
        PYTHONPATH=str(REPO),
    )
    worker.wait_for_log("Worker ready", timeout_s=90)

    for i in range(50):
        producer.send(topic_in, key=f"acct-{i % 5}".encode(), value=f"event-{i}".encode())
    producer.flush()

    records = consume_records(kafka_bootstrap, topic_out, expected=50, timeout_s=60, idle_s=1.0)
    assert len(records) == 50
    by_key: dict[bytes, list[bytes]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(r.value)
    assert sorted(by_key) == [f"acct-{k}".encode() for k in range(5)]
    for k, values in by_key.items():
        n = int(k.decode().split("-")[1])
        expected = [f"EVENT-{i}#{j + 1}".encode() for j, i in enumerate(range(n, 50, 5))]
        assert values == expected
