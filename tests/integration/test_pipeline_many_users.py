"""An account with 20,000 distinct users through a LIVE rules worker: it keeps being evaluated.

Its per-user rule used to keep every user in the account's one state record (about 83 bytes a user
for an ``inactivity`` rule): past about 10,000 users the record outgrew ``PREEMPT_MAX_STATE_BYTES`` and
the whole account was quarantined, again and again, so its alerts were lost. Now a per-user rule
tracks at most ``MAX_USER_KEYS`` users of an account (counted beyond it), the account's other rules go
on, every changelog record stays far under Kafka's 1 MiB limit, and the backtest gives the same alerts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from rules.kinds.base import MAX_USER_KEYS
from schemas.event import format_ts
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from streams.worker.state_cache import DEFAULT_MAX_STATE_BYTES
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import backtest_alert_ids, metric_sum, scrape

USERS = 20_000
T0 = 1_793_750_400.0  # 2026-11-02T00:00:00Z, a Monday
RULES = """
rules:
  - id: user-quiet
    kind: inactivity
    title: "{{ user.id }} has gone quiet"
    severity: high
    priority: 1
    group_by: user
    match: {event: Login}
    after: 1h
  - id: many-active-users
    kind: threshold
    title: "{{ account.name }}: {{ evidence.value | int }} active users in an hour"
    severity: low
    priority: 2
    match: {event: Login}
    measure: distinct:user_id
    window: 1h
    min: 500
  - id: ping
    kind: any
    title: "Ping from {{ account.name }}"
    severity: low
    priority: 3
    match: {event: Ping}
"""


def _line(i: int, name: str, ts: float, user: str | None) -> bytes:
    body = {"event_id": f"ev-{i:08d}", "event": name, "account_id": "big-co", "timestamp": format_ts(ts)}
    return json.dumps(body | ({"user_id": user} if user else {})).encode()


def test_an_account_with_20000_users_is_evaluated_without_quarantine(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """20,000 users log in within 2,000 s, then the account pings 3 h later: the per-user rule alerts for the
    first MAX_USER_KEYS users it tracks and counts the others' events, the account-level rules alert, nothing
    is quarantined, every state record stays far under the worker's limit (the hour's 20,000 distinct users are
    counted by sketches: listed, they took 660 KB), and the backtest gives the same ids."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    port = free_port()
    settings = settings_factory(event_time_only=True, rules_path=rules, worker_web_port=port)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    lines = [_line(i, "Login", T0 + i * 0.1, f"user-{i:025d}") for i in range(USERS)]
    lines.append(_line(USERS, "Ping", T0 + 3 * 3600, None))
    lines.append(_line(USERS + 1, "Tick", T0 + 3 * 3600 + 60, None))  # moves the event-time clock past the ping
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")

    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=120)
    for value in lines:
        producer.send(names.events, key=b"big-co", value=value)
    producer.flush()

    expected = MAX_USER_KEYS + 2
    records = consume_records(kafka_bootstrap, names.alerts, expected, timeout_s=60, idle_s=2)
    alerts = [json.loads(r.value) for r in records]
    assert Counter(a["rule_id"] for a in alerts) == {"user-quiet": MAX_USER_KEYS, "many-active-users": 1, "ping": 1}
    quiet = sorted(a["user_id"] for a in alerts if a["rule_id"] == "user-quiet")
    assert quiet == [f"user-{i:025d}" for i in range(MAX_USER_KEYS)]  # the users it tracked, the first ones
    metrics = scrape(port)
    assert metric_sum(metrics, "preempt_accounts_quarantined_total") == 0
    assert metrics.get('preempt_user_events_not_tracked_total{rule="user-quiet"}') == USERS - MAX_USER_KEYS
    changelog = f"{settings.topic_prefix}-rules-account-state-changelog"
    sizes = [len(r.value or b"") for r in consume_records(kafka_bootstrap, changelog, 1, timeout_s=30, idle_s=2)]
    assert sizes
    assert max(sizes) < DEFAULT_MAX_STATE_BYTES // 2  # about 300 KB: far under the limit, not just under it
    assert worker.proc.poll() is None

    assert {a["alert_id"] for a in alerts} == backtest_alert_ids(events, None, tmp_path / "backtest.jsonl", rules)
