"""``make bench``: the rules worker against its two ceilings, on one broker and one topic; one table.

1. Simulates 7 days of 200 accounts (``preempt simulate``, seed 7) and publishes them to a fresh
   events topic (``PREEMPT_TOPIC_PARTITIONS`` partitions) with one heartbeat per partition.
2. ``raw_events_per_s``: a bare aiokafka ``getmany`` loop that decodes every record with
   ``schemas.decoder.decode_event`` — what any consumer must pay.
3. ``ceiling_events_per_s``: decode + rule engine in one loop, no Kafka (the same records, one
   global clock as in the backtest) — the in-process ceiling.
4. ``engine_events_per_s``: ``python -m bench.engine`` (pure engine, one core, 30 days × 200).
5. ``pipeline_events_per_s``: the rules worker (``preempt worker``, default pack, event-time
   replay, memory:// store) on the same topic, from its first to its last processed record
   (scraped from /metrics); ``changelog_records_per_event`` (``preempt_state_writes_total``);
   ``peak_rss_mb`` (VmHWM). ``pipeline_cpu_events_per_s`` and ``ceiling_cpu_events_per_s`` are the
   same per CPU second (the worker's threads; the ceiling's loop), and ``ratio_to_ceiling_cpu``
   their ratio: on a shared machine these move far less with the load than the wall-clock figures.
6. ``latency_p50_ms`` / ``latency_p99_ms``: a live-mode worker, background traffic at a steady
   half the measured pipeline rate (sent in 20 ms slices by a pre-encoded aiokafka batch producer,
   :class:`LiveTraffic`) plus ``BENCH_LIVE_DETRACTORS_PER_S`` (5) NPS detractors per second for
   ``BENCH_LIVE_SECONDS`` (30) after a ``BENCH_LIVE_WARMUP_SECONDS`` (3) warm-up (the
   ``nps-detractor`` rule fires on each): the alert record's Kafka timestamp − the alert's
   ``fired_at`` (the detractor's event time), read back from the alerts topic. It includes
   ``allowed_lateness`` (events are evaluated once the watermark passes them).
   ``live_sent_events_per_s`` is the background rate actually sent, ``latency_max_ms`` the
   slowest alert, ``live_worker_cpu_s`` the live worker's CPU seconds over the phase.
7. ``rss_mb_100k_accounts``: ``python -m bench.state_memory`` (state table + state cache holding
   100,000 accounts' states).

Prints one table and writes ``.bench/latest.json``. Figures vary with the machine and its load;
the table says the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaProducer
from kafka.errors import KafkaError

from schemas.decoder import Rejection, decode_event
from schemas.event import format_ts
from streams.runtime.kafka_clients import aiokafka_config, kafka_python_config
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port, metric_sum, scrape, settings_env
from streams.runtime.topics import TopicNames, delete_topics_under, ensure_topics
from streams.simulate.heartbeats import append_heartbeats
from streams.worker.processor import partition_for_key

REPO = Path(__file__).resolve().parents[1]
PREEMPT = str(Path(sys.executable).parent / "preempt")
RATE = os.environ.get("BENCH_RATE")  # live phase: background events/s (default: half the pipeline rate)
LIVE_SECONDS = float(os.environ.get("BENCH_LIVE_SECONDS", "30"))  # live phase: seconds of detractors
LIVE_WARMUP_SECONDS = float(os.environ.get("BENCH_LIVE_WARMUP_SECONDS", "3"))  # background only, not measured
LIVE_DETRACTORS_PER_S = float(os.environ.get("BENCH_LIVE_DETRACTORS_PER_S", "5"))
OUT = REPO / ".bench" / "latest.json"


PREFIXES: list[str] = []  # every run's topic prefixes, deleted at the end (main)


def _settings(**overrides: object) -> Settings:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    PREFIXES.append(prefix)
    base: dict[str, object] = {
        "topic_prefix": prefix,
        "store": "memory://",
        "data_dir": Path(tempfile.mkdtemp(prefix="preempt-bench-")),
        "worker_web_port": free_port(),
        "log_level": "WARNING",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def _metrics(port: int) -> dict[str, float]:
    """The worker's /metrics samples, or none while it is not serving yet."""
    try:
        return scrape(port, timeout_s=2)
    except OSError:
        return {}


