"""End to end with a real Prometheus: a rules worker and a notifier run as child processes on the
real broker, a Prometheus (Debian's package, installed by the setup when missing) scrapes them every
second with the shipped alert rules loaded, simulated and hand-made traffic flows, and Prometheus's
HTTP API shows that events, dead letters, alerts and deliveries were counted.

Set PREEMPT_E2E_METRICS_OUT=path to write every preempt_* series Prometheus holds at the end.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from alerts.app import app_id as notify_app_id
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import ensure_topics
from streams.worker.app import app_id as rules_app_id
from tests.integration.conftest import ManagedProcess
from tests.integration.deploy_tools import REPO, require_prometheus_tools

ALERT_RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
DEMO_ROUTES = REPO / "deploy" / "routes.demo.yaml"
DETRACTORS = 3  # accounts whose NPS answer fires the default pack's `nps-detractor` rule
BAD_RECORDS = 2  # records that are not JSON: dead-lettered by the worker


def _http_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            return err.code, json.loads(body)
        except json.JSONDecodeError:  # e.g. Prometheus's plain-text 503 while it starts
            return err.code, body.decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def _wait_until(what: str, check: Callable[[], Any], timeout_s: float, *procs: ManagedProcess) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the children's logs otherwise."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        for proc in procs:
            if proc.proc.poll() is not None:
                pytest.fail(f"{proc.log_path.name} exited while waiting for {what}:\n{proc.log_text()[-3000:]}")
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.log_path.name}\n{p.log_text()[-3000:]}" for p in procs)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})\n{logs}")


class PrometheusAPI:
    """The bits of Prometheus's HTTP API the test reads."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (empty when Prometheus is not up yet)."""
        status, body = _http_json(f"{self.base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        if status != 200 or body.get("status") != "success":
            return []
        return list(body["data"]["result"])

    def value(self, promql: str) -> float:
        """The single value of a scalar-like query (``sum(...)``), 0 when there is no sample."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else 0.0

    def alert_rules(self) -> dict[str, str]:
        """Loaded alerting rules: name → health."""
        status, body = _http_json(f"{self.base}/api/v1/rules?type=alert")
        if status != 200:
            return {}
        return {r["name"]: r["health"] for g in body["data"]["groups"] for r in g["rules"]}


@pytest.fixture
def stack_settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Settings for one worker + one notifier on this test's topics, with their own web ports."""
    settings = settings_factory(
        worker_web_port=free_port(),
        notifier_web_port=free_port(),
        routes_path=DEMO_ROUTES,
        log_format="json",
    )
    ensure_topics(settings)
    return settings


@pytest.fixture
def prometheus_factory(
    process_factory: Callable[..., ManagedProcess], tmp_path: Path
) -> Callable[[Settings], tuple[ManagedProcess, PrometheusAPI]]:
    """Factory: a real Prometheus on 127.0.0.1 scraping the worker and notifier of ``settings``."""
    prometheus, _promtool = require_prometheus_tools()

    def start(settings: Settings) -> tuple[ManagedProcess, PrometheusAPI]:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(ALERT_RULES)],
            "scrape_configs": [
                {
                    "job_name": "preempt-rules",
                    "static_configs": [{"targets": [f"127.0.0.1:{settings.worker_web_port}"]}],
                },
                {
                    "job_name": "preempt-notify",
                    "static_configs": [{"targets": [f"127.0.0.1:{settings.notifier_web_port}"]}],
                },
            ],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        proc = process_factory(
            [
                prometheus,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            name="prometheus",
        )
        return proc, PrometheusAPI(port)

    return start


def _event(account_id: str, name: str, properties: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "event_id": uuid.uuid4().hex,
            "event": name,
            "account_id": account_id,
            "user_id": f"{account_id}-u1",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "properties": properties,
        }
    ).encode()


def _publish_known_traffic(bootstrap: str, topic: str) -> None:
    """NPS detractors (each fires `nps-detractor`), logins, a disconnected integration (fires
    `integration-disconnected` for an account that already has an alert) and records that are not JSON."""
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
    headers = [("content-type", b"application/json")]
    try:
        for i in range(DETRACTORS):
            account = f"e2e-detractor-{i}"
            producer.send(
                topic, key=account.encode(), value=_event(account, "Login", {"role": "admin"}), headers=headers
            )
            producer.send(
                topic, key=account.encode(), value=_event(account, "NPS Submitted", {"score": 2}), headers=headers
            )
        # A second rule firing for the first account joins that account's notification group.
        grouped = _event("e2e-detractor-0", "Integration Disconnected", {"integration": "crm", "reason": "error"})
        producer.send(topic, key=b"e2e-detractor-0", value=grouped, headers=headers)
        for i in range(BAD_RECORDS):
            producer.send(topic, key=b"e2e-broken", value=b"{not json " + str(i).encode(), headers=headers)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _write_metrics_snapshot(api: PrometheusAPI, path: Path) -> None:
    rows = []
    for sample in api.query('{__name__=~"preempt_.+", __name__!~".+_(bucket|created)"}'):
        metric = dict(sample["metric"])
        name = metric.pop("__name__")
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k not in {"instance"})
        rows.append(f"{name}{{{labels}}} {sample['value'][1]}")
    path.write_text("\n".join(sorted(rows)) + "\n")


