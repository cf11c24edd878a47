"""Scenario 12: a fault sweep on a 3-broker cluster (RF 3, min.insync.replicas 2) under live traffic.

For each fault a fresh topic prefix, a fresh ``preempt worker`` (event-time only, for parity with the
backtest), ``preempt notifier`` (Slack to the integration tests' Slack-speaking server, email to
aiosmtpd) and ``preempt ingest``; a producer (acks=all, idempotent) publishes ``preempt simulate``
history in file order at a few hundred events/s while the ingest takes a probe event every 2 s, and
mid-stream the fault lands:

* ``leader``: SIGKILL of the broker leading ``events/0`` (and the alerts/changelog partitions it
  leads), restarted 10 s later;
* ``min-isr``: SIGKILL of two of the three brokers (below min ISR, no controller quorum) for 60 s;
* ``worker``: SIGKILL of the rules worker while it reads a backlog, restarted;
* ``rolling``: each broker in turn SIGTERMed and restarted, the next once every replica is back in sync.

After each: the alert ids on ``<prefix>.alerts`` and those delivered (Slack messages and emails as the
servers received them, and the notifier's ``alert delivered`` lines) against ``preempt backtest``'s —
none lost, none delivered twice — every acknowledged event and probe on the events topic, and the
``/readyz`` answers of the three processes over time (what they said during the fault, and how long
after it each was ready again).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaProducer

from alerts.testing.slack_server import FakeSlack
from alerts.testing.smtp_server import FakeSMTP
from streams.ingest.auth import key_digest
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames, ensure_topics
from tests.chaos.cluster import BROKER_PORTS, Cluster, _classpath
from tests.chaos.harness import Context, Row, duplicates, log_events, poll, read_topic, started, wait
from tests.chaos.pipeline import _history
from tests.integration.conftest import ManagedProcess
from tests.integration.ingest_support import wait_healthy
from tests.integration.pipeline_support import publish_lines

FAULTS = ("leader", "min-isr", "worker", "rolling")
INGEST_KEY = "pk_chaos_sweep"
PROBE_EVENT = "Chaos Probe"  # no rule matches it; stamped at the history's start, it moves no clock
ROUTES = """
receivers:
  - name: owner
    slack_configs: [{channel: "{{ account.owner.slack }}"}]
    email_configs: [{to: "{{ account.owner.email }}"}]
route:
  receiver: owner
  group_by: [account_id, rule_id]
  group_wait: 0s
  group_interval: 1s
