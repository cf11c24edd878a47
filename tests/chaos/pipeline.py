"""Pipeline scenarios: the SASL_SSL pipeline with a refused client (11), a rules worker SIGKILLed 5 times (1).

Both replay simulated history whose alerts are known in advance (``preempt backtest`` on the same
file), publish it with the real CLI/SDK, run the real ``preempt worker`` and ``preempt notifier``,
and compare what reached ``<prefix>.alerts`` and what the notifier delivered with the backtest.
"""

from __future__ import annotations

import json
import random
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.chaos.harness import Context, Row, ScenarioError, duplicates, log_events, poll, read_topic, wait
from tests.integration.pipeline_support import (
    append_heartbeats,
    backtest_alert_ids,
    count_lines,
    publish_lines,
    simulate,
)
from tests.integration.secured_kafka import start_sasl_broker, stop_sasl_broker

CONSOLE_ROUTES = """
receivers:
  - name: console
    console_configs: [{}]
route:
  receiver: console
  group_by: [account_id, rule_id]
  group_wait: 0s
  group_interval: 1s
"""


def _history(ctx: Context, name: str, days: int, accounts: int, settings: Settings) -> tuple[Path, Path, set[str]]:
    out = ctx.workdir / name
    out.mkdir(parents=True, exist_ok=True)
    events, accts = simulate(out, days=days, accounts=accounts, seed=ctx.seed)
    append_heartbeats(events, settings.topic_partitions)
    expected = backtest_alert_ids(events, accts, out / "backtest.jsonl")
    if not expected:
        raise ScenarioError("the simulated history has no alerts to expect")
    return events, accts, expected


def _alert_ids(settings: Settings) -> list[str]:
    return [json.loads(r.value)["alert_id"] for r in read_topic(settings, settings.topic("alerts"), idle_s=3.0)]


def _notify_and_count(ctx: Context, settings: Settings, expected: set[str], name: str) -> list[str]:
    notifier = ctx.start(["preempt", "notifier"], settings, name=name)
    wait(notifier, "notifier ready", 120)
    delivered = lambda: [r["alert_id"] for r in log_events(notifier, "alert delivered")]  # noqa: E731
    poll(lambda: set(delivered()) >= expected, timeout_s=180)
    time.sleep(3.0)  # a duplicate would be delivered right behind the last alert
    got = delivered()
    notifier.stop()
    return got


def run_sasl_pipeline(ctx: Context) -> Row:
    """Scenario 11: publish → worker → notifier over a SASL_SSL-only broker; wrong credentials refused."""
    row = Row("11 SASL_SSL pipeline + wrong credentials")
    with tempfile.TemporaryDirectory(prefix="preempt-chaos-sasl-") as tmp:
        broker, script_env = start_sasl_broker(Path(tmp))
        try:
            fields = {k.removeprefix("PREEMPT_").lower(): v for k, v in broker.env.items()}
            routes = ctx.workdir / "routes-console.yaml"
            routes.write_text(CONSOLE_ROUTES)
            settings = ctx.settings(
                "sasl", event_time_only=True, worker_web_port=free_port(), routes_path=routes,
                notifier_web_port=free_port(), **fields,
            )  # fmt: skip
            ctx.secrets["kafka sasl password"] = broker.env["PREEMPT_KAFKA_SASL_PASSWORD"]
            days, accounts = (3, 12) if ctx.quick else (3, 40)
            events, accts, expected = _history(ctx, "sasl", days, accounts, settings)
            row.load = f"{count_lines(events)} events, {accounts} accounts, TLS + SCRAM-SHA-512"
            row.faults = "a client with a wrong password; an anonymous producer"
            row.expected = len(expected)
            ensure_topics(settings)
            producer = ctx.producer(settings)
            try:
                publish_lines(producer, TopicNames.from_settings(settings).accounts, accts)
            finally:
                producer.close()
            publish = ctx.start(["preempt", "publish", "--file", str(events)], settings, name="sasl-publish")
            publish.proc.wait(timeout=300)
            row.check(publish.proc.returncode == 0, "preempt publish over SASL_SSL")

            worker = ctx.start(["preempt", "worker"], settings, name="sasl-worker")
            wait(worker, "rules worker ready", 180)
            poll(lambda: set(_alert_ids(settings)) >= expected, timeout_s=240, interval_s=2.0)
            emitted = _alert_ids(settings)
            row.emitted = len(set(emitted))
            delivered = _notify_and_count(ctx, settings, expected, "sasl-notifier")
            worker.stop()
            row.delivered = len(set(delivered))
            row.lost = len(expected - set(delivered))
            row.duplicated = duplicates(delivered)
            row.check(set(emitted) == expected, "alerts on the topic = backtest")
            row.check(set(delivered) == expected and row.duplicated == 0, "every alert delivered once")

            wrong = ctx.settings("sasl-wrong", **{**fields, "kafka_sasl_password": "wrong-password-chaos"})
            refused = ctx.start(["preempt", "worker"], wrong, name="sasl-wrong-worker")
            started_at = time.monotonic()
            refused.proc.wait(timeout=60)
            took = time.monotonic() - started_at
            last = [line for line in refused.log_text().splitlines() if line.strip()][-1:]
            row.check(refused.proc.returncode == 1 and took < 30, "wrong password: worker exits 1 within 30 s")
            row.check(bool(last) and "refused the login" in last[0], "wrong password: one clear line")
            row.check("Traceback" not in refused.log_text(), "wrong password: no traceback")
            row.notes.append(f"wrong password refused in {took:.1f}s")
            row.check(_anonymous_write_refused(broker.bootstrap, settings.topic("alerts")), "anonymous write refused")
            ctx.collect_dead_letters("sasl")  # while this broker still runs
            ctx.collect_dead_letters("sasl-wrong")
        finally:
            ctx.prefixes = [(s, name) for s, name in ctx.prefixes if not name.startswith("sasl")]
            stop_sasl_broker(script_env)
    return row.finish()


