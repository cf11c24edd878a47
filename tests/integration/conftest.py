"""Integration fixtures: a real Kafka broker (started through deploy/kafka/kafka.sh when none
answers), per-test topic prefixes, and factories for producing, consuming and running processes.

If the broker cannot be reached, the fixtures raise: integration tests fail, they never skip.
At the end of the session the topics made under this session's prefixes are deleted (set
PREEMPT_TEST_KEEP_TOPICS=1 to keep them for a post-mortem): a local broker that collects every
run's topics runs out of file descriptors after a few dozen runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from streams.runtime.settings import Settings
from streams.runtime.testing import settings_env
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.own_broker import KAFKA_SCRIPT, OwnBroker

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("PREEMPT_TEST_BOOTSTRAP", "127.0.0.1:9092")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as `integration`."""
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


_BROKER_USED: dict[str, str] = {}
_PREFIXES: list[str] = []  # every topic prefix handed out this session (deleted at its end)
_CLEANUP: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which real broker the integration tests ran against (and its Kafka version)."""
    if not _BROKER_USED:
        return
    kafka_home = Path(os.environ.get("KAFKA_HOME_DIR", REPO / ".kafka"))
    pid_file = kafka_home / "kafka.pid"
    classpath = kafka_home / "classpath.txt"
    version = "unknown"
    if classpath.exists():
        for entry in classpath.read_text().split(":"):
            if "/kafka_2.13-" in entry:
                version = entry.rsplit("/kafka_2.13-", 1)[1].removesuffix(".jar")
    pid = pid_file.read_text().strip() if pid_file.exists() else "not started by deploy/kafka/kafka.sh"
    terminalreporter.write_line(
        f"integration tests ran against the real Apache Kafka {version} broker at {_BROKER_USED['address']} (pid {pid})"
    )
    if "summary" in _CLEANUP:
        terminalreporter.write_line(_CLEANUP["summary"])


def delete_session_topics(bootstrap: str, prefixes: list[str], timeout_s: float = 60.0) -> str:
    """Delete the topics named under ``prefixes`` (``<prefix>.…`` and Faust's ``<prefix>-…``);
    never raises: a failed clean-up is reported, it does not fail the session."""
    if not prefixes:
        return "no test topics to delete"
    starts = tuple(f"{p}{sep}" for p in prefixes for sep in (".", "-"))
    deadline = time.monotonic() + timeout_s
    try:
        admin = KafkaAdminClient(bootstrap_servers=[bootstrap], request_timeout_ms=int(timeout_s * 1000))
    except Exception as exc:
        return f"test topics not deleted: {type(exc).__name__}: {exc}"
    deleted = 0
    try:
        doomed = sorted(t for t in admin.list_topics() if t.startswith(starts))
        for i in range(0, len(doomed), 100):
            if time.monotonic() > deadline:
                return f"deleted {deleted} of {len(doomed)} test topics (stopped after {timeout_s:g} s)"
            admin.delete_topics(doomed[i : i + 100], timeout_ms=int(timeout_s * 1000))
            deleted += len(doomed[i : i + 100])
        return f"deleted the {deleted} topics this session's tests made"
    except Exception as exc:
        return f"deleted {deleted} test topics, then: {type(exc).__name__}: {exc}"
    finally:
        admin.close()


def _broker_answers() -> bool:
    try:
        admin = KafkaAdminClient(bootstrap_servers=[BOOTSTRAP], request_timeout_ms=5000)
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The address of a live broker; starts the local one through the project's script if needed.
    At the end of the session, deletes the topics the tests made (see the module docstring)."""
    if not _broker_answers():
        result = subprocess.run([str(KAFKA_SCRIPT), "start"], check=False, capture_output=True, text=True)
        sys.stderr.write(result.stderr)
        if result.returncode != 0 or not _broker_answers():
            pytest.fail(f"Kafka broker at {BOOTSTRAP} is not reachable and could not be started", pytrace=False)
    _BROKER_USED["address"] = BOOTSTRAP
    yield BOOTSTRAP
    if os.environ.get("PREEMPT_TEST_KEEP_TOPICS", "") in ("", "0"):
        _CLEANUP["summary"] = delete_session_topics(BOOTSTRAP, _PREFIXES)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    """A started broker of this test's own (not the session's), which it may kill; stopped at teardown."""
    broker = OwnBroker(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix of this test's own, so tests never see each other's records."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _PREFIXES.append(prefix)
    return prefix


@pytest.fixture
def settings_factory(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Callable[..., Settings]:
    """Factory: Settings pointing at the test broker with this test's topic prefix; overrides apply."""

    def factory(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "broker": f"kafka://{kafka_bootstrap}",
            "topic_prefix": topic_prefix,
            "topic_partitions": 4,
            "store": "memory://",
            "data_dir": tmp_path / "data",
            "log_format": "json",
        }
        base.update(overrides)
        return Settings(**base)

    return factory


@pytest.fixture
def topics(settings_factory: Callable[..., Settings]) -> TopicNames:
    """This test's topic names, created on the broker."""
    settings = settings_factory()
    ensure_topics(settings)
    return TopicNames.from_settings(settings)


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    """A kafka-python producer on the test broker (acks=all)."""
    prod = KafkaProducer(bootstrap_servers=[kafka_bootstrap], acks="all", linger_ms=5)
    yield prod
    prod.close()


def consume_records(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0, idle_s: float | None = None
) -> list[Any]:
    """Read ``topic`` from the beginning until ``expected`` records arrived or ``timeout_s`` passed.

    With ``idle_s``, keep reading after ``expected`` until nothing new arrived for that long
    (to prove that no extra records follow). Bounded in time either way.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=[bootstrap],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + 15
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=300)
            got = [r for recs in batch.values() for r in recs]
            if got:
                records.extend(got)
                last_new = time.monotonic()
            if len(records) >= expected and (idle_s is None or time.monotonic() - last_new >= idle_s):
                break
        return records
    finally:
        consumer.close()


class ManagedProcess:
    """A child process (worker, notifier…) that a test starts and that is always reaped."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_text(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout_s: float = 60.0) -> None:
        """Wait until ``needle`` appears in the process output; fail with the log otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"process exited ({self.proc.returncode}) before {needle!r}:\n{self.log_text()[-4000:]}")
            time.sleep(0.2)
        pytest.fail(f"{needle!r} not seen within {timeout_s}s:\n{self.log_text()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group and reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        """Graceful stop (SIGTERM), falling back to SIGKILL."""
        self.kill(signal.SIGTERM)


@pytest.fixture
def process_factory(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Factory: ``process_factory(["preempt", "worker"], settings, name="w1")`` runs a child process
    with ``settings`` exported as PREEMPT_* variables; every process is killed at teardown."""
    started: list[ManagedProcess] = []

    def factory(args: list[str], settings: Settings | None = None, name: str = "proc", **env: str) -> ManagedProcess:
        full_env = dict(os.environ)
        if settings is not None:
            full_env.update(settings_env(settings))
        full_env.update(env)
        if args and args[0] == "preempt":
            args = [str(Path(sys.executable).parent / "preempt"), *args[1:]]
        proc = ManagedProcess(args, full_env, tmp_path / f"{name}.log")
        started.append(proc)
        return proc

    yield factory
    for proc in started:
        proc.kill()
