"""Scenario 2: a local 3-broker KRaft cluster (replication 3, min.insync.replicas 2, acks=all).

Three combined broker+controller JVMs on 127.0.0.1 (ports 197xx), from the same Maven class path as
``deploy/kafka/kafka.sh``. Mid-stream the leader of an events partition is SIGKILLed and restarted;
later another broker is restarted. Pass: 0 acknowledged events lost, the worker (never restarted)
carries on by itself and emits exactly the backtest's alerts, the notifier delivers each once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer

from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.chaos.harness import Context, Row, ScenarioError, duplicates, poll, read_topic, wait
from tests.chaos.pipeline import CONSOLE_ROUTES, _alert_ids, _history, _notify_and_count
from tests.integration.conftest import KAFKA_SCRIPT, REPO
from tests.integration.pipeline_support import count_lines, publish_lines

BROKER_PORTS = {1: 19721, 2: 19722, 3: 19723}
CONTROLLER_PORTS = {1: 19731, 2: 19732, 3: 19733}


@dataclass
class Cluster:
    """Three KRaft nodes in ``home``; each can be killed and restarted."""

    home: Path
    classpath: str
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    broker_ports: dict[int, int] = field(default_factory=lambda: dict(BROKER_PORTS))
    controller_ports: dict[int, int] = field(default_factory=lambda: dict(CONTROLLER_PORTS))

    @classmethod
    def on_ports(cls, home: Path, classpath: str, base: int) -> Cluster:
        """A cluster whose node n listens on ``base + 2(n-1)`` (broker) and the port after it (controller)."""
        brokers = {n: base + 2 * (n - 1) for n in BROKER_PORTS}
        return cls(home, classpath, broker_ports=brokers, controller_ports={n: p + 1 for n, p in brokers.items()})

    @property
    def bootstrap(self) -> str:
        """All three brokers, as PREEMPT_BROKER wants them."""
        return ";".join(f"127.0.0.1:{p}" for p in self.broker_ports.values())

    def _props(self, node: int) -> Path:
        path = self.home / f"node-{node}" / "server.properties"
        voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in self.controller_ports.items())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"""process.roles=broker,controller