"""


def _ports() -> tuple[int, int]:
    """(first broker port, first web port): three brokers on base, base+2, base+4 (controllers +1)."""
    base = int(os.environ.get("PREEMPT_CHAOS_CLUSTER_PORT", "19741"))
    web = int(os.environ.get("PREEMPT_CHAOS_WEB_PORT", str(base + 50)))
    return base, web


@dataclass
class ReadyWatch:
    """Polls ``/readyz`` of named ports every second; keeps each change of answer with its time."""

    ports: dict[str, int]
    started_at: float = field(default_factory=time.monotonic)
    changes: list[tuple[float, str, int, str]] = field(default_factory=list)
    _last: dict[str, tuple[int, str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _probe(self, port: int) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as resp:
                return resp.status, ""
        except urllib.error.HTTPError as err:
            try:
                reason = str(json.loads(err.read()).get("reason", ""))
            except ValueError:
                reason = "?"
            return err.code, re.sub(r"\d+ s\b|\d+s\b", "Ns", reason)[:160]
        except OSError:
            return 0, "no answer"

    def run(self) -> None:
        while not self._stop.is_set():
            for name, port in self.ports.items():
                now = time.monotonic() - self.started_at
                answer = self._probe(port)
                if self._last.get(name) != answer:
                    self._last[name] = answer
                    self.changes.append((now, name, *answer))
            self._stop.wait(1.0)

    def start(self) -> ReadyWatch:
        threading.Thread(target=self.run, name="readyz-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def now(self) -> float:
        return time.monotonic() - self.started_at

    def status(self, name: str) -> int:
        return self._last.get(name, (0, ""))[0]

    def timeline(self, since: float) -> str:
        """The changes since ``since`` (watch time), as ``t+12s worker 503 (reason)``."""
        parts = [
            f"{name} {status or '-'}{f' ({reason})' if reason and status != 200 else ''} at {t - since:+.0f}s"
            for t, name, status, reason in self.changes
            if t >= since
        ]
        return "; ".join(parts) or "no change"

    def ready_again(self, name: str, since: float) -> float | None:
        """Seconds after ``since`` at which ``name`` last turned 200 (None: not 200 now)."""
        if self.status(name) != 200:
            return None
        turned = [t for t, n, status, _ in self.changes if n == name and status == 200]
        return max(0.0, turned[-1] - since) if turned else None

    def not_ready_during(self, name: str, start: float, end: float) -> list[str]:
        """The distinct non-200 answers ``name`` gave in [start, end] (including one standing at start)."""
        answers: list[str] = []
        standing = [c for c in self.changes if c[1] == name and c[0] <= start]
        window = [c for c in self.changes if c[1] == name and start < c[0] <= end]
        for _, _, status, reason in standing[-1:] + window:
            if status != 200:
                answers.append(f"{status or '-'} {reason}".strip())
        return sorted(set(answers))


@dataclass
class Sender:
    """Publishes the history in file order (acks=all, idempotent) at ``rate`` events/s, in a thread."""

    producer: KafkaProducer
    topic: str
    lines: list[bytes]
    rate: float
    futures: list[tuple[str, Any]] = field(default_factory=list)
    half: threading.Event = field(default_factory=threading.Event)
    error: list[str] = field(default_factory=list)

    def run(self) -> None:
        try:
            started_at = time.monotonic()
            for index, line in enumerate(self.lines):
                record = orjson.loads(line)
                future = self.producer.send(
                    self.topic, key=record["account_id"].encode(), value=line,
                    headers=[("content-type", b"application/json")],
                )  # fmt: skip
                self.futures.append((record["event_id"], future))
                if index == len(self.lines) // 2:
                    self.half.set()
                ahead = started_at + index / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            self.producer.flush(timeout=300)
        except Exception as exc:
            self.error.append(f"{type(exc).__name__}: {exc}")
            self.half.set()

    def acked(self) -> set[str]:
        return {event_id for event_id, f in self.futures if f.is_done and f.succeeded()}


@dataclass
class Prober:
    """One event every 2 s through ``preempt ingest``; keeps the ids it acknowledged and the statuses."""

    port: int
    stamp: str
    acked: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            event_id = f"probe-{uuid.uuid4().hex[:12]}"
            body = orjson.dumps(
                [{"event_id": event_id, "event": PROBE_EVENT, "account_id": f"probe-{n % 8}", "timestamp": self.stamp}]
            )
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/v1/events", data=body, method="POST",
                headers={"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/json"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=40) as resp:  # noqa: S310 - 127.0.0.1 only
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            self.statuses[status] += 1
            if 200 <= status < 300:
                self.acked.append(event_id)
            self._stop.wait(2.0)

    def start(self) -> Prober:
        threading.Thread(target=self.run, name="ingest-prober", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


def _partition_state(bootstrap: list[str], topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) → (leader, ISR size)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        return {
            (t["name"], p["partition_index"]): (int(p["leader_id"]), len(p["isr_nodes"]))
            for t in admin.describe_topics(topics)
            for p in t["partitions"]
        }
    finally:
        admin.close()


def _in_sync(bootstrap: list[str], topics: list[str]) -> bool:
    try:
        return all(isr == 3 for _, isr in _partition_state(bootstrap, topics).values())
    except Exception:
        return False


def _slack_ids(slack: FakeSlack, first: int) -> list[str]:
    """Alert ids of every Slack message the server accepted from request ``first`` on (from the
    feedback buttons' block ids)."""
    ids: list[str] = []
    for request in slack.requests[first:]:
        if not request.delivered or request.method != "chat.postMessage":
            continue
        blocks = request.body.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        ids += [b["block_id"].split(":", 2)[2] for b in blocks if str(b.get("block_id", "")).startswith("actions:")]
    return ids


@dataclass
class Fixture:
    """What one fault's run shares with its fault function."""

    ctx: Context
    cluster: Cluster
    settings: Settings
    watch: ReadyWatch
    sender: Sender
    worker: ManagedProcess
    topics: list[str]
    notes: list[str] = field(default_factory=list)


def _fault_leader(fx: Fixture) -> tuple[float, float]:
    state = _partition_state(fx.settings.bootstrap_servers, fx.topics)
    leader = state[(fx.topics[0], 0)][0]
    led = sorted(
        f"{t.removeprefix(fx.settings.topic_prefix).lstrip('.-')}/{p}"
        for (t, p), (lead, _) in state.items()
        if lead == leader
    )
    start = fx.watch.now()
    fx.cluster.kill(leader, signal.SIGKILL)
    time.sleep(10)
    fx.cluster.restart(leader)
    fx.notes.append(f"SIGKILL broker {leader} (leader of {', '.join(led)}), back after {fx.watch.now() - start:.0f}s")
    return start, fx.watch.now()


def _fault_min_isr(fx: Fixture) -> tuple[float, float]:
    state = _partition_state(fx.settings.bootstrap_servers, fx.topics)
    leader = state[(fx.topics[0], 0)][0]
    down = [leader, next(n for n in BROKER_PORTS if n != leader)]
    start = fx.watch.now()
    for node in down:
        fx.cluster.kill(node, signal.SIGKILL)
    time.sleep(60)
    for node in down:
        fx.cluster.start(node)
    for node in down:
        fx.cluster.wait_started(node)
    fx.notes.append(f"SIGKILL brokers {down} for 60s, back after {fx.watch.now() - start:.0f}s")
    return start, fx.watch.now()


def _fault_worker(fx: Fixture) -> tuple[float, float]:
    start = fx.watch.now()
    fx.worker.kill(signal.SIGKILL)
    fx.worker = fx.ctx.start(["preempt", "worker"], fx.settings, name="sweep-worker-again")
    wait(fx.worker, "rules worker ready", 180)
    fx.notes.append(f"worker SIGKILLed mid-stream, restarted ready after {fx.watch.now() - start:.0f}s")
    return start, fx.watch.now()


def _fault_rolling(fx: Fixture) -> tuple[float, float]:
    start = fx.watch.now()
    for node in BROKER_PORTS:
        fx.cluster.kill(node, signal.SIGTERM)
        fx.cluster.restart(node)
        poll(lambda: _in_sync(fx.settings.bootstrap_servers, fx.topics), timeout_s=120, interval_s=1.0)
    fx.notes.append(f"rolling restart of brokers 1,2,3 (each waited back in sync) in {fx.watch.now() - start:.0f}s")
    return start, fx.watch.now()


FAULT_RUNNERS: dict[str, Callable[[Fixture], tuple[float, float]]] = {
    "leader": _fault_leader,
    "min-isr": _fault_min_isr,
    "worker": _fault_worker,
    "rolling": _fault_rolling,
}


def run_broker_sweep(ctx: Context, faults: tuple[str, ...] = FAULTS) -> list[Row]:
    """Scenario 12 (see the module docstring): one row per fault."""
    base, web = _ports()
    home = Path(os.environ.get("PREEMPT_CHAOS_CLUSTER_HOME", str(ctx.workdir))) / f"cluster-{uuid.uuid4().hex[:6]}"
    cluster = Cluster.on_ports(home, _classpath(), base)
    cluster.format()
    rows: list[Row] = []
    with ExitStack() as stack:
        stack.callback(cluster.stop_all)
        for node in BROKER_PORTS:
            cluster.start(node)
        for node in BROKER_PORTS:
            cluster.wait_started(node)
        slack = stack.enter_context(started(FakeSlack()))
        mail = stack.enter_context(started(FakeSMTP()))
        rows.extend(_run_fault(ctx, cluster, slack, mail, fault, web) for fault in faults)
    return rows


def _run_fault(ctx: Context, cluster: Cluster, slack: FakeSlack, mail: FakeSMTP, fault: str, web: int) -> Row:
    row = Row(f"12 3-broker sweep: {fault}")
    routes = ctx.workdir / "routes-sweep.yaml"
    routes.write_text(ROUTES)
    ports = {"worker": web, "notifier": web + 1, "ingest": web + 2}
    settings = ctx.settings(
        f"sweep-{fault}", broker=f"kafka://{cluster.bootstrap}", topic_replication=3, event_time_only=True,
        worker_web_port=ports["worker"], notifier_web_port=ports["notifier"], ingest_port=ports["ingest"],
        routes_path=routes, slack_api_url=slack.api_url, smtp_host=mail.host, smtp_port=mail.port,
        ingest_api_keys=(f"chaos={key_digest(INGEST_KEY)}",), partition_stall_seconds=30.0,
        delivery_retry_initial_seconds=0.5, delivery_retry_max_seconds=4.0,
    )  # fmt: skip
    days, accounts = (3, 30) if ctx.quick else (4, 50)
    events, accts, expected = _history(ctx, f"sweep-{fault}", days, accounts, settings)
    lines = events.read_bytes().splitlines()
    row.load = f"{len(lines)} events, {accounts} accounts, RF 3, min ISR 2"
    row.expected = len(expected)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5,
        delivery_timeout_ms=300_000, max_block_ms=300_000,
    )  # fmt: skip
    publish_lines(producer, names.accounts, accts)
    slack_before, mail_before = len(slack.requests), len(mail.messages)
    worker = ctx.start(["preempt", "worker"], settings, name=f"sweep-{fault}-worker")
    notifier = ctx.start(["preempt", "notifier"], settings, name=f"sweep-{fault}-notifier")
    ingest = ctx.start(["preempt", "ingest"], settings, name=f"sweep-{fault}-ingest")
    wait(worker, "rules worker ready", 240)
    wait(notifier, "notifier ready", 120)
    wait_healthy(ports["ingest"], ingest, timeout_s=120)
    # The changelog topics exist once the worker made its tables.
    topics = [
        names.events,
        names.alerts,
        *[t for t in _topics(settings) if t.startswith(settings.topic_prefix) and "changelog" in t],
    ]
    watch = ReadyWatch(ports).start()
    first = orjson.loads(lines[0])["timestamp"]
    prober = Prober(ports["ingest"], first).start()
    sender = Sender(producer, names.events, lines, rate=300.0 if ctx.quick else 400.0)
    thread = threading.Thread(target=sender.run, name="sweep-sender", daemon=True)
    thread.start()
    sender.half.wait(timeout=300)
    fx = Fixture(ctx, cluster, settings, watch, sender, worker, topics)
    fault_start, fault_end = FAULT_RUNNERS[fault](fx)
    thread.join(timeout=600)
    row.faults = "; ".join(fx.notes)
    complete = poll(lambda: set(_alert_ids(settings)) >= expected, timeout_s=300, interval_s=3.0)
    alerts_at = watch.now() - fault_end
    poll(
        lambda: set(_slack_ids(slack, slack_before)) >= expected and len(mail.messages) - mail_before >= 1,
        timeout_s=180,
        interval_s=2.0,
    )
    time.sleep(5.0)  # a duplicate would follow right behind
    # Ready again: every process answers 200 (give the stall watchdog its time to clear).
    poll(lambda: all(watch.status(n) == 200 for n in ports), timeout_s=120, interval_s=1.0)
    prober.stop()
    time.sleep(2.5)
    watch.stop()

    emitted = _alert_ids(settings)
    stored = {orjson.loads(r.value)["event_id"] for r in read_topic(settings, names.events, idle_s=3.0, timeout_s=180)}
    acked = sender.acked()
    delivered_log = [(r["alert_id"], r["target"]) for r in log_events(notifier, "alert delivered")]
    slack_got = _slack_ids(slack, slack_before)
    mails = mail.messages[mail_before:]
    mail_ids = Counter(m.message["Message-ID"] for m in mails)
    row.emitted = len(set(emitted))
    row.delivered = len({a for a, _ in delivered_log})
    row.lost = len(expected - set(emitted))
    row.duplicated = duplicates([f"{a} {t}" for a, t in delivered_log]) + duplicates(slack_got)
    row.duplicated += sum(n - 1 for n in mail_ids.values())
    row.check(not sender.error, f"the producer never failed ({sender.error[:1]})")
    row.check(len(acked) == len(lines), f"every event acknowledged ({len(acked)}/{len(lines)})")
    row.check(not acked - stored, f"0 acknowledged events lost ({len(acked - stored)} missing)")
    row.check(not set(prober.acked) - stored, f"0 ingest-acknowledged probes lost ({len(set(prober.acked) - stored)})")
    row.check(
        complete and set(emitted) == expected, f"alerts on the topic = backtest (extra {len(set(emitted) - expected)})"
    )
    row.check(set(slack_got) == expected, f"Slack got every alert ({len(expected - set(slack_got))} missing)")
    row.check(row.duplicated == 0, "nothing delivered twice (log, Slack, email Message-IDs)")
    for name in ports:
        row.check(watch.status(name) == 200, f"{name} /readyz 200 after the fault")
    row.notes.append(
        f"alerts: expected {len(expected)}, on topic {len(set(emitted))} ({duplicates(emitted)} same-id copies), "
        f"Slack {len(set(slack_got))} ids in {len(slack_got)} blocks, {len(mails)} emails, "
        f"{len(delivered_log)} delivery lines"
    )
    row.notes.append(f"all alerts on the topic {alerts_at:.0f}s after the fault ended")
    row.notes.append(f"ingest probes: {dict(prober.statuses)}")
    ready = {n: watch.ready_again(n, fault_end) for n in ports}
    row.notes.append(
        "ready again after the fault: "
        + ", ".join(f"{n} {v:.0f}s" if v is not None else f"{n} never" for n, v in ready.items())
    )
    row.notes.append(f"/readyz from the fault on: {watch.timeline(fault_start)}")
    row.notes.append(f"events late {_late(fx.worker)} (of the last worker)")
    producer.close()
    for proc in (fx.worker, notifier, ingest):
        proc.stop()
    ctx.collect_dead_letters(f"sweep-{fault}")  # for the secrets scan, while this cluster runs
    return row.finish()


def _late(worker: ManagedProcess) -> str:
    return str(sum(int(r.get("more_late_since_last_warning", 0)) + 1 for r in log_events(worker, "late event ignored")))


def _topics(settings: Settings) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10000)
    try:
        return sorted(admin.list_topics())
    finally:
        admin.close()


def _alert_ids(settings: Settings) -> list[str]:
    return [orjson.loads(r.value)["alert_id"] for r in read_topic(settings, settings.topic("alerts"), idle_s=3.0)]


__all__ = ["FAULTS", "run_broker_sweep"]
