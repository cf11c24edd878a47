"""In-place upgrade and rollback: an older release's worker and notifier stopped, the current code started on the
same topics, offsets, changelogs and RocksDB folders (and the other way round); every alert of the whole history
is sent once.

The release is pinned (``PINNED``, main at the end of the session of 2026-12-02) and unpacked from its
``git archive`` in tests/integration/fixtures/ (checked against the clone's history where it has the commit).
For an audit, ``PREEMPT_UPGRADE_FROM=<commit>`` runs another release and ``PREEMPT_UPGRADE_STOP=sigterm``
stops the old processes gracefully instead of with SIGKILL (docs/operations.md, Upgrades and rollbacks, has
the figures of each).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer

from alerts.testing.slack_server import FakeSlack, slack_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port, metric_sum, scrape
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import (
    alert_ids,
    backtest_alert_ids,
    count_lines,
    publish_lines,
    simulated_history,
    wait_for_metric,
)
from tests.integration.upgrade_support import (
    ROUTES,
    SlackCount,
    checkout,
    code_env,
    current_env,
    log_problems,
    preempt_command,
    seconds_to_ready,
)

PINNED = os.environ.get("PREEMPT_UPGRADE_FROM", "24480d8cd40823c76d01b9700618fceb5b5cf5be")
STOP = os.environ.get("PREEMPT_UPGRADE_STOP", "sigkill")


def _slack_caught_up(slack: FakeSlack, ids: set[str], timeout_s: float) -> SlackCount:
    deadline = time.monotonic() + timeout_s
    count = SlackCount.of(slack, ids)
    while set(count.per_alert) != ids and time.monotonic() < deadline:
        time.sleep(0.3)
        count = SlackCount.of(slack, ids)
    return count


@dataclass(frozen=True)
class HandOver:
    """What one deployment handed to the next: alert ids of each half, Slack messages, the successor's figures."""

    expected: set[str]
    before: set[str]
    got: set[str]
    sent: SlackCount
    worker_ready: float
    notifier_ready: float
    worker_metrics: dict[str, float]
    notifier_metrics: dict[str, float]
    dead_letters: int
    problems: list[str]

    def line(self, what: str) -> str:
        """The figures in one line, for the test's output."""
        return (
            f"\n[{what}] alerts before {len(self.before)}, after {len(self.got - self.before)}, expected "
            f"{len(self.expected)}, lost {len(self.expected - self.got)}, extra {len(self.got - self.expected)}, "
            f"slack messages {sum(self.sent.per_alert.values())}, duplicates {self.sent.duplicates}, "
            f"dead letters {self.dead_letters}, states restarted "
            f"{metric_sum(self.worker_metrics, 'preempt_rule_states_restarted_total'):g}, quarantined "
            f"{metric_sum(self.worker_metrics, 'preempt_accounts_quarantined_total'):g}, worker ready "
            f"{self.worker_ready:.1f} s, notifier ready {self.notifier_ready:.1f} s, problems {len(self.problems)}\n"
        )


@dataclass(frozen=True)
class Code:
    """A release to run: its ``preempt`` command and the environment that imports it."""

    command: list[str]
    env: dict[str, str]

    @classmethod
    def of(cls, tree: Path) -> Code:
        """The release checked out in ``tree``."""
        return cls(preempt_command(tree), code_env(tree))

    @classmethod
    def current(cls) -> Code:
        """This checkout."""
        return cls(["preempt"], current_env())


