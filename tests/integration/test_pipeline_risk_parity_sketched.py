"""Parity of the ``risk`` kind for big accounts: days past their exact user list (sketch days) alert alike.

``rules.risk.features`` lists a day's users exactly up to 256 of them while the account's user table has
room (2,048 ids); past either bound the day becomes a *sketch day* (a HyperLogLog sketch and a hash sample
of its users), and the per-user features read the samples. Here some accounts have such days — every day
(320 users a day), a few burst days (700 users on a day among 40-user days), or a table filled by 3,000
rotating users (150 a day, none past 256 on a day) — and the stream worker, restarted in the middle of the
history (its states come back from the changelog), must give the backtest's alert ids with the same evidence.

Run it with ``PYTHONPATH`` set to the checkout when the virtualenv's editable install points at another one:
the worker and the backtest are ``preempt`` subprocesses, which import the installed package.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from rules.risk.features import MAX_KNOWN_USERS, MAX_USERS_PER_DAY
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port, metric_sum
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import append_heartbeats, backtest_alert_ids, publish_lines, wait_for_metric
from tests.unit.rules.risk_support import write_model

START = datetime(2026, 8, 3, tzinfo=UTC)
DAYS = 63
FADE_FROM = 42
"""From this day on every account's use fades (a few churn entirely): the risk rule fires."""
RISK_RULE = """\
id: big-churn-risk
kind: risk
title: "{{ account.name }}: churn risk {{ evidence.value }}"
severity: high
priority: 1
model: ../models/churn.json
threshold: 0.3
hysteresis: 0.1
warmup: 7d
cooldown: 3d
top_features: 5
"""
# per-user and distinct-user features weigh most, so the sketch days' estimates decide the alerts and their words
COEF = {
    "days_since_last_event": 0.4,
    "activity_vs_baseline": -0.6,
    "active_users_vs_baseline": -1.5,
    "active_users_trend_4w": -1.2,
    "baseline_users_retained": -2.5,
    "top_user_days_away": 0.15,
}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _day_users(rng: random.Random, kind: str, pool: list[str], day: int) -> list[str]:
    """The users of one account active on ``day``."""
    level = 1.0 if day < FADE_FROM else max(0.1, 1 - (day - FADE_FROM) / 14)
    if kind == "steady":  # every day a sketch day
        count = round(320 * level)
    elif kind == "burst":  # 40 users a day, and twice 700 (most of them new) on one day
        if day in (12, 47):
            return rng.sample(pool[:40], 30) + [f"{pool[0]}-x{day}-{i}" for i in range(670)]
        count = round(40 * level)
        return rng.sample(pool[:50], count)
    elif kind == "wide":  # never 256 on a day, but more users than the table holds
        count = round(150 * level)
    else:
        count = round(rng.randint(3, 8) * level)
    return rng.sample(pool, min(count, len(pool)))


def _history(out: Path, seed: int) -> tuple[Path, Path]:
    """Events (time-ordered) and account records: three big accounts of three kinds, and small ones."""
    rng = random.Random(seed)
    kinds = {"big-steady": "steady", "big-burst": "burst", "big-wide": "wide"}
    kinds |= {f"small-{i:02d}": "small" for i in range(8)}
    pools = {"steady": 400, "burst": 50, "wide": 3_000, "small": 10}
    events: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for account, kind in kinds.items():
        records.append({"account_id": account, "name": account.replace("-", " ").title()})
        pool = [f"{account}-u{j}" for j in range(pools[kind])]
        stop = DAYS if kind != "small" or rng.random() < 0.5 else rng.randint(FADE_FROM, DAYS - 7)
        for day in range(stop):
            for n, user in enumerate(_day_users(rng, kind, pool, day)):
                at = START + timedelta(days=day, seconds=rng.randrange(86400))
                events.append(
                    {
                        "event_id": f"{account}-{day}-{n}",
                        "event": "Login",
                        "account_id": account,
                        "user_id": user,
                        "timestamp": _stamp(at),
                    }
                )
    events.sort(key=lambda e: (str(e["timestamp"]), str(e["event_id"])))
    events_path, accounts_path = out / "events.jsonl", out / "accounts.jsonl"
    events_path.write_text("".join(json.dumps(e) + "\n" for e in events))
    accounts_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return events_path, accounts_path


