"""Restart stress: repeated SIGKILL + immediate restart under CPU load loses nothing and stalls nothing.

``make test`` runs a short version (3 cycles over 3 simulated days); ``make stress`` runs the same
test with ``PREEMPT_STRESS_CYCLES=20`` over a 30-day history (see the Makefile).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafka import KafkaProducer

from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import (
    alert_ids,
    count_lines,
    publish_lines,
    simulated_history,
)
from tests.integration.restart_stress import CpuLoad, run_restart_stress

CYCLES = int(os.environ.get("PREEMPT_STRESS_CYCLES", "3"))
DAYS = int(os.environ.get("PREEMPT_STRESS_DAYS", "3"))
ACCOUNTS = int(os.environ.get("PREEMPT_STRESS_ACCOUNTS", "60"))
SEED = int(os.environ.get("PREEMPT_STRESS_SEED", "29"))
SESSION_TIMEOUT_S = float(os.environ.get("PREEMPT_STRESS_SESSION_TIMEOUT", "10"))
MAX_KILL_AFTER_S = float(os.environ.get("PREEMPT_STRESS_MAX_KILL_AFTER", "25"))


def test_repeated_sigkill_and_restart_under_cpu_load_commits_everything_with_the_backtests_alerts(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
    tmp_path: Path,
) -> None:
    """After N random SIGKILL+restart cycles with a core kept busy, every partition is committed to
    its end without a stall and the alert ids equal the backtest's."""
    # A short session timeout so an immediate restart does not wait a minute for the dead
    # member's session; the watchdog reports a partition without progress for 30 s.
    settings = settings_factory(event_time_only=True, worker_session_timeout_seconds=10.0, partition_stall_seconds=30.0)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    # The history must end in the past: events stamped later than now + the allowed future skew
    # are dead-lettered, by the worker at its own time and by the backtest at its own.
    start = (datetime.now(UTC) - timedelta(days=DAYS + 1)).strftime("%Y-%m-%dT00:00:00Z")
    history = simulated_history(
        tmp_path, settings.topic_partitions, days=DAYS, accounts=ACCOUNTS, seed=SEED, start=start
    )
    events, accounts, expected = history.events, history.accounts, history.expected
    publish_lines(producer, names.accounts, accounts)

    def start_worker(worker_settings: Settings, name: str) -> ManagedProcess:
        return process_factory(["preempt", "worker"], worker_settings, name=name)

    load = CpuLoad(seconds=CYCLES * 30.0 + 600.0)
    try:
        report = run_restart_stress(
            settings=settings,
            bootstrap=kafka_bootstrap,
            events=events,
            producer=producer,
            start_worker=start_worker,
            cycles=CYCLES,
            seed=SEED,
            max_kill_after_s=MAX_KILL_AFTER_S,
        )
    finally:
        load.stop()
    logs = {path.name: path.read_text(errors="replace") for path in sorted(tmp_path.glob("worker-*.log"))}
    watchdog = [line for text in logs.values() for line in text.splitlines() if "partition stalled" in line]
    repaired = sum(text.count("re-read them from Kafka") for text in logs.values())
    sys.stderr.write(
        f"\n[restart-stress] {count_lines(events)} events; {report.summary()}; "
        f"gap repairs {repaired}; watchdog stalls {len(watchdog)}\n"
    )
    assert not report.stalled, report.stalled
    assert not watchdog, watchdog
    records = consume_records(kafka_bootstrap, names.alerts, len(expected), timeout_s=120, idle_s=3.0)
    got = alert_ids(records)
    duplicates = sum(n - 1 for n in Counter(got).values())
    sys.stderr.write(f"[restart-stress] {len(got)} alert records, {len(set(got))} ids, {duplicates} duplicates\n")
    assert set(got) == expected