def hand_over(
    first: Code,
    second: Code,
    stop: str,
    rules: Path,
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    slack: FakeSlack,
    tmp_path: Path,
) -> HandOver:
    """A worker and a notifier of the code of ``first`` read the first half of a simulated history (RocksDB,
    event time) and notify Slack; stopped (``stop``: sigterm or sigkill), they are replaced by ``second``'s with
    the same settings and folders, which read the rest."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    settings = settings_factory(
        event_time_only=True,
        store="rocksdb://",
        rules_path=rules,
        worker_web_port=free_port(),
        notifier_web_port=free_port(),
        routes_path=routes,
        slack_api_url=slack.api_url,
        slack_bot_token="xoxb-test-token",
        notifier_session_timeout_seconds=6,
        worker_session_timeout_seconds=6,
    )
    names = TopicNames.from_settings(settings)
    history = simulated_history(tmp_path, settings.topic_partitions, days=3, accounts=40, seed=5)
    expected = backtest_alert_ids(history.events, history.accounts, tmp_path / "expected.jsonl", rules=rules)
    half = count_lines(history.events) // 2

    old_worker = process_factory([*first.command, "worker"], settings, name="first-worker", **first.env)
    old_worker.wait_for_log("rules worker ready", timeout_s=90)
    old_notifier = process_factory([*first.command, "notifier"], settings, name="first-notifier", **first.env)
    old_notifier.wait_for_log("notifier ready", timeout_s=90)
    publish_lines(producer, names.accounts, history.accounts)
    publish_lines(producer, names.events, history.events, stop=half)
    wait_for_metric(settings.worker_web_port, "preempt_events_total", half, timeout_s=90)
    before = set(alert_ids(consume_records(kafka_bootstrap, names.alerts, 1, timeout_s=20, idle_s=3.0)))
    assert before, "the first half must alert for the notifier's delivery log to be handed over"
    _slack_caught_up(slack, before, timeout_s=30)
    for proc in (old_worker, old_notifier):
        proc.stop() if stop == "sigterm" else proc.kill()

    started = time.monotonic()
    worker = process_factory([*second.command, "worker"], settings, name="second-worker", **second.env)
    notifier = process_factory([*second.command, "notifier"], settings, name="second-notifier", **second.env)
    worker_ready = seconds_to_ready(settings.worker_web_port, worker, started)
    notifier_ready = seconds_to_ready(settings.notifier_web_port, notifier, started)
    publish_lines(producer, names.events, history.events, start=half)
    records = consume_records(kafka_bootstrap, names.alerts, len(expected), timeout_s=90, idle_s=3.0)
    dead = consume_records(kafka_bootstrap, names.events_dlq, 0, timeout_s=1) + consume_records(
        kafka_bootstrap, names.alerts_dlq, 0, timeout_s=1
    )
    return HandOver(
        expected=expected,
        before=before,
        got=set(alert_ids(records)),
        sent=_slack_caught_up(slack, expected, timeout_s=30),
        worker_ready=worker_ready,
        notifier_ready=notifier_ready,
        worker_metrics=scrape(settings.worker_web_port),
        notifier_metrics=scrape(settings.notifier_web_port),
        dead_letters=len(dead),
        problems=log_problems(worker, notifier),
    )


def assert_clean(result: HandOver) -> None:
    """Every alert of the history once on the topic and once on Slack; nothing skipped, dead-lettered,
    restarted or quarantined; no ERROR line, traceback or refusal."""
    assert result.got == result.expected
    assert set(result.sent.per_alert) == result.expected
    assert result.sent.duplicates == 0
    assert result.dead_letters == 0
    assert metric_sum(result.worker_metrics, "preempt_events_skipped_total") == 0
    assert metric_sum(result.worker_metrics, "preempt_events_dead_lettered_total") == 0
    assert metric_sum(result.worker_metrics, "preempt_rule_states_restarted_total") == 0
    assert metric_sum(result.worker_metrics, "preempt_accounts_quarantined_total") == 0
    assert metric_sum(result.notifier_metrics, "preempt_notifier_skipped_alerts_total") == 0
    assert not result.problems


def test_upgrade_from_the_pinned_release_loses_and_repeats_no_alert(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The pinned release reads the first half of a simulated history and notifies; killed (SIGKILL: no commit,
    no flush), it is replaced by the current code with the same settings, rules, RocksDB folders and topics,
    which reads the rest: the alerts are the backtest's of the whole history, each sent to Slack once; no rule
    state restarted, nothing dead-lettered, skipped or quarantined, and no ERROR line."""
    old_tree = checkout(PINNED, tmp_path / "old")
    rules = old_tree / "rules" / "packs" / "default"  # the rules the deployment ran, kept through the upgrade
    args = (kafka_bootstrap, settings_factory, process_factory, producer, slack_server, tmp_path)
    result = hand_over(Code.of(old_tree), Code.current(), STOP, rules, *args)
    sys.stderr.write(result.line(f"upgrade {PINNED[:8]} {STOP}"))
    assert_clean(result)


def test_rollback_to_the_pinned_release_after_the_current_code_wrote_state(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The other way round: the current code reads the first half, the pinned release (a rollback) the rest;
    it reads what the current code wrote, state, offsets and delivery log, with the same result."""
    old_tree = checkout(PINNED, tmp_path / "old")
    rules = old_tree / "rules" / "packs" / "default"
    args = (kafka_bootstrap, settings_factory, process_factory, producer, slack_server, tmp_path)
    result = hand_over(Code.current(), Code.of(old_tree), "sigterm", rules, *args)
    sys.stderr.write(result.line(f"rollback to {PINNED[:8]}"))
    assert_clean(result)
