"""The publisher SDK and `preempt publish --file` against the real broker: every event arrives, keyed by account."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from schemas.errors import PublishError
from streams.runtime.settings import Settings
from streams.runtime.testing import settings_env
from streams.runtime.topics import TopicNames
from streams.sdk.publisher import Publisher
from tests.integration.conftest import consume_records


def test_threads_sharing_a_publisher_deliver_every_event_keyed_by_account(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings]
) -> None:
    """Four threads tracking 250 events each deliver 1,000 distinct events, one partition per account."""
    settings = settings_factory()
    ids: list[str] = []
    lock = threading.Lock()
    with Publisher.from_settings(settings, linger_ms=20) as publisher:

        def work(n: int) -> None:
            for i in range(250):
                event_id = publisher.track(f"acct-{(n * 250 + i) % 20}", "Report Exported", properties={"i": i})
                with lock:
                    ids.append(event_id)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        publisher.flush(timeout=30)

    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 1000, timeout_s=60, idle_s=1)
    bodies = [orjson.loads(r.value) for r in records]
    assert sorted(b["event_id"] for b in bodies) == sorted(ids)
    assert all(r.key == b["account_id"].encode() for r, b in zip(records, bodies, strict=True))
    assert all(("content-type", b"application/json") in list(r.headers) for r in records)
    partitions: dict[bytes, set[int]] = {}
    for r in records:
        partitions.setdefault(r.key, set()).add(r.partition)
    assert len(partitions) == 20
    assert all(len(p) == 1 for p in partitions.values())


def test_publish_file_sends_valid_lines_and_reports_bad_ones(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """`preempt publish --file` delivers the 30 valid lines, names the 2 bad ones by line number, exits 1."""
    settings = settings_factory()
    lines = [
        orjson.dumps(
            {"event_id": f"e{i}", "event": "Login", "account_id": f"a{i % 3}", "timestamp": "2026-11-23T06:00:00Z"}
        )
        for i in range(30)
    ]
    lines.insert(10, b'{"event_id": "x", "event": "Login"}')
    lines.insert(20, b"not json")
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    done = subprocess.run(
        [str(Path(sys.executable).parent / "preempt"), "publish", "--file", str(path)],
        env=settings_env(settings) | {"PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    # Diagnostics go to stderr (like `events validate`), so stdout stays the command's result.
    assert f"{path}:11: missing_field (account_id): account_id is required" in done.stderr
    assert f"{path}:21: invalid_json: " in done.stderr
    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 30, timeout_s=60, idle_s=1)
    assert sorted(r.value for r in records) == sorted(line for line in lines if line.startswith(b'{"event_id":"e'))


def test_sending_to_a_topic_that_does_not_exist_says_so(kafka_bootstrap: str, topic_prefix: str) -> None:
    """The broker does not create topics: a Publisher pointed at a missing topic raises PublishError that
    asks whether the topic exists and says who creates it, not only kafka-python's metadata timeout."""
    publisher = Publisher(bootstrap_servers=kafka_bootstrap, topic=f"{topic_prefix}.events", max_block_ms=2_000)
    try:
        with pytest.raises(PublishError, match="Does the topic exist") as caught:
            publisher.track("acme", "Login")
        assert "preempt worker" in str(caught.value)
        assert publisher.sent == 0
    finally:
        publisher.close(timeout=5)
