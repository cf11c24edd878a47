"""Parity for a ``risk`` model that ``preempt train`` learned from a product unlike the simulator's.

``test_pipeline_risk_parity.py`` scores a hand-set model over the simulator's event names. Here an
invoicing product ("Invoice Sent", "Report Exported", "Seat Added", "Support Ticket Opened" with a
nested ``ticket`` object; its outcomes announced as "Contract Ended" / "Contract Extended") is trained
on with ``preempt train``, and the stream worker and ``preempt backtest`` must give the same alert ids
for the rule using it.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafka import KafkaProducer

from streams.runtime.settings import Settings
from streams.runtime.testing import free_port, metric_sum
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import (
    PREEMPT,
    alert_ids,
    append_heartbeats,
    count_lines,
    publish_lines,
    stream_final_clock,
    wait_for_metric,
)

START = datetime(2026, 9, 7, tzinfo=UTC)
OUTCOME_OPTIONS = ["--outcome-event", "Contract Ended=churned", "--outcome-event", "Contract Extended=renewed"]
RISK_RULE = """\
id: ledger-churn-risk
kind: risk
title: "{{ account.name }}: churn risk {{ evidence.value }}"
severity: high
priority: 1
model: ../models/ledger.json
threshold: 0.35
hysteresis: 0.1
warmup: 7d
cooldown: 10d
"""


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _event(
    account: str, user: str, name: str, at: datetime, number: int, props: dict[str, object] | None
) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": f"{account}-{number}",
        "event": name,
        "account_id": account,
        "user_id": user,
        "timestamp": _stamp(at),
    }
    if props:
        event["properties"] = props
    return event


def _account_days(
    rng: random.Random, account: str, users: list[str], days: int
) -> tuple[list[dict[str, object]], int | None]:
    """One account's usage, and the day it churns (None: it stays); a churner's use fades for 15-25 days first."""
    fade = rng.randint(20, days - 25) if rng.random() < 0.45 else None
    churn_day = None if fade is None else fade + rng.randint(15, 25)
    out: list[dict[str, object]] = []
    for day in range(churn_day if churn_day is not None else days):
        level = 1.0 if fade is None or day <= fade else max(0.05, 1 - (day - fade) / 15)
        planned: list[tuple[str, dict[str, object] | None]] = []
        planned += [("Report Exported", {"format": rng.choice(["pdf", "xlsx"])})] * rng.randint(0, round(5 * level))
        planned += [("Invoice Sent", {"amount": rng.randint(50, 5000)})] * rng.randint(0, round(3 * level))
        if rng.random() < 0.04:
            planned.append(("Seat Added", None))
        if rng.random() < (0.02 if level > 0.5 else 0.15):
            # nested, as tracking SDKs send objects: the terms Support Ticket Opened[ticket.priority=high] and
            # the numeric property Support Ticket Opened.ticket.sla.hours
            ticket = {"priority": rng.choice(["low", "high"]), "sla": {"hours": 4 + len(out) % 21}}
            planned.append(("Support Ticket Opened", {"ticket": ticket}))
        for name, props in planned:
            at = START + timedelta(days=day, seconds=rng.randrange(86400))
            out.append(_event(account, rng.choice(users), name, at, len(out), props))
    return out, churn_day


def _invoicing_history(out: Path, seed: int, accounts: int, days: int) -> tuple[Path, Path]:
    """Events (time-ordered) and account records of an invoicing product: churners' use fades, then they leave."""
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    records: list[dict[str, object]] = []
    for i in range(accounts):
        account = f"ledger-{seed}-{i:03d}"
        users = [f"{account}-u{j}" for j in range(rng.randint(2, 5))]
        renewal = START + timedelta(days=rng.randint(days // 2, days + 30))
        records.append(
            {
                "account_id": account,
                "name": f"Ledger Customer {i}",
                "tier": rng.choice(["team", "business"]),
                "plan": rng.choice(["monthly", "annual"]),
                "mrr": rng.choice([300.0, 900.0, 2400.0]),
                "seats": len(users) + 2,
                "customer_since": "2026-03-01",
                "renewal_date": renewal.date().isoformat(),
                "owner": {"name": ["Ines Moreau", "Kofi Mensah"][i % 2], "email": f"owner{i % 2}@example.org"},
                "timezone": "Europe/Paris",
            }
        )
        usage, churn_day = _account_days(rng, account, users, days)
        events += usage
        at = renewal if churn_day is None else START + timedelta(days=churn_day, hours=14)
        if at < START + timedelta(days=days):  # the outcome falls within the history: announced as an event
            name = "Contract Extended" if churn_day is None else "Contract Ended"
            events.append(
                {"event_id": f"{account}-outcome", "event": name, "account_id": account, "timestamp": _stamp(at)}
            )
    events.sort(key=lambda e: (str(e["timestamp"]), str(e["event_id"])))
    events_path, accounts_path = out / "events.jsonl", out / "accounts.jsonl"
    events_path.write_text("".join(json.dumps(e) + "\n" for e in events))
    accounts_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return events_path, accounts_path


def _backtest(rules: Path, events: Path, accounts: Path, out: Path) -> set[str]:
    subprocess.run(
        [
            PREEMPT,
            "backtest",
            "--rules",
            str(rules),
            "--events",
            str(events),
            "--accounts",
            str(accounts),
            "--until",
            stream_final_clock(events),
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return {json.loads(line)["alert_id"] for line in out.read_bytes().splitlines() if line.strip()}


def _trained_rule(tmp_path: Path) -> tuple[Path, Callable[..., set[str]], set[str]]:
    """A rules folder whose risk rule uses a model trained on an invoicing history; a function retraining it on the
    same history with more options; the model's event names."""
    training = tmp_path / "training"
    training.mkdir()
    train_events, train_accounts = _invoicing_history(training, seed=31, accounts=40, days=120)
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "ledger.json"
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "risk.yaml").write_text(RISK_RULE)

    def retrain(*extra: str) -> set[str]:
        return _train(train_events, train_accounts, model, *extra)

    return rules, retrain, retrain()


def test_a_model_trained_on_another_products_events_alerts_alike_in_stream_and_backtest(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """`preempt train` on one invoicing history (no simulator event name), then another history of the same
    product through Kafka and one worker yields exactly the backtest's risk alert ids."""
    rules, _, terms = _trained_rule(tmp_path)
    assert terms == {"Report Exported", "Invoice Sent", "Seat Added", "Support Ticket Opened"}
    model = json.loads((tmp_path / "models" / "ledger.json").read_bytes())
    weights = dict(zip(model["features"], model["coef"], strict=True))
    nested = [
        "count28:Support Ticket Opened[ticket.priority=high]",
        "min28:Support Ticket Opened.ticket.sla.hours",
        "last:Support Ticket Opened.ticket.sla.hours",
    ]
    assert all(weights.get(name) for name in nested), "the model must weigh the nested properties"

    port = free_port()
    settings = settings_factory(event_time_only=True, worker_web_port=port, rules_path=rules)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    live = tmp_path / "live"
    live.mkdir()
    events, accounts = _invoicing_history(live, seed=32, accounts=30, days=60)
    append_heartbeats(events, settings.topic_partitions)
    expected = _backtest(rules, events, accounts, tmp_path / "backtest.jsonl")
    assert len(expected) >= 5, "the risk rule must fire for the comparison to mean anything"

    publish_lines(producer, names.accounts, accounts)
    total = publish_lines(producer, names.events, events)
    assert total == count_lines(events)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=90)

    wait_for_metric(port, "preempt_events_total", total, timeout_s=240)
    records = consume_records(kafka_bootstrap, names.alerts, len(expected), timeout_s=90, idle_s=3.0)
    got = alert_ids(records)
    assert set(got) == expected
    assert [a for a, n in Counter(got).items() if n > 1] == []
    reasons = [reason for r in records for reason in json.loads(r.value)["evidence"]["reasons"]]
    assert reasons


def _train(events: Path, accounts: Path, model: Path, *extra: str) -> set[str]:
    """`preempt train` on the invoicing history; the model's event names."""
    subprocess.run(
        [
            PREEMPT,
            "train",
            "--events",
            str(events),
            "--accounts",
            str(accounts),
            "--output",
            str(model),
            *OUTCOME_OPTIONS,
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    return {term["event"] for term in json.loads(model.read_bytes())["feature_spec"]["terms"]}


def test_risk_parity_holds_across_a_worker_restart_and_a_retrained_model_with_other_terms_is_said(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """Half the live history, a graceful restart, the other half: the backtest's alert ids, each once (the risk
    state comes back from the changelog). Then the model is replaced by one retrained without "Seat Added" (another
    vocabulary) and the worker restarted: every account's risk features start afresh, which the worker used to do
    without a word; it now logs it at WARNING and counts it."""
    rules, retrain, terms = _trained_rule(tmp_path)
    assert "Seat Added" in terms

    port = free_port()
    settings = settings_factory(event_time_only=True, worker_web_port=port, rules_path=rules)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    live = tmp_path / "live"
    live.mkdir()
    events, accounts = _invoicing_history(live, seed=32, accounts=30, days=60)
    lines = events.read_bytes().splitlines(keepends=True)
    first, second = live / "first.jsonl", live / "second.jsonl"
    first.write_bytes(b"".join(lines[: len(lines) // 2]))
    second.write_bytes(b"".join(lines[len(lines) // 2 :]))
    append_heartbeats(events, settings.topic_partitions)
    append_heartbeats(second, settings.topic_partitions)
    expected = _backtest(rules, events, accounts, tmp_path / "backtest.jsonl")
    assert len(expected) >= 5, "the risk rule must fire for the comparison to mean anything"

    publish_lines(producer, names.accounts, accounts)
    sent = publish_lines(producer, names.events, first)
    worker = process_factory(["preempt", "worker"], settings, name="worker-1")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    wait_for_metric(port, "preempt_events_total", sent, timeout_s=240)
    worker.stop()
    assert worker.proc.returncode == 0, worker.log_text()[-3000:]

    sent = publish_lines(producer, names.events, second)
    worker = process_factory(["preempt", "worker"], settings, name="worker-2")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    wait_for_metric(port, "preempt_events_total", sent, timeout_s=240)
    records = consume_records(kafka_bootstrap, names.alerts, len(expected), timeout_s=90, idle_s=3.0)
    got = alert_ids(records)
    assert set(got) == expected
    assert [a for a, n in Counter(got).items() if n > 1] == []
    assert "rule state restarted" not in worker.log_text()
    worker.stop()

    assert "Seat Added" not in retrain("--exclude-event", "Seat Added")
    later = live / "later.jsonl"  # one more event a day after the history for every account
    newest = max(json.loads(line)["timestamp"] for line in lines)
    at = datetime.fromisoformat(newest.replace("Z", "+00:00")) + timedelta(days=1)
    ids = sorted({json.loads(line)["account_id"] for line in lines})
    later.write_text("".join(json.dumps(_event(a, f"{a}-u0", "Report Exported", at, 10**6, None)) + "\n" for a in ids))
    append_heartbeats(later, settings.topic_partitions)
    sent = publish_lines(producer, names.events, later)
    worker = process_factory(["preempt", "worker"], settings, name="worker-3")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    wait_for_metric(port, "preempt_events_total", sent, timeout_s=120)
    scraped = wait_for_metric(port, "preempt_rule_states_restarted_total", 1, timeout_s=60)
    restarted = metric_sum(scraped, "preempt_rule_states_restarted_total")
    assert restarted >= len(ids) / 2
    worker.wait_for_log("rule state restarted", timeout_s=30)
    warned = [line for line in worker.log_text().splitlines() if "rule state restarted" in line]
    assert len(warned) == 1
    assert '"level": "warning"' in warned[0]
    assert "ledger-churn-risk" in warned[0]
