"""Helpers shared by the topology integration tests (topics changed or deleted under running processes):
a two-rule pack that alerts on every "Crate Dropped" event, publishing such events, a ready worker,
``/readyz`` polling and a process's exit line."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from schemas.event import format_ts
from streams.runtime.missing_topics import records_read
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess

RULES = """
rules:
  - id: crate-dropped-runbook
    kind: any
    title: "a crate was dropped"
    severity: high
    priority: 2
    match: {{event: Crate Dropped}}
    playbook: "{playbook}"
  - id: crate-dropped-note
    kind: any
    title: "a crate was dropped (short)"
    severity: low
    priority: 3
    match: {{event: Crate Dropped}}
    playbook: "Call the warehouse."
"""


def crate_rules(tmp_path: Path, playbook: str) -> Path:
    """A rules folder under ``tmp_path`` holding :data:`RULES` with ``playbook``."""
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "crates.yaml").write_text(RULES.format(playbook=playbook))
    return folder


def publish_crates(producer: KafkaProducer, topic: str, accounts: list[str], event: str = "Crate Dropped") -> None:
    """One ``event`` now for each of ``accounts`` (event id ``crate-<account>``), flushed."""
    now = time.time()
    for i, account in enumerate(accounts):
        body = {"event_id": f"crate-{account}", "event": event, "account_id": account, "timestamp": format_ts(now)}
        producer.send(topic, key=account.encode(), value=json.dumps(body).encode(), headers=[("src", str(i).encode())])
    producer.flush()


def ready_worker(process_factory: Callable[..., ManagedProcess], settings: Settings, name: str) -> ManagedProcess:
    """``preempt worker`` started with ``settings``, once it says it is ready."""
    worker = process_factory(["preempt", "worker"], settings, name=name)
    worker.wait_for_log("rules worker ready", timeout_s=90)
    return worker


def exit_line(proc: ManagedProcess, timeout_s: float = 90.0) -> str:
    """Wait (bounded) for ``proc`` to exit with status 1; its last line."""
    try:
        proc.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {timeout_s:.0f} s later:\n{proc.log_text()[-3000:]}")
    log = proc.log_text()
    assert proc.proc.returncode == 1, log[-3000:]
    # JSON log lines (a library's traceback stays inside one's "exception" field) and the one Error line.
    raw = [line for line in log.splitlines() if line.strip() and not line.startswith(("{", "Error: "))]
    assert not raw, raw[:20]
    return log.strip().splitlines()[-1]


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())
    except OSError:  # not listening yet
        return 0, {}


def wait_readyz(port: int, status: int, reason: str = "", timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll /readyz until it answers ``status`` with a reason starting with ``reason``."""
    deadline = time.monotonic() + timeout_s
    last: tuple[int, dict[str, Any]] = (0, {})
    while time.monotonic() < deadline:
        last = readyz(port)
        if last[0] == status and str(last[1].get("reason", "")).startswith(reason):
            return last[1]
        time.sleep(0.5)
    raise AssertionError(f"/readyz not {status} within {timeout_s:.0f} s: {last}")


def reset_group(bootstrap: str, group: str, topic: str, to: str) -> None:
    """What ``kafka-consumer-groups.sh --reset-offsets --to-earliest|--to-latest --execute`` does (group stopped)."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        offsets = consumer.beginning_offsets(tps) if to == "earliest" else consumer.end_offsets(tps)
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
    finally:
        consumer.close()


def delete_topic(bootstrap: str, topic: str) -> None:
    """What ``kafka-topics.sh --delete --topic <topic>`` does."""
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()


def wait_committed(bootstrap: str, group: str, topic: str, records: int, timeout_s: float = 60.0) -> None:
    """Wait until ``group`` has committed offsets ``records`` records into ``topic``."""
    deadline = time.monotonic() + timeout_s
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        while (read := records_read(admin, group, topic)) < records:
            assert time.monotonic() < deadline, f"{group} committed {read} of {records} records of {topic}"
            time.sleep(0.5)
    finally:
        admin.close()


def ready_watching_worker(
    settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess], tmp_path: Path
) -> tuple[Settings, TopicNames, ManagedProcess]:
    """A worker on the crate rules whose clients refresh their metadata every 3 s, once /readyz says ready."""
    settings = settings_factory(
        rules_path=crate_rules(tmp_path, "Call them."), worker_web_port=free_port(), metadata_max_age_seconds=3
    )
    ensure_topics(settings)
    worker = ready_worker(process_factory, settings, "worker")
    wait_readyz(settings.worker_web_port, 200)
    return settings, TopicNames.from_settings(settings), worker


def missing_then_back(proc: ManagedProcess, port: int, settings: Settings, topic: str, kind: str = "") -> None:
    """A topic ``proc`` writes was deleted: wait for /readyz 503 naming it (``kind``: ``dead-letter `` for a
    dead-letter topic's reason) and one ERROR line; make the topics again (as a start does) and wait for ready
    and the INFO 'topic back'."""
    wait_readyz(port, 503, f"{kind}topic {topic} does not exist (deleted", timeout_s=60)
    assert proc.log_text().count('"topic missing; not ready until it is back"') == 1
    ensure_topics(settings)
    wait_readyz(port, 200, timeout_s=60)
    proc.wait_for_log('"topic back"', timeout_s=10)
