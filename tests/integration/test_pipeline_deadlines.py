"""Deadlines: inactivity and absence rules fire from the worker's clock timer with no further events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import metric_sum, scrape

SHORT_RULES = """
rules:
  - id: went-quiet
    kind: inactivity
    title: "{{ account.name }} went quiet"
    severity: high
    priority: 1
    match: {event: Login}
    after: 3s
    playbook: "Call {{ account.owner.name }}"
  - id: setup-stalled
    kind: absence
    title: "{{ account.name }} did not finish setup"
    severity: medium
    priority: 2
    start: {event: Setup Started}
    expect: {event: Setup Completed}
    within: 3s
    playbook: "Offer a setup call"
"""


def _event(event_id: str, name: str, account_id: str, age_s: float = 0.0) -> bytes:
    body = {
        "event_id": event_id,
        "event": name,
        "account_id": account_id,
        "timestamp": format_ts(time.time() - age_s),
    }
    return json.dumps(body).encode()


def test_inactivity_and_absence_fire_from_the_timer_in_live_mode(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """One Login and one Setup Started, then silence: both deadline rules alert, enriched with the account."""
    rules = tmp_path / "short.yaml"
    rules.write_text(SHORT_RULES)
    settings = settings_factory(
        event_time_only=False,
        rules_path=rules,
        allowed_lateness_seconds=1.0,
        clock_tick_seconds=0.5,
        worker_web_port=free_port(),
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    for account_id, name in (("quiet-co", "Quiet Co"), ("stall-co", "Stall Co")):
        account = {"account_id": account_id, "name": name, "owner": {"name": "Dana"}}
        producer.send(names.accounts, key=account_id.encode(), value=json.dumps(account).encode())
    producer.flush()
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=90)

    producer.send(names.events, key=b"quiet-co", value=_event("e-1", "Login", "quiet-co"))
    producer.send(names.events, key=b"stall-co", value=_event("e-2", "Setup Started", "stall-co"))
    producer.flush()

    records = consume_records(kafka_bootstrap, names.alerts, 2, timeout_s=30, idle_s=1.0)
    alerts = {json.loads(r.value)["rule_id"]: json.loads(r.value) for r in records}
    assert set(alerts) == {"went-quiet", "setup-stalled"}
    assert alerts["went-quiet"]["account_id"] == "quiet-co"
    assert alerts["went-quiet"]["account"]["name"] == "Quiet Co"
    assert alerts["went-quiet"]["playbook"] == "Call Dana"
    assert alerts["setup-stalled"]["account_id"] == "stall-co"


def test_a_backlog_written_while_no_worker_ran_is_evaluated_not_dropped_as_late(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Events that waited in Kafka two minutes (far beyond the 1 s lateness) while no live worker ran
    are evaluated when one starts: none is counted late, and the deadlines they started fire."""
    rules = tmp_path / "short.yaml"
    rules.write_text(SHORT_RULES)
    port = free_port()
    settings = settings_factory(
        event_time_only=False,
        rules_path=rules,
        allowed_lateness_seconds=1.0,
        clock_tick_seconds=0.5,
        worker_web_port=port,
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    producer.send(names.events, key=b"quiet-co", value=_event("b-1", "Login", "quiet-co", age_s=120))
    producer.send(names.events, key=b"stall-co", value=_event("b-2", "Setup Started", "stall-co", age_s=119))
    producer.flush()

    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    records = consume_records(kafka_bootstrap, names.alerts, 2, timeout_s=30, idle_s=1.0)
    assert {json.loads(r.value)["rule_id"] for r in records} == {"went-quiet", "setup-stalled"}
    metrics = scrape(port)
    assert metrics.get('preempt_events_total{outcome="accepted"}') == 2
    assert metrics.get('preempt_events_total{outcome="late"}', 0.0) == 0
    assert metric_sum(metrics, "preempt_late_events_total") == 0
