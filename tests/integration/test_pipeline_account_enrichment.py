"""Enrichment from the compacted accounts topic on a live worker: no record, a record arriving after
its events, updated mid-stream, deleted (tombstone), malformed — the worker stays up throughout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from schemas.event import format_ts
from streams.runtime.dead_letters import DETAIL, REASON, SOURCE_OFFSET, SOURCE_TOPIC
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import metric_sum, scrape

RULES = """
rules:
  - id: widget-broke
    kind: any
    title: "{{ account.name }}: a widget broke"
    severity: high
    priority: 1
    match: {event: Widget Broken}
    playbook: "Ask {{ account.owner.name }} to call"
    labels: {team: cs}
"""

# §6 of DESIGN.md: every alert carries these, whether or not its account has a record
ALERT_FIELDS = {
    "alert_id", "rule_id", "kind", "title", "severity", "priority", "account_id", "user_id", "account",
    "fired_at", "emitted_at", "window", "evidence", "playbook", "labels",
}  # fmt: skip


def _event(event_id: str, account_id: str) -> bytes:
    now = format_ts(time.time())
    body = {"event_id": event_id, "event": "Widget Broken", "account_id": account_id, "timestamp": now}
    return json.dumps(body).encode()


def _dead_letters(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    out = []
    for record in consume_records(bootstrap, topic, expected, timeout_s=60):
        headers = {k: v.decode() for k, v in record.headers}
        out.append({"key": record.key, "value": record.value, **headers})
    return out


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_account_records_missing_late_updated_deleted_and_malformed(
    store: str,
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Malformed account records are dead-lettered (reason ``invalid_account``) and counted as they
    arrive, also for accounts that never alert; alerts follow the latest record; an account without
    one gets every contract field; the worker stays up and creates only topics under its prefix."""
    rules = tmp_path / "widgets.yaml"
    rules.write_text(RULES)
    port = free_port()
    settings = settings_factory(
        event_time_only=False,
        rules_path=rules,
        allowed_lateness_seconds=1.0,
        clock_tick_seconds=0.5,
        worker_web_port=port,
        store=store,
    )
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    before = set(admin.list_topics())
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    # two unreadable records already on the topic when the worker starts (read at recovery)
    producer.send(names.accounts, key=b"garbled-co", value=b"\xff{not json")
    producer.send(names.accounts, key=b"wrong-co", value=json.dumps({"account_id": "wrong-co", "mrr": "lots"}).encode())
    producer.flush()
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    # and one arriving live
    producer.send(names.accounts, key=b"broken-co", value=b'{"account_id": "broken-co", "owner": ')
    producer.flush()

    letters = _dead_letters(kafka_bootstrap, names.events_dlq, 3)
    assert sorted(letter["key"] for letter in letters) == [b"broken-co", b"garbled-co", b"wrong-co"]
    for letter in letters:
        assert letter[REASON] == "invalid_account"
        assert letter[SOURCE_TOPIC] == names.accounts
        assert int(letter[SOURCE_OFFSET]) >= 0
    assert "mrr" in next(x for x in letters if x["key"] == b"wrong-co")[DETAIL]
    assert next(x for x in letters if x["key"] == b"garbled-co")["value"] == b"\xff{not json"  # original bytes
    metrics = scrape(port)
    assert metric_sum(metrics, "preempt_invalid_account_records_total") == 3
    assert metrics['preempt_events_dead_lettered_total{reason="invalid_account"}'] == 3

    seen: dict[str, dict[str, Any]] = {}
    sent = 0

    def alert_for(account_id: str) -> dict[str, Any]:
        """Send one event of ``account_id``; its alert."""
        nonlocal sent
        event_id = f"e-{sent}"
        sent += 1
        producer.send(names.events, key=account_id.encode(), value=_event(event_id, account_id))
        producer.flush()
        for record in consume_records(kafka_bootstrap, names.alerts, sent, timeout_s=60):
            alert = json.loads(record.value)
            for sample in alert["evidence"]["sample_event_ids"]:
                seen[sample] = alert
        return seen[event_id]

    def eventually(account_id: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Alerts of ``account_id`` until one passes ``check`` (the accounts topic is read asynchronously)."""
        for _ in range(20):
            alert = alert_for(account_id)
            if check(alert):
                return alert
        raise AssertionError(f"no alert of {account_id} passed the check; last: {alert}")

    # no record at all: every contract field, the id standing in for the name
    alert = alert_for("nobody-co")
    assert set(alert) >= ALERT_FIELDS
    assert {"name", "tier", "owner", "links"} <= set(alert["account"])
    assert alert["title"] == "nobody-co: a widget broke"
    # a malformed record: the alert goes out, without context
    assert alert_for("garbled-co")["account"]["name"] is None

    # the record arrives after the account's first alert, then changes, then is deleted, then is malformed
    assert alert_for("late-co")["account"]["name"] is None
    record = {"account_id": "late-co", "name": "Late Co", "tier": "growth", "owner": {"name": "Ann"}}
    producer.send(names.accounts, key=b"late-co", value=json.dumps(record).encode())
    alert = eventually("late-co", lambda a: a["account"]["name"] == "Late Co")
    assert (alert["title"], alert["playbook"], alert["account"]["owner"]) == (
        "Late Co: a widget broke",
        "Ask Ann to call",
        {"name": "Ann"},
    )
    producer.send(names.accounts, key=b"late-co", value=json.dumps({**record, "owner": {"name": "Bob"}}).encode())
    assert eventually("late-co", lambda a: a["account"]["owner"] == {"name": "Bob"})["account"]["tier"] == "growth"
    producer.send(names.accounts, key=b"late-co", value=None)
    eventually("late-co", lambda a: a["account"]["name"] is None and a["title"] == "late-co: a widget broke")
    producer.send(names.accounts, key=b"late-co", value=b"[1, 2")
    producer.flush()
    assert len(_dead_letters(kafka_bootstrap, names.events_dlq, 4)) == 4
    assert alert_for("late-co")["account"]["name"] is None

    assert worker.proc.poll() is None, "the worker must stay up"
    made = set(admin.list_topics()) - before
    admin.close()
    assert made, "the worker made its topics"
    assert all(topic.startswith(settings.topic_prefix) for topic in made), sorted(made)


def test_invalid_account_records_are_dead_lettered_once_across_restarts(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """A worker that reads the accounts topic from its start again (the ``memory://`` store after a
    restart) does not dead-letter the bad records already dead-lettered: each once, one written while
    it was down included (before: every restart wrote all of them again)."""
    rules = tmp_path / "widgets.yaml"
    rules.write_text(RULES)
    port = free_port()
    settings = settings_factory(rules_path=rules, worker_web_port=port, store="memory://")
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    bad = [f"bad-{n}".encode() for n in range(6)]  # spread over the 4 partitions
    for key in bad[:4]:
        producer.send(names.accounts, key=key, value=b"{not json")
    producer.flush()
    worker = process_factory(["preempt", "worker"], settings, name="worker-1")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    assert len(_dead_letters(kafka_bootstrap, names.events_dlq, 4)) == 4
    worker.stop()
    producer.send(names.accounts, key=bad[4], value=b"{not json")  # while no worker runs
    producer.flush()
    again = process_factory(["preempt", "worker"], settings, name="worker-2")
    again.wait_for_log("rules worker ready", timeout_s=90)
    producer.send(names.accounts, key=bad[5], value=b"{not json")  # live, after the restart
    producer.flush()

    records = consume_records(kafka_bootstrap, names.events_dlq, 6, timeout_s=60, idle_s=8)
    keys = sorted(record.key for record in records)
    assert keys == sorted(bad), keys
    metrics = scrape(port)
    assert metric_sum(metrics, "preempt_invalid_account_records_total") == 2
    assert metrics['preempt_events_dead_lettered_total{reason="invalid_account"}'] == 2