def _acked(samples: dict[str, float]) -> float:
    """Events of a /metrics scrape whose output is written and offsets acked (evaluated, for a
    worker without ``preempt_events_acked_total``). Not Faust's per-topic received counter: its
    Prometheus sensor removes that counter's series at every rebalance, the start-up one included."""
    if "preempt_events_acked_total" in samples:
        return samples["preempt_events_acked_total"]
    return metric_sum(samples, "preempt_events_total")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        [PREEMPT, "worker"],
        env={**os.environ, **settings_env(settings)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
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
    cpu_first = cpu_done = 0.0
    samples: dict[str, float] = {}
    seen = last_seen = 0.0
    try:
        deadline = time.monotonic() + 900
        last_progress = time.monotonic()
        while time.monotonic() < deadline and proc.poll() is None:
            samples = _metrics(replay.worker_web_port)
            # Events whose output is written and offsets acked, not merely evaluated (a worker
            # without that counter: evaluated).
            seen = _acked(samples)
            if seen > 0 and first is None:
                first, cpu_first = (time.perf_counter(), seen), _cpu_seconds(proc.pid)
            if seen > last_seen:
                last_seen, last_progress, done = seen, time.monotonic(), time.perf_counter()
                cpu_done = _cpu_seconds(proc.pid)
            if seen >= total or (seen > 0 and time.monotonic() - last_progress > 15):
                break  # all processed, or stalled (reported below rather than waited on forever)
            time.sleep(0.1)
        rss = _peak_rss_mb(proc.pid)
    finally:
        _stop(proc)
    if first is None or done is None:
        raise SystemExit(f"worker did not finish; see {workdir / 'worker-replay.log'}")
    if seen < total:
        evaluated = metric_sum(samples, "preempt_events_total")
        acked = _acked(samples)
        _progress(
            f"!! the worker processed {seen:,.0f} of {total:,} events (evaluated {evaluated:,.0f}, "
            f"acked {acked:,.0f}; see docs/pipeline.md, known issues)"
        )
    return {
        "events_per_s": (seen - first[1]) / (done - first[0]),
        # Per CPU second of the worker (all its threads): what it costs, whatever else the machine runs.
        "cpu_events_per_s": (seen - first[1]) / max(cpu_done - cpu_first, 0.01),
        "changelog_per_event": metric_sum(samples, "preempt_state_writes_total") / total,
        "alerts": metric_sum(samples, "preempt_alerts_total"),
        "peak_rss_mb": rss,
    }


def live_latency(workdir: Path, rate: float) -> dict[str, Any]:
    """Event time → alert read back, at a fixed background rate, in live mode (see :class:`LiveTraffic`)."""
    settings = _settings(log_level="INFO")  # INFO: the readiness line below is an info log
    ensure_topics(settings)
    proc = _start_worker(settings, workdir / "worker-live.log")
    try:
        ready_by = time.monotonic() + 120
        while "rules worker ready" not in (workdir / "worker-live.log").read_text(errors="replace"):
            if time.monotonic() > ready_by or proc.poll() is not None:
                raise SystemExit(f"live worker not ready; see {workdir / 'worker-live.log'}")
            time.sleep(0.2)
        traffic = LiveTraffic(settings, rate, LIVE_SECONDS, LIVE_WARMUP_SECONDS, LIVE_DETRACTORS_PER_S)
        cpu_start = _cpu_seconds(proc.pid)
        asyncio.run(traffic.run())
        cpu = _cpu_seconds(proc.pid) - cpu_start
    finally:
        _stop(proc)
    latencies = sorted(traffic.latencies.values())
    return {
        "detractors": len(traffic.sent),
        "alerts": len(latencies),
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan"),
        "max": latencies[-1] if latencies else float("nan"),
        "sent_rate": traffic.background_sent / max(traffic.background_seconds, 1e-9),
        "worker_cpu_s": cpu,
        "lateness": settings.allowed_lateness_seconds,
        "tick": settings.clock_tick_seconds,
    }


class LiveTraffic:
    """The live phase's load: background events at a steady ``rate`` plus NPS detractors; the alerts read back.

    Background traffic ("Report Exported" on ``BENCH_LIVE_ACCOUNTS`` (500) accounts, which no rule
    of the default pack alerts on) is sent in slices of ``SLICE_SECONDS``: each slice sends the
    events due by then (so the rate holds even when a slice starts late), stamped with the time
    the slice is built. Records are pre-encoded and appended to one aiokafka batch per partition
    (Kafka's default murmur2 partition of the key, as every client puts it): about 1 µs of CPU per
    record, where kafka-python's ``send`` costs 20–30 µs — on a 2-core machine a per-record
    producer at 25,000 events/s took most of a core from the worker it measures, and sending a
    second's events as one burst left the worker behind for most of every second. After
    ``warmup`` seconds, ``per_second`` detractors per second (one account each, so no cooldown
    applies), each stamped with the time it is sent; the ``nps-detractor`` rule fires on every
    one. Latency = the alert record's Kafka timestamp − the alert's ``fired_at`` (the detractor's
    event time); the alert is read back from
    the alerts topic.
    """

    SLICE_SECONDS = 0.02
    BACKGROUND = b'{"event_id":"bg-%d","event":"Report Exported","account_id":"live-%d","timestamp":"%s"}'
    DETRACTOR = (
        b'{"event_id":"nps-%d","event":"NPS Submitted","account_id":"nps-%d","timestamp":"%s","properties":{"score":3}}'
    )

    def __init__(self, settings: Settings, rate: float, seconds: float, warmup: float, per_second: float) -> None:
        self.settings = settings
        self.names = TopicNames.from_settings(settings)
        self.rate = rate
        self.seconds = seconds
        self.warmup = warmup
        self.per_second = per_second
        self.accounts = int(os.environ.get("BENCH_LIVE_ACCOUNTS", "500"))
        self.sent: dict[str, float] = {}
        """Detractor account → its event time (the wall clock when it was handed to the producer)."""
        self.acked: dict[str, float] = {}
        """Detractor account → when the broker acknowledged it."""
        self.latencies: dict[str, float] = {}
        """Detractor account → alert record timestamp − fired_at (seconds)."""
        self.alert_timestamps: dict[str, float] = {}
        self.background_sent = 0
        self.background_seconds = 0.0
        self._sending = True

    async def run(self) -> None:
        """Send the traffic, then wait (at most 60 s) for the alerts of every detractor sent."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers, linger_ms=0, **aiokafka_config(self.settings)
        )
        consumer = AIOKafkaConsumer(
            self.names.alerts,
            bootstrap_servers=self.settings.bootstrap_servers,
            auto_offset_reset="earliest",
            **aiokafka_config(self.settings),
        )
        await producer.start()
        await consumer.start()
        reader = asyncio.ensure_future(self._read_alerts(consumer))
        try:
            await self._send(producer)
            self._sending = False
            if len(self.latencies) < len(self.sent):
                # A worker behind the live rate still delivers: wait (bounded), then report what is missing.
                await asyncio.wait([reader], timeout=60)
            if reader.done():
                reader.result()  # raises what stopped the alert reader, rather than report fewer alerts
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await consumer.stop()
            await producer.stop()

    async def _send(self, producer: AIOKafkaProducer) -> None:
        topic = self.names.events
        partitions = sorted(await producer.partitions_for(topic))
        keys = [f"live-{n}".encode() for n in range(self.accounts)]
        where = [partitions[partition_for_key(key, len(partitions))] for key in keys]
        pending: set[asyncio.Future[Any]] = set()
        start = time.time()
        detractors_from = start + self.warmup
        end = detractors_from + self.seconds
        i = 0
        while (now := time.time()) < end:
            stamp = format_ts(now).encode()
            due = int(self.rate * (now - start)) - i
            batches: dict[int, Any] = {}
            for _ in range(due):
                i += 1
                n = i % self.accounts
                partition = where[n]
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = producer.create_batch()
                if batch.append(key=keys[n], value=self.BACKGROUND % (i, n, stamp), timestamp=None) is None:
                    pending.add(await producer.send_batch(batch, topic, partition=partition))
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=keys[n], value=self.BACKGROUND % (i, n, stamp), timestamp=None)
            for partition, batch in batches.items():
                pending.add(await producer.send_batch(batch, topic, partition=partition))
            self.background_sent = i
            if now >= detractors_from and len(self.sent) < (now - detractors_from) * self.per_second:
                await self._detractor(producer, topic, partitions, pending)
            delivered = {f for f in pending if f.done()}
            for f in delivered:
                f.result()  # raises what a failed delivery raised
            pending -= delivered
            await asyncio.sleep(max(0.0, self.SLICE_SECONDS - (time.time() - now)))
        self.background_seconds = time.time() - start
        if pending:
            await asyncio.gather(*pending)

    async def _detractor(
        self, producer: AIOKafkaProducer, topic: str, partitions: list[int], pending: set[asyncio.Future[Any]]
    ) -> None:
        k = len(self.sent) + 1
        account = f"nps-{k}"
        key = account.encode()
        partition = partitions[partition_for_key(key, len(partitions))]
        batch = producer.create_batch()
        ts = time.time()
        batch.append(key=key, value=self.DETRACTOR % (k, k, format_ts(ts).encode()), timestamp=None)
        delivery = await producer.send_batch(batch, topic, partition=partition)
        self.sent[account] = _ms(ts)
        delivery.add_done_callback(lambda _: self.acked.setdefault(account, time.time()))
        pending.add(delivery)

    async def _read_alerts(self, consumer: AIOKafkaConsumer) -> None:
        async for record in consumer:
            alert = json.loads(record.value)
            if alert["rule_id"] == "nps-detractor" and alert["account_id"] in self.sent:
                fired = datetime.fromisoformat(alert["fired_at"].replace("Z", "+00:00")).timestamp()
                self.latencies.setdefault(alert["account_id"], record.timestamp / 1000 - fired)
                self.alert_timestamps.setdefault(alert["account_id"], record.timestamp / 1000)
                if not self._sending and len(self.latencies) >= len(self.sent):
                    return


def _ms(ts: float) -> float:
    """``ts`` as the event carries it: RFC 3339 with milliseconds (``format_ts`` truncates)."""
    return math.floor(ts * 1000) / 1000


def inprocess_ceiling(settings: Settings, values: list[bytes]) -> tuple[float, float]:
    """Events/s of decode + rule engine in one loop over the published records (no Kafka): per
    wall-clock second and per CPU second."""
    from rules.clock import EventTimeClock
    from rules.engine import RuleEngine
    from rules.loader import load_rules

    engine = RuleEngine(load_rules(settings.rules_path))
    states: dict[str, Any] = {}
    clock = EventTimeClock(settings.allowed_lateness_seconds)
    watermark = -math.inf
    gc.collect()
    start, cpu_start = time.perf_counter(), time.thread_time()
    now = time.time()
    for value in values:
        event = decode_event(
            value, max_bytes=settings.max_event_bytes, max_future_skew=settings.max_future_skew_seconds, now=now
        )
        if isinstance(event, Rejection):
            continue
        watermark = clock.after_event(event.ts)
        state = states.get(event.account_id)
        if state is None:
            state = states[event.account_id] = engine.new_state()
        engine.on_event(state, event, watermark)
    for state in states.values():
        engine.advance(state, watermark)
    wall, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
    return len(values) / wall, len(values) / max(cpu, 1e-6)


def _json_of(module: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


ROWS = (
    ("raw_events_per_s", "raw ceiling: aiokafka getmany + decode_event", "{:,.0f}"),
    ("ceiling_events_per_s", "in-process ceiling: decode + engine, no Kafka", "{:,.0f}"),
    ("engine_events_per_s", "pure engine (bench.engine, one core)", "{:,.0f}"),
    ("engine_cpu_events_per_s", "pure engine, per CPU second", "{:,.0f}"),
    ("pipeline_events_per_s", "rules worker, default pack, replay", "{:,.0f}"),
    ("ratio", "pipeline / raw", "{:.3f}"),
    ("ratio_to_ceiling", "pipeline / in-process ceiling", "{:.3f}"),
    ("ceiling_cpu_events_per_s", "in-process ceiling, per CPU second", "{:,.0f}"),
    ("pipeline_cpu_events_per_s", "rules worker, per CPU second (all threads)", "{:,.0f}"),
    ("ratio_to_ceiling_cpu", "the same ratio per CPU second", "{:.3f}"),
    ("latency_p50_ms", "event -> alert p50 (live)", "{:,.0f}"),
    ("latency_p99_ms", "event -> alert p99 (live)", "{:,.0f}"),
    ("changelog_records_per_event", "changelog records per event", "{:.3f}"),
    ("peak_rss_mb", "worker peak RSS (MiB)", "{:,.0f}"),
    ("rss_mb_100k_accounts", "RSS with 100,000 accounts' state (MiB)", "{:,.0f}"),
    ("accounts", "simulated accounts", "{:,}"),
    ("events", "events (with heartbeats)", "{:,}"),
)


def print_table(figures: dict[str, Any]) -> None:
    """The one table ``make bench`` prints."""
    width = max(len(label) for _, label, _ in ROWS)
    print(f"{'figure':<{width}}  {'value':>12}  key")
    for key, label, fmt in ROWS:
        value = figures.get(key)
        shown = "n/a" if value is None else fmt.format(value)
        print(f"{label:<{width}}  {shown:>12}  {key}")
    print(
        f"(partitions {figures['partitions']}; live rate {figures['live_rate_events_per_s']:,.0f}/s "
        f"(sent {figures['live_sent_events_per_s']:,.0f}/s) + {LIVE_DETRACTORS_PER_S:g} detractors/s, "
        f"{figures['live_alerts']}/{figures['live_detractors']} alerts, slowest {figures['latency_max_ms']:,.0f} ms; "
        f"allowed lateness "
        f"{figures['allowed_lateness_s']:g}s; load {figures['load_start']} -> {figures['load_end']})"
    )


EPILOG = """\
It runs for a few minutes against the broker of PREEMPT_BROKER (default: the local one of `make kafka`,
127.0.0.1:9092), on topics of its own (deleted at the end), with PREEMPT_TOPIC_PARTITIONS partitions.
The live phase: BENCH_RATE background events/s (default: half the measured pipeline rate) on
BENCH_LIVE_ACCOUNTS (500) accounts, BENCH_LIVE_DETRACTORS_PER_S (5) NPS detractors a second for
BENCH_LIVE_SECONDS (30) after BENCH_LIVE_WARMUP_SECONDS (3). What the figures mean: docs/pipeline.md."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: no options but ``--help`` (it used to ignore its arguments and start the run)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="make bench: the rules worker against its two ceilings (raw Kafka consume, decode + engine) "
        "on one broker and topic, the pure engine, event->alert latency, changelog records per event, peak RSS "
        "and the memory of 100,000 accounts' state; prints one table and writes .bench/latest.json.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.parse_args(argv)


def main() -> None:
    """Run the benchmark, print the table, write ``.bench/latest.json``; then delete its topics
    (a broker that keeps every run's topics runs out of open files)."""
    parse_args()
    settings = _settings()
    try:
        _run(settings)
    finally:
        try:
            deleted = delete_topics_under(settings, PREFIXES)
            _progress(f"deleted its {deleted} topics")
        except KafkaError as exc:  # the figures are written; a failed clean-up is reported, not raised
            _progress(f"topics {', '.join(PREFIXES)}.* not deleted: {type(exc).__name__}: {exc}")


def _run(settings: Settings) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="preempt-bench-"))
    figures: dict[str, Any] = {"load_start": _load(), "partitions": settings.topic_partitions, "accounts": 200}
    ensure_topics(settings)
    _progress(f"topics {settings.topic_prefix}.*, {settings.topic_partitions} partitions; logs in {workdir}")
    total, values = prepare(workdir, settings)
    figures["events"] = total
    _progress(f"published {total:,} events; raw ceiling…")
    figures["raw_events_per_s"] = asyncio.run(raw_ceiling(settings, total))
    _progress("in-process ceiling…")
    figures["ceiling_events_per_s"], figures["ceiling_cpu_events_per_s"] = inprocess_ceiling(settings, values)
    _progress("pure engine (bench.engine)…")
    engine = _json_of("bench.engine", "--json")
    figures["engine_events_per_s"] = engine["engine_events_per_s"]
    figures["engine_cpu_events_per_s"] = engine["engine_cpu_events_per_s"]
    _progress("rules worker replay…")
    replay = worker_replay(settings, total, workdir)
    pipeline = replay["events_per_s"]
    figures |= {
        "pipeline_events_per_s": pipeline,
        "ratio": pipeline / figures["raw_events_per_s"],
        "ratio_to_ceiling": pipeline / figures["ceiling_events_per_s"],
        "pipeline_cpu_events_per_s": replay["cpu_events_per_s"],
        "ratio_to_ceiling_cpu": replay["cpu_events_per_s"] / figures["ceiling_cpu_events_per_s"],
        "changelog_records_per_event": replay["changelog_per_event"],
        "peak_rss_mb": replay["peak_rss_mb"],
        "replay_alerts": replay["alerts"],
    }
    rate = float(RATE) if RATE else max(1.0, pipeline / 2)
    _progress(f"live latency at {rate:,.0f} events/s for {LIVE_SECONDS:.0f}s…")
    live = live_latency(workdir, rate)
    figures |= {
        "latency_p50_ms": live["p50"] * 1000,
        "latency_p99_ms": live["p99"] * 1000,
        "live_rate_events_per_s": rate,
        "live_sent_events_per_s": live["sent_rate"],
        "latency_max_ms": live["max"] * 1000,
        "live_worker_cpu_s": live["worker_cpu_s"],
        "live_alerts": live["alerts"],
        "live_detractors": live["detractors"],
        "allowed_lateness_s": live["lateness"],
    }
    _progress("state memory of 100,000 accounts…")
    figures["rss_mb_100k_accounts"] = _json_of("bench.state_memory", "--accounts", "100000")["rss_mb"]
    figures["load_end"] = _load()
    figures = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items()}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print_table(figures)
    print(f"wrote {OUT.relative_to(REPO)}")


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
