"""Black-box parity on a made-up product (tests/integration/ledger_scenario.py): every rule kind but
``risk`` over other accounts and event names, through a live worker and a live notifier.

``preempt backtest`` must give the alerts worked out by hand from docs/rules.md; the worker on the real
broker the same alert ids, once each; the notifier one Slack message and one email per alert, in words
(no ``None``, no template syntax of ours, the account's name said once in a subject).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from alerts.testing.slack_server import FakeSlack, slack_server  # noqa: F401
from alerts.testing.smtp_server import FakeSMTP, smtp_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from streams.simulate.heartbeats import heartbeat_keys
from tests.integration import ledger_scenario as ledger
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.notifier_harness import start_notifier, wait_for_records, write_routes
from tests.integration.pipeline_support import (
    PREEMPT,
    alert_ids,
    count_lines,
    metric_sum,
    publish_lines,
    scrape,
    wait_for_metric,
)

ROUTES = """
receivers:
  - name: ledger-cs
    slack_configs:
      - channel: C-LEDGER
    email_configs:
      - to: cs-ops@ledgerly.example
route: {receiver: ledger-cs, group_by: [alert_id], group_wait: 0s}
"""


def _heartbeats(events: Path, partitions: int) -> None:
    # Every partition's clock must pass --until (a worker's clock stands allowed_lateness behind its newest event).
    until = datetime.fromisoformat(ledger.UNTIL.replace("Z", "+00:00"))
    stamp = (until + timedelta(seconds=5)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with events.open("a", encoding="utf-8") as fh:
        for key in heartbeat_keys(partitions):
            beat = {"event_id": f"heartbeat-{key}", "event": "Heartbeat", "account_id": key, "timestamp": stamp}
            fh.write(json.dumps(beat) + "\n")


def _values(alerts: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    """``evidence.value`` of the alerts ``ledger.EXPECTED_VALUES`` names."""
    found = {(str(a["rule_id"]), str(a["account_id"]), str(a["fired_at"])): a["evidence"]["value"] for a in alerts}
    return {key: found[key] for key in ledger.EXPECTED_VALUES if key in found}


def _shown_texts(node: object) -> list[str]:
    """Every text a person reads in a Slack payload (the ``text`` of the message and of its blocks)."""
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        return found + [t for value in node.values() for t in _shown_texts(value)]
    if isinstance(node, list):
        return [t for value in node for t in _shown_texts(value)]
    return []


def _backtest(rules: Path, events: Path, accounts: Path, out: Path, partitions: int) -> list[dict[str, Any]]:
    subprocess.run([PREEMPT, "rules", "check", str(rules)], check=True, capture_output=True)  # its templates too
    args = ["backtest", "--rules", str(rules), "--events", str(events), "--accounts", str(accounts)]
    args += ["--until", ledger.UNTIL, "--partitions", str(partitions), "--output", str(out)]
    subprocess.run([PREEMPT, *args], check=True, capture_output=True)
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_made_up_products_rules_alert_the_same_live_as_in_the_backtest(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    slack_server: FakeSlack,  # noqa: F811
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    rules, events, accounts = ledger.write(tmp_path)
    port = free_port()
    settings = settings_factory(
        event_time_only=True,
        rules_path=rules,
        worker_web_port=port,
        routes_path=write_routes(tmp_path, ROUTES),
        notifier_web_port=free_port(),
        slack_api_url=slack_server.api_url,
        slack_bot_token="xoxb-test-token",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        delivery_retry_initial_seconds=0.2,
        delivery_retry_max_seconds=1.0,
    )
    _heartbeats(events, settings.topic_partitions)
    backtest = _backtest(rules, events, accounts, tmp_path / "backtest.jsonl", settings.topic_partitions)
    got_backtest = [(a["fired_at"], a["rule_id"], a["account_id"], a["user_id"]) for a in backtest]
    assert sorted(got_backtest, key=str) == sorted(ledger.EXPECTED, key=str)
    expected = {str(a["alert_id"]) for a in backtest}
    assert _values(backtest) == ledger.EXPECTED_VALUES

    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    publish_lines(producer, names.accounts, accounts)
    total = publish_lines(producer, names.events, events)
    assert total == count_lines(events)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=120)
    notifier = start_notifier(process_factory, settings)

    wait_for_metric(port, "preempt_events_total", total, timeout_s=180)
    records = consume_records(kafka_bootstrap, names.alerts, len(expected), timeout_s=90, idle_s=3.0)
    got = alert_ids(records)
    assert set(got) == expected
    assert [a for a, n in Counter(got).items() if n > 1] == []
    assert _values([json.loads(r.value) for r in records]) == ledger.EXPECTED_VALUES
    metrics = scrape(port)
    assert metric_sum(metrics, "preempt_duplicate_events_total") == 1
    assert metric_sum(metrics, "preempt_late_events_total") == 1

    wait_for_records(notifier, "alert delivered", 2 * len(expected), timeout_s=120)
    messages = slack_server.wait_for(len(expected), target="C-LEDGER")
    assert len(messages) == len(expected)
    mails = smtp_server.wait_for(len(expected))
    assert len(mails) == len(expected)
    texts = [t for m in messages for t in _shown_texts(m.body)]
    texts += [str(m.message["Subject"]) for m in mails]
    texts += [m.message.get_body(("plain",)).get_content() for m in mails]  # type: ignore[union-attr]
    for text in texts:
        for leak in ("None", "True", "False", "{%", "[]", "{}", "nan", "e-0", "0000000001"):
            assert leak not in text, (leak, text[:300])
    subjects = sorted(str(m.message["Subject"]) for m in mails)
    assert "[CRITICAL] Ålesund Fiskeri AS is at risk: fewer invoicers and a detractor" in subjects
    assert "[CRITICAL] acct-ünknown removed seats, then downgraded" in subjects
    assert "[HIGH] Ålesund Fiskeri AS: 3 failed exports in 10 minutes" in subjects