node.id={node}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{self.broker_ports[node]},CONTROLLER://127.0.0.1:{self.controller_ports[node]}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.broker_ports[node]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={path.parent / "data"}
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
unclean.leader.election.enable=false
num.network.threads=2
num.io.threads=2
"""
        )
        return path

    def _java(self, node: int, *args: str) -> list[str]:
        logs = self.home / f"node-{node}" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return [
            "java", "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={logs}", f"-Dlog4j2.configurationFile={KAFKA_SCRIPT.parent / 'log4j2.properties'}",
            "-cp", self.classpath, *args,
        ]  # fmt: skip

    def format(self) -> None:
        """Format the three storages with one cluster id."""
        cluster_id = subprocess.run(
            self._java(1, "kafka.tools.StorageTool", "random-uuid"), capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        for node in BROKER_PORTS:
            subprocess.run(
                self._java(node, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self._props(node))),
                capture_output=True,
                check=True,
                timeout=120,
            )

    def start(self, node: int) -> None:
        """Start one node (its data survives restarts)."""
        self._start_counts[node] = self._start_counts.get(node, 0) + 1
        out = (self.home / f"node-{node}" / "stdout.log").open("ab")
        props = self.home / f"node-{node}" / "server.properties"
        self.procs[node] = subprocess.Popen(
            self._java(node, "kafka.Kafka", str(props)), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_started(self, node: int, timeout_s: float = 180.0) -> None:
        """Wait (bounded) until the node logged that it started since its last (re)start."""
        log = self.home / f"node-{node}" / "logs" / "broker.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (
                log.exists()
                and log.read_text(errors="replace").count("Kafka Server started") >= self._start_counts[node]
            ):
                return
            if self.procs[node].poll() is not None:
                raise ScenarioError(f"broker {node} exited during start")
            time.sleep(0.5)
        raise ScenarioError(f"broker {node} did not start within {timeout_s:.0f}s")

    def kill(self, node: int, sig: int = signal.SIGKILL) -> None:
        """Signal one node and reap it (SIGKILL after 60 s)."""
        proc = self.procs[node]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    def restart(self, node: int) -> None:
        """Start a stopped node again and wait until it is up."""
        self.start(node)
        self.wait_started(node)

    def stop_all(self) -> None:
        """Stop every node this cluster started."""
        for node in list(self.procs):
            self.kill(node, signal.SIGTERM)

    def __post_init__(self) -> None:
        self._start_counts: dict[int, int] = {}


def _classpath() -> str:
    path = Path(os.environ.get("KAFKA_CLASSPATH_FILE", REPO / ".kafka" / "classpath.txt"))
    if not path.exists():
        raise ScenarioError(f"{path} is missing: run `make kafka` (or deploy/kafka/kafka.sh start) once")
    return path.read_text().strip()


def _leader(bootstrap: list[str], topic: str, partition: int) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        for described in admin.describe_topics([topic]):
            for part in described["partitions"]:
                if part["partition_index"] == partition:
                    return int(part["leader_id"])
    finally:
        admin.close()
    raise ScenarioError(f"no leader found for {topic}[{partition}]")


def run_cluster_failover(ctx: Context) -> Row:
    """Scenario 2 (see the module docstring)."""
    row = Row("2 3-broker cluster: leader killed, broker restarted")
    cluster = Cluster(ctx.workdir / f"cluster-{uuid.uuid4().hex[:6]}", _classpath())
    cluster.format()
    for node in BROKER_PORTS:
        cluster.start(node)
    try:
        for node in BROKER_PORTS:
            cluster.wait_started(node)
        routes = ctx.workdir / "routes-console.yaml"
        routes.write_text(CONSOLE_ROUTES)
        settings = ctx.settings(
            "cluster", broker=f"kafka://{cluster.bootstrap}", topic_replication=3, event_time_only=True,
            worker_web_port=free_port(), notifier_web_port=free_port(), routes_path=routes,
        )  # fmt: skip
        days, accounts = (3, 30) if ctx.quick else (3, 100)
        events, accts, expected = _history(ctx, "cluster", days, accounts, settings)
        total = count_lines(events)
        row.load = f"{total} events, {accounts} accounts, RF 3, min ISR 2, acks=all"
        row.expected = len(expected)
        ensure_topics(settings)
        names = TopicNames.from_settings(settings)
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
        publish_lines(producer, names.accounts, accts)
        worker = ctx.start(["preempt", "worker"], settings, name="cluster-worker")
        wait(worker, "rules worker ready", 240)

        lines = events.read_bytes().splitlines()
        futures: list[tuple[str, Any]] = []
        half = threading.Event()

        def send_all() -> None:
            for index, line in enumerate(lines):
                record = json.loads(line)
                future = producer.send(names.events, key=record["account_id"].encode(), value=line)
                futures.append((record["event_id"], future))
                if index == len(lines) // 2:
                    half.set()
                if index % 50 == 49:
                    time.sleep(0.1)  # spread the stream over time, so the kill lands mid-stream
            producer.flush(timeout=180)

        sender = threading.Thread(target=send_all, name="chaos-sender", daemon=True)
        sender.start()
        half.wait(timeout=300)
        leader = _leader(settings.bootstrap_servers, names.events, 0)
        cluster.kill(leader, signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(10)
        cluster.restart(leader)
        sender.join(timeout=600)
        acked = {event_id for event_id, f in futures if f.is_done and f.succeeded()}
        failed = len(futures) - len(acked)
        other = next(n for n in BROKER_PORTS if n != leader)
        cluster.kill(other, signal.SIGTERM)
        cluster.restart(other)
        row.faults = f"SIGKILL of leader broker {leader} mid-stream, back after {time.monotonic() - killed_at:.0f}s; "
        row.faults += f"broker {other} restarted"

        poll(lambda: set(_alert_ids(settings)) >= expected, timeout_s=600, interval_s=3.0)
        emitted = _alert_ids(settings)
        stored = {
            json.loads(r.value)["event_id"] for r in read_topic(settings, names.events, idle_s=3.0, timeout_s=180)
        }
        lost_events = len(acked - stored)
        row.emitted = len(set(emitted))
        delivered = _notify_and_count(ctx, settings, expected, "cluster-notifier")
        row.delivered = len(set(delivered))
        row.lost = len(expected - set(emitted))
        row.duplicated = duplicates(delivered)
        row.check(lost_events == 0, "0 acknowledged events lost")
        row.check(failed == 0, "every event acknowledged (the producer rode out the leader change)")
        row.check(worker.proc.poll() is None, "the worker kept running (never restarted)")
        row.check(set(emitted) == expected, "alerts = backtest: processing resumed by itself")
        row.check(set(delivered) == expected and row.duplicated == 0, "each alert delivered once")
        row.notes.append(f"{len(acked)}/{total} events acknowledged, {lost_events} of them missing after the faults")
        producer.close()
        worker.stop()
    finally:
        ctx.prefixes = [(s, n) for s, n in ctx.prefixes if n != "cluster"]
        cluster.stop_all()
    return row.finish()
