"""``make bench``: the rules worker against the raw Kafka ceiling, on one broker and one topic.

1. Simulates 7 days of 200 accounts (``preempt simulate``, seed 7) and publishes them to a fresh
   events topic (4 partitions) with one heartbeat per partition at the end.
2. (a) Raw ceiling: a bare aiokafka ``getmany`` loop that decodes every record with
   ``schemas.decoder.decode_event`` — what any consumer must pay.
3. (b) The rules worker (``preempt worker``, default pack, event-time replay, memory:// store) on
   the same topic: events/s from its first to its last processed record (scraped from /metrics),
   changelog records per event (``preempt_state_writes_total``), peak RSS (VmHWM).
4. Latency: a live-mode worker, background traffic at a fixed rate plus one NPS detractor per
   second (the ``any`` rule fires on each): event time → alert read back from the alerts topic,
   p50/p99. It includes ``allowed_lateness`` (events are evaluated once the watermark passes them).

Rerunnable; prints a summary. Figures vary with the machine and what else runs on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer

from schemas.decoder import decode_event
from schemas.event import format_ts
from schemas.kafka_clients import aiokafka_config, kafka_python_config
from schemas.settings import Settings
from streams.topics import TopicNames, ensure_topics

REPO = Path(__file__).resolve().parents[1]
PREEMPT = str(Path(sys.executable).parent / "preempt")
RATE = float(os.environ.get("BENCH_RATE", "200"))  # live phase: background events/s
LIVE_SECONDS = float(os.environ.get("BENCH_LIVE_SECONDS", "30"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "topic_prefix": f"bench{uuid.uuid4().hex[:8]}",
        "store": "memory://",
        "data_dir": Path(tempfile.mkdtemp(prefix="preempt-bench-")),
        "worker_web_port": _free_port(),
        "log_level": "WARNING",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None or isinstance(value, tuple):
            continue
        env[f"PREEMPT_{name.upper()}"] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


def _metrics(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _sum(samples: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in samples.items() if k == prefix or k.startswith(prefix + "{"))


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PREEMPT, "worker"], env=_env(settings), stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def prepare(workdir: Path, settings: Settings) -> tuple[int, list[bytes]]:
    """Simulate, add heartbeats, publish; returns (events, values)."""
    events, accounts = workdir / "events.jsonl", workdir / "accounts.jsonl"
    subprocess.run(
        [
            PREEMPT,
            "simulate",
            "--days",
            "7",
            "--accounts",
            "200",
            "--seed",
            "7",
            "--start",
            "2026-11-01T00:00:00Z",
            "--output",
            str(events),
            "--accounts-output",
            str(accounts),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(REPO))
    from tests.integration.pipeline_support import append_heartbeats

    append_heartbeats(events, settings.topic_partitions)
    names = TopicNames.from_settings(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=20,
        batch_size=512 * 1024,
        **kafka_python_config(settings),
    )
    values = events.read_bytes().splitlines()
    for line in accounts.read_bytes().splitlines():
        producer.send(names.accounts, key=json.loads(line)["account_id"].encode(), value=line)
    for value in values:
        producer.send(names.events, key=json.loads(value)["account_id"].encode(), value=value)
    producer.flush()
    producer.close()
    return len(values), values


async def raw_ceiling(settings: Settings, total: int) -> float:
    """Events/s of a bare aiokafka getmany loop decoding every record."""
    topic = TopicNames.from_settings(settings).events
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, **aiokafka_config(settings)
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen, start = 0, time.perf_counter()
        now = time.time()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batch.values():
                for record in records:
                    decode_event(
                        record.value,
                        max_bytes=settings.max_event_bytes,
                        max_future_skew=settings.max_future_skew_seconds,
                        now=now,
                    )
                seen += len(records)
        return total / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def worker_replay(settings: Settings, total: int, workdir: Path) -> dict[str, float]:
    """The rules worker over the same topic: events/s, changelog records/event, peak RSS."""
    replay = settings.model_copy(update={"event_time_only": True})
    proc = _start_worker(replay, workdir / "worker-replay.log")
    first = done = None
    samples: dict[str, float] = {}
    seen = last_seen = 0.0
    try:
        deadline = time.monotonic() + 900
        last_progress = time.monotonic()
        while time.monotonic() < deadline:
            samples = _metrics(replay.worker_web_port)
            seen = _sum(samples, "preempt_events_total")
            if seen > 0 and first is None:
                first = (time.perf_counter(), seen)
            if seen > last_seen:
                last_seen, last_progress, done = seen, time.monotonic(), time.perf_counter()
            if seen >= total or (seen > 0 and time.monotonic() - last_progress > 15):
                break  # all processed, or stalled (reported below rather than waited on forever)
            time.sleep(0.1)
        rss = _peak_rss_mb(proc.pid)
    finally:
        _stop(proc)
    if first is None or done is None:
        raise SystemExit(f"worker did not finish; see {workdir / 'worker-replay.log'}")
    if seen < total:
        print(f"!! the worker processed {seen:,.0f} of {total:,} events (see docs/pipeline.md, known issues)")
    return {
        "events_per_s": (seen - first[1]) / (done - first[0]),
        "changelog_per_event": _sum(samples, "preempt_state_writes_total") / total,
        "alerts": _sum(samples, "preempt_alerts_total"),
        "peak_rss_mb": rss,
    }


def live_latency(workdir: Path) -> dict[str, float]:
    """Event time → alert read back, at a fixed background rate, in live mode."""
    settings = _settings(log_level="INFO")  # INFO: the readiness line below is an info log
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    proc = _start_worker(settings, workdir / "worker-live.log")
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5, **kafka_python_config(settings))
    consumer = KafkaConsumer(
        names.alerts,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=200,
        **kafka_python_config(settings),
    )
    latencies: list[float] = []
    sent_detractors = 0
    try:
        ready_by = time.monotonic() + 120
        while "rules worker ready" not in (workdir / "worker-live.log").read_text(errors="replace"):
            if time.monotonic() > ready_by:
                raise SystemExit(f"live worker not ready; see {workdir / 'worker-live.log'}")
            time.sleep(0.2)
        start = time.time()
        i = 0
        while time.time() - start < LIVE_SECONDS:
            tick = time.time()
            for _ in range(int(RATE)):
                i += 1
                account = f"live-{i % 500}"
                body = {
                    "event_id": f"bg-{i}",
                    "event": "Report Exported",
                    "account_id": account,
                    "timestamp": format_ts(time.time()),
                }
                producer.send(names.events, key=account.encode(), value=json.dumps(body).encode())
            sent_detractors += 1
            account = f"nps-{sent_detractors}"
            body = {
                "event_id": f"nps-{sent_detractors}",
                "event": "NPS Submitted",
                "account_id": account,
                "timestamp": format_ts(time.time()),
                "properties": {"score": 3},
            }
            producer.send(names.events, key=account.encode(), value=json.dumps(body).encode())
            producer.flush()
            _collect(consumer, latencies)
            time.sleep(max(0.0, 1.0 - (time.time() - tick)))
        deadline = time.time() + 20
        while len(latencies) < sent_detractors and time.time() < deadline:
            _collect(consumer, latencies)
    finally:
        producer.close()
        consumer.close()
        _stop(proc)
    latencies.sort()
    return {
        "detractors": sent_detractors,
        "alerts": len(latencies),
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan"),
        "lateness": settings.allowed_lateness_seconds,
        "tick": settings.clock_tick_seconds,
    }


def _collect(consumer: KafkaConsumer, latencies: list[float]) -> None:
    for record in consumer:
        alert = json.loads(record.value)
        if alert["rule_id"] == "nps-detractor":
            fired = datetime.fromisoformat(alert["fired_at"].replace("Z", "+00:00")).astimezone(UTC).timestamp()
            latencies.append(record.timestamp / 1000 - fired)


def main() -> None:
    """Run the benchmark and print the summary."""
    workdir = Path(tempfile.mkdtemp(prefix="preempt-bench-"))
    settings = _settings()
    ensure_topics(settings)
    print(f"bench: topics {settings.topic_prefix}.*, {settings.topic_partitions} partitions; logs in {workdir}")
    total, _ = prepare(workdir, settings)
    print(f"bench: published {total:,} events (7 days x 200 accounts + heartbeats)")
    ceiling = asyncio.run(raw_ceiling(settings, total))
    print(f"(a) raw ceiling (aiokafka getmany + decode_event): {ceiling:,.0f} events/s")
    replay = worker_replay(settings, total, workdir)
    print(
        f"(b) rules worker, default pack:                  {replay['events_per_s']:,.0f} events/s "
        f"({replay['alerts']:.0f} alerts)"
    )
    print(f"    ratio worker/ceiling: {replay['events_per_s'] / ceiling:.2f}")
    print(f"    changelog records per event: {replay['changelog_per_event']:.3f}")
    print(f"    peak RSS of the worker: {replay['peak_rss_mb']:.0f} MiB")
    live = live_latency(workdir)
    print(
        f"latency (live, {RATE:.0f} events/s + 1 detractor/s for {LIVE_SECONDS:.0f}s; allowed_lateness "
        f"{live['lateness']}s, tick {live['tick']}s): event->alert p50 {live['p50']:.2f}s, p99 {live['p99']:.2f}s "
        f"({live['alerts']:.0f}/{live['detractors']:.0f} alerts)"
    )


if __name__ == "__main__":
    main()
