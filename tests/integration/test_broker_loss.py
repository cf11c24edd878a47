"""The broker goes away under a live rules worker and notifier, then comes back (issue 7 probes, issue 10).

Runs its own PLAINTEXT broker (``deploy/kafka/kafka.sh`` in a temporary directory, ports 194xx),
kills it with SIGKILL, and checks what the on-call engineer sees: ``/readyz`` 503 naming the
broker, ``/healthz`` still 200 (a restart would not help), ``preempt_broker_reachable`` and
``preempt_ready`` at 0, a log of JSON lines only and not a flood; then the broker returns, both
processes are ready again without a restart and the worker alerts on a new event.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port, metric_sum, scrape
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.own_broker import OwnBroker

RULES = """
rules:
  - id: ping
    kind: any
    title: "Ping from {{ account.name }}"
    severity: low
    priority: 5
    match: {event: Ping}
"""
UNREACHABLE_AFTER_S = 5.0
OUTAGE_GRACE_S = 10.0  # the worker's clock waits this long after the outage (60 s by default)


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _wait_for_readyz(port: int, status: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if _get(port, "/readyz")[0] == status:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what}: /readyz {status} not seen within {timeout_s}s")


def _ping(producer: KafkaProducer, topic: str, account: str, at: float | None = None) -> None:
    stamp = format_ts(time.time() if at is None else at)
    value = {"event_id": uuid.uuid4().hex, "event": "Ping", "account_id": account, "timestamp": stamp}
    producer.send(topic, key=account.encode(), value=json.dumps(value).encode()).get(timeout=30)


def test_a_lost_broker_is_reported_on_readyz_and_both_processes_resume_when_it_returns(
    own_broker: OwnBroker,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """SIGKILL of the broker: worker and notifier answer /readyz 503 "broker unreachable" (healthz 200),
    export it, log JSON lines only, and a few dozen of them rather than thousands; once the broker is
    back they are ready again without a restart and a new event alerts. Events stamped during the
    outage and delivered after it, behind that fresh event (what producers buffered), are not late:
    the worker's clock waits ``clock_outage_grace_seconds`` for them, and they alert too (before,
    the fresh event or the first fetch answer moved the clock past them and all were dropped)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    settings = settings_factory(
        broker=f"kafka://{own_broker.bootstrap}",
        topic_partitions=2,
        rules_path=rules,
        worker_web_port=free_port(),
        notifier_web_port=free_port(),
        broker_unreachable_seconds=UNREACHABLE_AFTER_S,
        clock_outage_grace_seconds=OUTAGE_GRACE_S,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    notifier = process_factory(["preempt", "notifier"], settings, name="notifier")
    worker.wait_for_log("rules worker ready", timeout_s=180)
    ports = {"worker": settings.worker_web_port, "notifier": settings.notifier_web_port}
    for port in ports.values():
        _wait_for_readyz(port, 200, 180, "ready before the broker goes")

    own_broker.kill()
    killed_at = time.monotonic()
    killed_at_wall = time.time()
    for name, port in ports.items():
        _wait_for_readyz(port, 503, 60, f"{name} without a broker")
        status, body = _get(port, "/readyz")
        assert status == 503, (name, body)
        assert body["reason"].startswith("broker unreachable: no broker answered for"), (name, body)
        assert own_broker.bootstrap in body["reason"], (name, body)
        assert _get(port, "/healthz") == (200, {"status": "alive", "app": body["app"]})
        samples = scrape(port)
        assert metric_sum(samples, "preempt_broker_reachable") == 0, name
        assert metric_sum(samples, "preempt_ready") == 0, name
    time.sleep(max(0.0, 20.0 - (time.monotonic() - killed_at)))  # 20 s without a broker in all
    for proc in (worker, notifier):
        lines = [line for line in proc.log_text().splitlines() if line.strip()]
        not_json = [line for line in lines if not line.startswith("{")]
        assert not not_json, not_json[:5]
        for line in lines:
            json.loads(line)
        # Before: aiokafka's own errors, ~150 lines a second while the broker was away.
        assert len(lines) < 300, len(lines)
        assert any(json.loads(line).get("repeated") for line in lines), "held-back repeats are counted"
    assert worker.proc.poll() is None
    assert notifier.proc.poll() is None

    own_broker.start()
    for name, port in ports.items():
        _wait_for_readyz(port, 200, 180, f"{name} once the broker is back")
        assert metric_sum(scrape(port), "preempt_broker_reachable") == 1, name
    producer = KafkaProducer(bootstrap_servers=[own_broker.bootstrap], acks="all")
    buffered = [f"acct-during-outage-{i}" for i in range(5)]
    try:
        _ping(producer, names.events, "acct-after-outage")
        for i, account in enumerate(buffered):  # stamped 2-10 s into the outage, delivered now
            _ping(producer, names.events, account, at=killed_at_wall + 2 + 2 * i)
    finally:
        producer.close()
    alerts = consume_records(own_broker.bootstrap, names.alerts, expected=6, timeout_s=120)
    assert sorted(json.loads(r.value)["account_id"] for r in alerts) == sorted(["acct-after-outage", *buffered])
    assert metric_sum(scrape(settings.worker_web_port), "preempt_late_events_total") == 0
    assert "broker reachable again" in worker.log_text()
    assert "the broker did not answer fetches for longer than the allowed lateness" in worker.log_text()
