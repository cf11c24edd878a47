"""Benchmark: how many alerts/s one notifier delivers to a local Slack server, and the delivery latency.

    .venv/bin/python -m bench.notifier [--alerts 2000] [--partitions 4] [--rate 0]

Starts the local fake Slack server (alerts/testing/slack_server.py) in this process, runs one
``preempt notifier`` child process on the local broker (fresh topic prefix, memory store) with a
routing file that sends each alert to its own Slack channel with ``group_wait: 0s`` (so grouping and
the 1 message/s per-channel limit do not cap the figure: this measures the notifier itself), produces
the alerts with kafka-python and measures, on the Slack server's clock:

* throughput: alerts delivered / (last delivery - first produce);
* latency: produce → Slack request, p50 / p99 / max (with ``--rate``, at a steady produce rate
  rather than one burst, so it shows the per-alert path rather than queueing).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kafka import KafkaProducer

from alerts.testing.slack_server import FakeSlack
from schemas.alert import Alert
from streams.runtime.kafka_clients import kafka_python_config
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port, settings_env
from streams.runtime.topics import ensure_topics

ROUTES = """
receivers:
  - name: owner
    slack_configs:
      - channel: "{{ account.owner.slack }}"
route:
  receiver: owner
  group_by: ["..."]
  group_wait: 0s
"""


def _alert(i: int) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": uuid.uuid4().hex,
            "rule_id": "error-spike",
            "kind": "threshold",
            "title": f"Account {i}: API errors are spiking",
            "severity": "high",
            "priority": 2,
            "account_id": f"acct-{i}",
            "account": {"name": f"Account {i}", "tier": "growth", "owner": {"slack": f"C-{i}"}},
            "fired_at": "2026-11-23T06:10:00Z",
            "emitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "evidence": {"measure": "count", "value": 37, "threshold": 20},
            "playbook": "Check the error dashboard, then call the admin.",
        }
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Run the benchmark once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--rate", type=float, default=0.0, help="alerts/s to produce at (0: all at once)")
    args = parser.parse_args()

    slack = FakeSlack()
    slack.start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-notifier-"))
    routes = workdir / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    settings = Settings(
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
        topic_partitions=args.partitions,
        store="memory://",
        data_dir=workdir / "data",
        routes_path=routes,
        notifier_web_port=free_port(),
        slack_api_url=slack.api_url,
        slack_bot_token="xoxb-bench",  # noqa: S106 - a fake token for the local fake Slack
        log_level="INFO",  # the default; "notifier ready" is an info line
    )
    ensure_topics(settings)
    env = {**os.environ, **settings_env(settings)}
    preempt = str(Path(sys.executable).parent / "preempt")
    log_path = workdir / "notifier.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([preempt, "notifier"], env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while "notifier ready" not in log_path.read_text(errors="replace"):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"notifier did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.2)
            alerts = [_alert(i) for i in range(args.alerts)]
            producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers, linger_ms=5, acks="all", **kafka_python_config(settings)
            )
            produced: dict[str, float] = {}
            started = time.monotonic()
            for i, alert in enumerate(alerts):
                if args.rate > 0:  # a steady rate: latency without the queueing of a burst
                    time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
                produced[f"C-{i}"] = time.monotonic()
                producer.send(
                    settings.topic("alerts"), key=alert.account_id.encode(), value=alert.model_dump_json().encode()
                )
            producer.flush()
            producer.close()
            produced_s = time.monotonic() - started
            deadline = time.monotonic() + args.timeout
            while len(slack.delivered()) < args.alerts and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            slack.stop()

    delivered = slack.delivered()
    if len(delivered) < args.alerts:
        print(f"only {len(delivered)}/{args.alerts} alerts delivered within {args.timeout}s")
    latencies = [r.time - produced[r.target] for r in delivered if r.target in produced]
    span = max(r.time for r in delivered) - started
    retries = len(slack.requests) - len(delivered)
    print(f"alerts delivered            {len(delivered)} / {args.alerts} (partitions {args.partitions})")
    print(f"produce time                {produced_s:.2f} s")
    print(f"throughput                  {len(delivered) / span:.0f} alerts/s (first produce → last delivery)")
    print(
        f"latency produce→Slack       p50 {_percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    print(f"non-delivered Slack replies {retries}")


if __name__ == "__main__":
    main()