def test_prometheus_counts_events_alerts_and_deliveries(
    stack_settings: Settings,
    kafka_bootstrap: str,
    process_factory: Callable[..., ManagedProcess],
    prometheus_factory: Callable[[Settings], tuple[ManagedProcess, PrometheusAPI]],
) -> None:
    """Through Prometheus's API: shipped rules load, both targets are up and ready, and simulated
    traffic shows up as accepted events, dead letters, alerts by rule and sent notifications; a
    dead-lettered notification fires the shipped PreemptNotificationsFailing rule."""
    settings = stack_settings
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    notifier = process_factory(["preempt", "notifier"], settings, name="notifier")
    prom, api = prometheus_factory(settings)
    procs = (worker, notifier, prom)

    # The shipped alert rules load and are healthy.
    shipped = {r["alert"] for g in yaml.safe_load(ALERT_RULES.read_text())["groups"] for r in g["rules"]}
    rules = _wait_until("the alert rules to load", lambda: api.alert_rules() or None, 60, *procs)
    assert set(rules) == shipped
    assert set(rules.values()) <= {"ok", "unknown"}

    # Both processes answer /readyz 200 and Prometheus sees them up and ready.
    for port in (settings.worker_web_port, settings.notifier_web_port):
        _wait_until(
            f"/readyz on {port}", lambda p=port: _http_json(f"http://127.0.0.1:{p}/readyz")[0] == 200, 120, *procs
        )
    _wait_until("both targets up", lambda: api.value("sum(up)") == 2, 60, *procs)
    for app in (rules_app_id(settings), notify_app_id(settings)):
        ready = f'min(preempt_ready{{app="{app}"}})'
        _wait_until(f"{app} ready in Prometheus", lambda q=ready: api.value(q) == 1, 60, *procs)

    # Traffic: live simulated personas for a few seconds, plus events whose outcome is known.
    simulate = process_factory(
        ["preempt", "simulate", "--accounts", "10", "--rate", "20", "--duration", "4", "--seed", "7"],
        settings,
        name="simulate",
    )
    _publish_known_traffic(kafka_bootstrap, settings.topic("events"))
    _wait_until("the simulator to finish", lambda: simulate.proc.poll() is not None, 60, *procs)
    assert simulate.proc.returncode == 0, simulate.log_text()[-3000:]

    simulated = re.search(r"(\d+) events in [\d.]+ s", simulate.log_text())
    assert simulated is not None, simulate.log_text()[-3000:]
    assert int(simulated.group(1)) > 0
    minimum_events = int(simulated.group(1)) + 2 * DETRACTORS + 1  # what the simulator sent + the known events
    _wait_until(
        "accepted events",
        lambda: api.value('sum(preempt_events_total{outcome="accepted"})') >= minimum_events,
        90,
        *procs,
    )
    _wait_until("dead letters", lambda: api.value("sum(preempt_events_dead_lettered_total)") >= BAD_RECORDS, 60, *procs)
    _wait_until(
        "nps-detractor alerts",
        lambda: api.value('sum(preempt_alerts_total{rule="nps-detractor"})') >= DETRACTORS,
        90,
        *procs,
    )
    _wait_until(
        "the integration-disconnected alert grouped with the detractor alert",
        lambda: (
            api.value('sum(preempt_alerts_total{rule="integration-disconnected"})') >= 1
            and api.value('sum(preempt_alerts_suppressed_total{reason="grouped"})') >= 1
        ),
        90,
        *procs,
    )
    _wait_until(
        "sent notifications",
        lambda: api.value('sum(preempt_notifications_total{outcome="sent"})') >= 1,
        90,
        *procs,
    )
    # A record on the alerts topic that is not an alert: the notifier dead-letters it, and the shipped
    # PreemptNotificationsFailing rule fires for it here — the process's first dead letter included
    # (a counter series born at 1 has no increase() in Prometheus; it used to page no one).
    assert api.query('ALERTS{alertname="PreemptNotificationsFailing"}') == []
    producer = KafkaProducer(bootstrap_servers=[kafka_bootstrap], acks="all")
    try:
        producer.send(settings.topic("alerts"), key=b"e2e-broken", value=b"not an alert").get(timeout=30)
    finally:
        producer.close()
    firing = 'ALERTS{alertname="PreemptNotificationsFailing", alertstate="firing", receiver_type="none"}'
    _wait_until("PreemptNotificationsFailing to fire", lambda: api.query(firing), 60, *procs)

    # The lag exporters (a 15 s timer in each process) report the source topics.
    for app, topic in ((rules_app_id(settings), "events"), (notify_app_id(settings), "alerts")):
        lag = f'preempt_consumer_lag{{app="{app}", topic="{settings.topic(topic)}"}}'
        _wait_until(f"{app} consumer lag", lambda q=lag: api.query(q), 60, *procs)

    # The event→alert histogram observed the alerts the counter counted.
    assert api.value("sum(preempt_event_to_alert_seconds_count)") >= DETRACTORS
    # Faust's own sensor is exported next to the preempt_* metrics.
    assert api.value("sum(preempt_rules_messages_received_total)") >= minimum_events

    out = os.environ.get("PREEMPT_E2E_METRICS_OUT")
    if out:
        _write_metrics_snapshot(api, Path(out))
