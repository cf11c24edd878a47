"""Records the broker accepts but the consumer once could not unpack must not stop the rules worker or
the notifier (issue 10: no single record may take a worker down): a header key that is not UTF-8
(Kafka stores whatever bytes a client sends), and batches compressed with zstd, snappy or lz4.

Before, the error escaped Faust's fetcher while it unpacked the fetch: the worker crashed, and
crashed again on the same record after every restart.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records

RULES = """
rules:
  - id: ping
    kind: any
    title: "Ping from {{ account.name }}"
    severity: low
    priority: 5
    match: {event: Ping}
"""


class NotUtf8Key(str):
    """A header key kafka-python writes as bytes that are not UTF-8 (as other clients may send)."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe-trace"


def _ping(account: str) -> bytes:
    body = {"event_id": uuid.uuid4().hex, "event": "Ping", "account_id": account}
    return json.dumps(body | {"timestamp": format_ts(time.time())}).encode()


def _delivered(notifier: ManagedProcess) -> set[str]:
    found: set[str] = set()
    for line in notifier.log_text().splitlines():
        if '"alert delivered"' in line:
            found.add(json.loads(line)["alert_id"])
    return found


def test_records_with_a_header_key_that_is_not_utf8_are_read_by_worker_and_notifier(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """An event with such a header key, then good ones: the worker stays up and alerts on all of them;
    an alert with such a header key on the alerts topic is delivered by the notifier like the others."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    settings = settings_factory(
        topic_partitions=2,
        rules_path=rules,
        worker_web_port=free_port(),
        notifier_web_port=free_port(),
        event_time_only=False,
        allowed_lateness_seconds=1.0,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    notifier = process_factory(["preempt", "notifier"], settings, name="notifier")
    worker.wait_for_log("rules worker ready", timeout_s=180)
    notifier.wait_for_log("notifier ready", timeout_s=180)

    bad_header = [(NotUtf8Key("trace"), b"t-1"), ("content-type", b"application/json")]
    producer.send(names.events, key=b"hdr-0", value=_ping("hdr-0"), headers=bad_header).get(timeout=30)
    for i in range(1, 4):
        producer.send(names.events, key=f"hdr-{i}".encode(), value=_ping(f"hdr-{i}")).get(timeout=30)
    alerts = consume_records(kafka_bootstrap, names.alerts, expected=4, timeout_s=90)
    assert sorted(json.loads(a.value)["account_id"] for a in alerts) == ["hdr-0", "hdr-1", "hdr-2", "hdr-3"]

    poisoned = json.loads(alerts[0].value) | {"alert_id": uuid.uuid4().hex}
    producer.send(
        names.alerts, key=poisoned["account_id"].encode(), value=json.dumps(poisoned).encode(), headers=bad_header
    ).get(timeout=30)
    expected = {json.loads(a.value)["alert_id"] for a in alerts} | {poisoned["alert_id"]}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not expected <= _delivered(notifier):
        assert notifier.proc.poll() is None, notifier.log_text()[-3000:]
        time.sleep(0.5)
    assert expected <= _delivered(notifier)
    assert worker.proc.poll() is None
    assert notifier.proc.poll() is None
    assert "record header key is not UTF-8" in worker.log_text()


def test_batches_other_clients_compress_with_zstd_snappy_or_lz4_are_read(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """Events in zstd-, snappy-, lz4- and gzip-compressed batches (what Java and librdkafka producers
    often send) all alert: before cramjam was installed a zstd batch crashed the worker's fetcher
    ("Libraries for zstd compression codec not found"), and again after every restart."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    settings = settings_factory(
        topic_partitions=2, rules_path=rules, worker_web_port=free_port(), event_time_only=False
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=180)

    codecs = ("zstd", "snappy", "lz4", "gzip")

    async def publish() -> None:
        for codec in codecs:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, compression_type=codec, linger_ms=50)
            await producer.start()
            try:
                sent = [
                    await producer.send(names.events, key=f"{codec}-{i}".encode(), value=_ping(f"{codec}-{i}"))
                    for i in range(3)
                ]
                await asyncio.gather(*sent)
            finally:
                await producer.stop()

    asyncio.run(publish())
    alerts = consume_records(kafka_bootstrap, names.alerts, expected=12, timeout_s=90)
    assert sorted(json.loads(a.value)["account_id"] for a in alerts) == sorted(
        f"{codec}-{i}" for codec in codecs for i in range(3)
    )
    assert worker.proc.poll() is None