def run_worker_sigkills(ctx: Context, kills: int = 5) -> Row:
    """Scenario 1: the rules worker SIGKILLed ``kills`` times at random moments under a replay."""
    row = Row(f"1 rules worker SIGKILLed {kills}x")
    rng = random.Random(ctx.seed)
    routes = ctx.workdir / "routes-console.yaml"
    routes.write_text(CONSOLE_ROUTES)
    settings = ctx.settings("sigkill", event_time_only=True, routes_path=routes, notifier_web_port=free_port())
    days, accounts = (3, 60) if ctx.quick else (7, 450)  # full: ~205k events
    events, accts, expected = _history(ctx, "sigkill", days, accounts, settings)
    total = count_lines(events)
    row.load = f"{total} events replayed, {accounts} accounts"
    row.expected = len(expected)
    ensure_topics(settings)
    producer = ctx.producer(settings)
    try:
        names = TopicNames.from_settings(settings)
        publish_lines(producer, names.accounts, accts)
        publish_lines(producer, names.events, events)
    finally:
        producer.close()

    moments: list[str] = []
    for i in range(kills):
        worker = ctx.start(["preempt", "worker"], _with_port(settings), name=f"sigkill-worker-{i}")
        wait(worker, "rules worker ready", 180)
        delay = rng.uniform(1.0, 8.0)
        time.sleep(delay)
        worker.kill(signal.SIGKILL)
        moments.append(f"{delay:.1f}s")
    row.faults = f"SIGKILL {kills}x, each {', '.join(moments)} after ready"
    final = ctx.start(["preempt", "worker"], _with_port(settings), name="sigkill-worker-final")
    wait(final, "rules worker ready", 180)
    poll(lambda: set(_alert_ids(settings)) >= expected, timeout_s=600, interval_s=3.0)
    emitted = _alert_ids(settings)
    row.emitted = len(set(emitted))
    delivered = _notify_and_count(ctx, settings, expected, "sigkill-notifier")
    final.stop()
    row.delivered = len(set(delivered))
    row.lost = len(expected - set(emitted))
    row.duplicated = duplicates(delivered)
    extra = set(emitted) - expected
    row.check(row.lost == 0, "0 lost")
    row.check(not extra, "final alert set = backtest (no extra ids)")
    row.check(row.duplicated == 0 and set(delivered) == expected, "0 duplicate deliveries")
    row.notes.append(f"{len(emitted)} alert records on the topic ({duplicates(emitted)} same-id copies)")
    return row.finish()


def _anonymous_write_refused(bootstrap: str, topic: str) -> bool:
    """True when a producer without credentials cannot write a forged alert."""
    try:
        producer = KafkaProducer(bootstrap_servers=[bootstrap], max_block_ms=3000)
    except KafkaError:
        return True
    try:
        producer.send(topic, b"forged alert").get(timeout=5)
    except KafkaError:
        return True
    finally:
        producer.close(timeout=2)
    return False


def _with_port(settings: Settings) -> Settings:
    return settings.model_copy(update={"worker_web_port": free_port()})


__all__: list[Any] = ["run_sasl_pipeline", "run_worker_sigkills"]
