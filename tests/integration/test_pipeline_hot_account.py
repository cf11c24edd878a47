"""A client stuck in a retry loop: one account sends ten thousand failing API calls in a few seconds
to a LIVE rules worker. Its alert goes out and its state is not quarantined (issue 10, bounded state)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from schemas.event import format_ts
from streams.runtime.dead_letters import REASON
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import metric_sum, scrape

RULES = """
rules:
  - id: api-failing
    kind: threshold
    title: "{{ account.name }}: API calls are failing"
    severity: high
    priority: 1
    match: {event: API Request, where: {properties.status: {gte: 500}}}
    window: 1h
    measure: count
    min: 50
    cooldown: 6h
  - id: ping
    kind: any
    title: "Ping from {{ account.name }}"
    severity: low
    priority: 5
    match: {event: Ping}
"""
BURST = 10_000


def _event(account: str, name: str, **properties: object) -> bytes:
    body = {"event_id": uuid.uuid4().hex, "event": name, "account_id": account, "timestamp": format_ts(time.time())}
    return json.dumps(body | ({"properties": properties} if properties else {})).encode()


def test_an_account_flooding_the_worker_gets_its_alert_and_keeps_its_state(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """10,000 failing calls of one account within the allowed lateness: the threshold alert is emitted,
    the account is not quarantined (its buffered events outgrew the state limit: quarantined, the
    alert was lost), the early evaluation is counted, and another account's event still alerts."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    port = free_port()
    settings = settings_factory(event_time_only=False, rules_path=rules, worker_web_port=port)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    account = {"account_id": "stuck-co", "name": "Stuck Co"}
    producer.send(names.accounts, key=b"stuck-co", value=json.dumps(account).encode())
    producer.flush()
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=120)

    for i in range(BURST):
        value = _event(
            "stuck-co",
            "API Request",
            status=503,
            endpoint="/v1/orders/sync",
            method="POST",
            error="upstream request timeout while syncing the order batch",
            attempt=i,
        )
        producer.send(names.events, key=b"stuck-co", value=value)
    producer.send(names.events, key=b"calm-co", value=_event("calm-co", "Ping"))
    producer.flush()

    alerts = consume_records(kafka_bootstrap, names.alerts, 2, timeout_s=60, idle_s=3.0)
    assert sorted((json.loads(r.value)["rule_id"], json.loads(r.value)["account_id"]) for r in alerts) == [
        ("api-failing", "stuck-co"),
        ("ping", "calm-co"),
    ]
    letters = consume_records(kafka_bootstrap, names.events_dlq, 0, timeout_s=3, idle_s=2.0)
    assert [dict(r.headers)[REASON] for r in letters] == []
    metrics = scrape(port)
    assert metrics.get('preempt_events_total{outcome="accepted"}') == BURST + 1
    assert metric_sum(metrics, "preempt_accounts_quarantined_total") == 0
    assert metrics.get("preempt_events_evaluated_early_total", 0.0) > 0
    assert worker.proc.poll() is None