def _backtest(rules: Path, events: Path, accounts: Path, out: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """The backtest's alerts by id: account and evidence."""
    backtest_alert_ids(events, accounts, out, rules)
    return _by_id([json.loads(line) for line in out.read_bytes().splitlines() if line.strip()])


def _by_id(alerts: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {a["alert_id"]: (a["account_id"], a["evidence"]) for a in alerts}


def _rules(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    write_model(tmp_path / "models" / "churn.json", COEF, intercept=-1.0)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "risk.yaml").write_text(RISK_RULE)
    return rules


def test_the_history_has_sketch_days_of_each_cause(tmp_path: Path) -> None:
    """The accounts below do what the parity test needs of them (checked on the file, without Kafka)."""
    events, _ = _history(tmp_path, seed=41)
    per_day: dict[tuple[str, str], set[str]] = {}
    per_account: dict[str, set[str]] = {}
    for line in events.read_bytes().splitlines():
        event = json.loads(line)
        per_day.setdefault((event["account_id"], event["timestamp"][:10]), set()).add(event["user_id"])
        per_account.setdefault(event["account_id"], set()).add(event["user_id"])
    busy = Counter(account for (account, _), users in per_day.items() if len(users) > MAX_USERS_PER_DAY)
    assert busy["big-steady"] >= FADE_FROM
    assert busy["big-burst"] == 2
    assert busy["big-wide"] == 0
    assert len(per_account["big-wide"]) > MAX_KNOWN_USERS


def test_sketch_days_alert_alike_in_stream_and_backtest_across_a_restart(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Half the history, a graceful restart, the other half: the backtest's risk alert ids, each once, with the
    same evidence (risk, reasons, contributions), the big accounts' among them; the worker counted sketch days."""
    rules = _rules(tmp_path)
    port = free_port()
    settings = settings_factory(event_time_only=True, worker_web_port=port, rules_path=rules)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    events, accounts = _history(tmp_path, seed=41)
    lines = events.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    half = len(lines) // 2
    first.write_bytes(b"".join(lines[:half]))
    second.write_bytes(b"".join(lines[half:]))
    append_heartbeats(events, settings.topic_partitions)
    append_heartbeats(second, settings.topic_partitions)
    expected = _backtest(rules, events, accounts, tmp_path / "backtest.jsonl")
    big = Counter(account for account, _ in expected.values() if account.startswith("big-"))
    assert len(expected) >= 5, "the risk rule must fire for the comparison to mean anything"
    assert len(big) == 3, f"the risk rule must fire for each big account: {big}"
    estimated = [r for _, e in expected.values() for r in e["reasons"] if r.endswith("(estimated)")]
    assert len(estimated) >= 3, "the evidence must carry the sketch days' estimates for the comparison to cover them"

    publish_lines(producer, names.accounts, accounts)
    sent = publish_lines(producer, names.events, first)
    worker = process_factory(["preempt", "worker"], settings, name="worker-1")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    wait_for_metric(port, "preempt_events_total", sent, timeout_s=300)
    scraped = wait_for_metric(port, "preempt_risk_days_sketched_total", 1, timeout_s=30)
    assert metric_sum(scraped, "preempt_risk_days_sketched_total") >= FADE_FROM // 2
    worker.stop()
    assert worker.proc.returncode == 0, worker.log_text()[-3000:]

    sent = publish_lines(producer, names.events, second)
    worker = process_factory(["preempt", "worker"], settings, name="worker-2")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    wait_for_metric(port, "preempt_events_total", sent, timeout_s=300)
    records = consume_records(kafka_bootstrap, names.alerts, len(expected), timeout_s=120, idle_s=3.0)
    got = [json.loads(r.value) for r in records]
    assert [a for a, n in Counter(a["alert_id"] for a in got).items() if n > 1] == []
    assert _by_id(got) == expected
    log = worker.log_text()
    assert "rule state restarted" not in log
    assert "quarantin" not in log
