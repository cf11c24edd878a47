"""``preempt publish --file`` when the broker dies mid-run: how many records got through, in one line.

Runs its own broker (tests/integration/own_broker.py), SIGKILLs it once the first records of a
large file are on the topic, and starts it again to check the count against the topic.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from kafka import KafkaConsumer, TopicPartition

from streams.runtime.settings import Settings
from streams.runtime.testing import settings_env
from streams.runtime.topics import TopicNames
from tests.integration.own_broker import OwnBroker

EVENTS = 200_000  # far more than kafka-python sends in the moments between the first record and the kill
REPO = Path(__file__).resolve().parents[2]


def _records_on(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], request_timeout_ms=5_000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        consumer.close()


def test_a_broker_killed_mid_file_ends_with_how_many_records_kafka_did_not_acknowledge(
    own_broker: OwnBroker, tmp_path: Path
) -> None:
    """The broker is SIGKILLed while a file is being published: the command ended with the KafkaTimeoutError
    of the final flush as "cannot reach Kafka", saying nothing of what got through; it ends, as `preempt
    simulate` does, with one line "Kafka did not acknowledge N of the M records sent", exit 2 (docs/events.md),
    and the records Kafka did acknowledge are on the topic when the broker is back."""
    settings = Settings(broker=f"kafka://{own_broker.bootstrap}", topic_prefix=f"t{uuid.uuid4().hex[:10]}")
    topic = TopicNames.from_settings(settings).events
    path = tmp_path / "events.jsonl"
    with path.open("wb") as out:
        for i in range(EVENTS):
            event = {
                "event_id": f"e{i}",
                "event": "Login",
                "account_id": f"a{i % 50}",
                "timestamp": "2026-11-23T06:00:00Z",
            }
            out.write(orjson.dumps(event) + b"\n")

    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(REPO)}
    command = [str(Path(sys.executable).parent / "preempt"), "publish", "--file", str(path)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if _records_on(own_broker.bootstrap, topic) > 0:  # 0 while the command creates the topic
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the publish ended before the broker was killed"
        own_broker.kill()
        stdout, stderr = proc.communicate(timeout=180)

    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    counts = re.fullmatch(
        r"Error: Kafka did not acknowledge (\d+) of the (\d+) records sent \((\d+) refused, the rest not in time\); "
        r"check that the broker is up, then run the command again",
        last,
    )
    assert counts is not None, stderr
    unacknowledged, sent = int(counts[1]), int(counts[2])
    assert 0 < unacknowledged <= sent <= EVENTS, last
    assert stdout == ""

    own_broker.start()
    assert _records_on(own_broker.bootstrap, topic) >= sent - unacknowledged
