"""`docker compose config` on deploy/docker-compose.yml (no Docker engine needed): the file is valid
and describes the whole stack."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.integration.deploy_tools import REPO, require_compose

COMPOSE_FILE = REPO / "deploy" / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> list[str]:
    """The Docker Compose v2 command (installed by deploy/ensure-compose.sh when missing)."""
    return require_compose()


def _config(compose: list[str], *extra: str) -> dict[str, Any]:
    result = subprocess.run(
        [*compose, "-f", str(COMPOSE_FILE), *extra, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_compose_file_validates_with_the_whole_stack(compose: list[str]) -> None:
    """The file validates and runs Kafka (official image, KRaft), worker, notifier, Prometheus and Grafana."""
    services = _config(compose)["services"]
    assert set(services) == {"kafka", "worker", "notifier", "prometheus", "grafana"}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["worker"]["command"] == ["worker"]
    assert services["notifier"]["command"] == ["notifier"]


def test_prometheus_and_grafana_get_the_shipped_files(compose: list[str]) -> None:
    """Prometheus mounts the scrape config and alert rules; Grafana mounts provisioning and dashboards."""
    services = _config(compose)["services"]
    sources = {
        name: {v["source"] for v in services[name]["volumes"] if v["type"] == "bind"}
        for name in ("prometheus", "grafana")
    }
    prom, grafana = REPO / "deploy" / "prometheus", REPO / "deploy" / "grafana"
    assert {str(prom / "prometheus.yml"), str(prom / "alerts.yml")} <= sources["prometheus"]
    assert {str(grafana / "provisioning"), str(grafana / "dashboards")} <= sources["grafana"]


def test_demo_profile_adds_simulated_traffic(compose: list[str]) -> None:
    """With --profile demo the stack also runs `preempt simulate`."""
    services = _config(compose, "--profile", "demo")["services"]
    assert services["simulate"]["command"][0] == "simulate"


def test_ingest_profile_serves_http_ingest(compose: list[str]) -> None:
    """With --profile ingest the stack also runs `preempt ingest` on port 6068."""
    ingest = _config(compose, "--profile", "ingest")["services"]["ingest"]
    assert ingest["command"][0] == "ingest"
    assert [p["published"] for p in ingest["ports"]] == ["6068"]


def test_every_port_is_published_on_the_hosts_loopback_only(compose: list[str]) -> None:
    """No service of any profile is reachable from other machines by default: unauthenticated Kafka, the
    web ports and Grafana's default admin login are published on 127.0.0.1 only."""
    services = _config(compose, "--profile", "demo", "--profile", "ingest")["services"]
    published = {(name, p["published"], p.get("host_ip")) for name, s in services.items() for p in s.get("ports", [])}
    assert {name for name, _, _ in published} == {"kafka", "worker", "notifier", "ingest", "prometheus", "grafana"}
    assert {host for _, _, host in published} == {"127.0.0.1"}
