"""promtool on the shipped Prometheus files: the scrape config and alert rules are valid, the alert
rules' unit tests pass, and every Grafana dashboard query is valid PromQL."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.runtime.testing import free_port
from tests.integration.conftest import ManagedProcess
from tests.integration.deploy_tools import REPO, require_prometheus_tools

PROM_DIR = REPO / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    """Path of promtool (installed from Debian's prometheus package when missing)."""
    return require_prometheus_tools()[1]


def _promtool(promtool: str, *args: str, cwd: Path = PROM_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=120)


def _alert_names() -> list[str]:
    groups = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def test_scrape_config_is_valid(promtool: str) -> None:
    """promtool check config accepts prometheus.yml and the rule file it names."""
    result = _promtool(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


class _MetricsPage(BaseHTTPRequestHandler):
    """A /metrics page with one sample: a target Prometheus scrapes as up."""

    def do_GET(self) -> None:
        body = b"preempt_ready 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads Prometheus, not this server's access log."""


@pytest.fixture
def metrics_page() -> Iterator[int]:
    """The port of a local HTTP server answering every GET with a valid Prometheus page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MetricsPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _pods_of_the_manifests(port: int) -> list[dict[str, Any]]:
    """What Kubernetes service discovery would give Prometheus for one pod of each Deployment in
    deploy/k8s (labels and annotations from the manifests), as a file_sd target group on ``port``."""

    def name(key: str) -> str:  # as Kubernetes discovery writes label and annotation keys
        return re.sub(r"[^a-zA-Z0-9_]", "_", key)

    groups = []
    for path in sorted((REPO / "deploy" / "k8s").glob("*-deployment.yaml")):
        meta = yaml.safe_load(path.read_text())["spec"]["template"]["metadata"]
        labels = {
            "__meta_kubernetes_pod_ip": "127.0.0.1",
            "__meta_kubernetes_pod_name": f"{meta['labels']['app.kubernetes.io/name']}-0",
            **{f"__meta_kubernetes_pod_label_{name(k)}": v for k, v in meta["labels"].items()},
            **{f"__meta_kubernetes_pod_annotation_{name(k)}": str(v) for k, v in meta["annotations"].items()},
        }
        labels["__meta_kubernetes_pod_annotation_prometheus_io_port"] = str(port)  # all on the one test page
        groups.append({"targets": [path.stem], "labels": labels})
    return groups


def test_kubernetes_scrape_config_names_the_jobs_the_alert_rules_select(
    process_factory: Callable[..., ManagedProcess], metrics_page: int, tmp_path: Path
) -> None:
    """A real Prometheus with the relabelling of prometheus-kubernetes.yml, fed the manifests' pods (through
    file_sd in place of the Kubernetes API, which Debian's build of Prometheus leaves out; promtool checks the
    rest of the file here), scrapes one target per app under the job names alerts.yml selects:
    the docs said to copy the pods' app.kubernetes.io/name into `job`, which gives preempt-worker, and
    PreemptWorkerDown fired for ever on absent(up{job="preempt-rules"})."""
    prometheus, promtool = require_prometheus_tools()
    config = yaml.safe_load((PROM_DIR / "prometheus-kubernetes.yml").read_text())
    [job] = config["scrape_configs"]
    del job["kubernetes_sd_configs"]
    (tmp_path / "pods.json").write_text(json.dumps(_pods_of_the_manifests(metrics_page)))
    job["file_sd_configs"] = [{"files": [str(tmp_path / "pods.json")]}]
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"}
    config["rule_files"] = [str(PROM_DIR / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    port = free_port()
    process_factory(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        name="prometheus",
    )

    def query(promql: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{port}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return list(json.loads(response.read())["data"]["result"])
        except OSError:  # not listening yet
            return []

    deadline = time.monotonic() + 60
    up: dict[str, str] = {}
    while time.monotonic() < deadline and len(up) < 3:
        up = {sample["metric"]["job"]: sample["value"][1] for sample in query("up")}
        time.sleep(0.5)
    assert up == {"preempt-rules": "1", "preempt-notify": "1", "preempt-ingest": "1"}
    for alert in ("PreemptWorkerDown", "PreemptNotifierDown"):
        [rule] = [
            r
            for group in yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
            for r in group["rules"]
            if r["alert"] == alert
        ]
        assert query(rule["expr"]) == [], f"{alert} fires with every pod up"


def test_alert_rules_are_valid(promtool: str) -> None:
    """promtool check rules accepts alerts.yml and counts every rule in it."""
    result = _promtool(promtool, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(_alert_names())} rules found" in result.stdout


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    """promtool test rules runs alerts_test.yml green."""
    result = _promtool(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_rule_is_shown_firing_in_a_unit_test() -> None:
    """Each alert of alerts.yml has at least one unit test in which it fires."""
    tests = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert set(_alert_names()) <= firing


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Every query of the Grafana dashboard parses (checked as recording rules by promtool)."""
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "preempt.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = [
        {"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "5m")} for i, e in enumerate(exprs)
    ]
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool(promtool, "check", "rules", "dashboard_rules.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(exprs)} rules found" in result.stdout
