"""What every chaos scenario shares: a work directory, real child processes, the result row.

Processes are the real ``preempt`` commands (``ManagedProcess`` from the integration harness), the
servers are the integration tests' real Slack-speaking HTTP server and aiosmtpd, the broker is the
local one (``make kafka``) or a second one started here. Every wait is bounded; every address is
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.runtime.kafka_clients import kafka_python_config
from streams.runtime.settings import Settings
from streams.runtime.testing import settings_env
from tests.integration.conftest import ManagedProcess

PREEMPT = "preempt"


@dataclass
class Row:
    """One line of the chaos table."""

    scenario: str
    load: str = ""
    faults: str = ""
    expected: int | str = ""
    emitted: int | str = ""
    delivered: int | str = ""
    lost: int | str = ""
    duplicated: int | str = ""
    result: str = "FAIL"
    notes: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        """Record a pass criterion; any false one fails the row and is named in the notes."""
        if not ok:
            self.notes.append(f"not met: {what}")

    def finish(self) -> Row:
        """PASS when no criterion failed."""
        self.result = "PASS" if not any(n.startswith("not met") for n in self.notes) else "FAIL"
        return self


class ScenarioError(Exception):
    """A scenario could not run to its end (the row says why)."""


@dataclass
class Context:
    """The run's work directory, broker, secrets and the processes to reap."""

    workdir: Path
    bootstrap: str
    seed: int
    quick: bool
    secrets: dict[str, str] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    prefixes: list[tuple[Settings, str]] = field(default_factory=list)  # (settings, scenario) for the DLQ scan
    dead_letters: list[tuple[str, bytes]] = field(default_factory=list)  # collected for scenario 10

    @classmethod
    def create(cls, workdir: Path, bootstrap: str, seed: int, quick: bool) -> Context:
        """A context with fresh secret values, so a leak of any of them is recognisable."""
        token = secrets.token_hex(12)
        return cls(
            workdir=workdir,
            bootstrap=bootstrap,
            seed=seed,
            quick=quick,
            secrets={
                "slack bot token": f"xoxb-chaos-{token}",
                "slack signing secret": f"sign-{secrets.token_hex(16)}",
                "smtp password": f"smtp-{secrets.token_hex(12)}",
                "webhook url path": f"T0CHAOS/B0CHAOS/{secrets.token_hex(12)}",
            },
        )

    def settings(self, scenario: str, **overrides: Any) -> Settings:
        """Settings of a scenario of its own (topic prefix, data dir, web ports), on the run's broker."""
        prefix = f"chaos{uuid.uuid4().hex[:8]}"
        fields: dict[str, Any] = {
            "broker": f"kafka://{self.bootstrap}",
            "topic_prefix": prefix,
            "topic_partitions": 4,
            "store": "memory://",
            "data_dir": self.workdir / prefix / "data",
            "log_format": "json",
            "log_level": "INFO",
            "slack_bot_token": self.secrets["slack bot token"],
            "slack_signing_secret": self.secrets["slack signing secret"],
        }
        fields.update(overrides)
        settings = Settings(**fields)
        settings.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.prefixes.append((settings, scenario))
        return settings

    def start(self, args: list[str], settings: Settings, name: str, **env: str) -> ManagedProcess:
        """Run ``preempt …`` with ``settings`` as PREEMPT_* variables; reaped by :meth:`reap`."""
        full_env = {**os.environ, **settings_env(settings), **env}
        if args[0] == PREEMPT:
            args = [str(Path(sys.executable).parent / "preempt"), *args[1:]]
        log = self.workdir / "logs" / f"{name}-{len(self.processes)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = ManagedProcess(args, full_env, log)
        self.processes.append(proc)
        return proc

    def reap(self) -> None:
        """Stop every process this run started (SIGTERM, then SIGKILL)."""
        for proc in self.processes:
            proc.stop()

    def collect_dead_letters(self, scenario: str | None = None) -> None:
        """Read the dead-letter topics of every scenario (or of one) into :attr:`dead_letters`, once."""
        keep: list[tuple[Settings, str]] = []
        for settings, name in self.prefixes:
            if scenario is not None and name != scenario:
                keep.append((settings, name))
                continue
            if settings.kafka_sasl_password is not None and "wrong" in settings.kafka_sasl_password.get_secret_value():
                continue  # the refused client of scenario 11 never had topics
            for topic in ("events.dlq", "alerts.dlq"):
                for record in read_topic(settings, settings.topic(topic), idle_s=0.5, timeout_s=15):
                    headers = b" ".join(k.encode() + b"=" + (v or b"") for k, v in record.headers)
                    self.dead_letters.append((f"{name} {topic}", (record.value or b"") + b" " + headers))
        self.prefixes = keep

    def producer(self, settings: Settings) -> KafkaProducer:
        """A kafka-python producer with ``settings``' security."""
        return KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", **kafka_python_config(settings))


def wait(proc: ManagedProcess, needle: str, timeout_s: float) -> None:
    """``proc.wait_for_log`` with the harness's pytest failure turned into :class:`ScenarioError`."""
    try:
        proc.wait_for_log(needle, timeout_s=timeout_s)
    except pytest.fail.Exception as exc:
        raise ScenarioError(
            f"{needle!r} not seen: {str(exc).splitlines()[0][:200]} (log: {proc.log_path.name})"
        ) from None


def log_events(proc: ManagedProcess, event: str) -> list[dict[str, Any]]:
    """The JSON log records of ``proc`` whose ``event`` is ``event``."""
    found: list[dict[str, Any]] = []
    for line in proc.log_text().splitlines():
        start = line.find("{")
        if event not in line or start < 0:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if record.get("event") == event:
            found.append(record)
    return found


def poll(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> bool:
    """Poll ``condition`` until true or ``timeout_s`` passed (bounded); returns the last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def read_topic(settings: Settings, topic: str, idle_s: float = 2.0, timeout_s: float = 60.0) -> list[Any]:
    """Every record of ``topic`` from the beginning, until nothing new for ``idle_s`` (bounded)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        consumer_timeout_ms=500,
        **kafka_python_config(settings),
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_new < idle_s:
            batch = consumer.poll(timeout_ms=300)
            got = [r for recs in batch.values() for r in recs]
            if got:
                records.extend(got)
                last_new = time.monotonic()
        return records
    finally:
        consumer.close()


def duplicates(ids: list[str]) -> int:
    """How many entries repeat an earlier one."""
    return sum(n - 1 for n in Counter(ids).values())


@contextmanager
def started(server: Any) -> Iterator[Any]:
    """Start a FakeSlack / FakeSMTP and stop it afterwards."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
