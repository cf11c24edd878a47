"""Tests for deploy/grafana: the provisioned dashboard shows what ops need and uses the provisioned datasource."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from streams.runtime import metrics

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"


@pytest.fixture
def dashboard() -> dict[str, Any]:
    """The provisioned dashboard JSON."""
    return json.loads((GRAFANA / "dashboards" / "preempt.json").read_text())


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_covers_the_operational_questions(dashboard: dict[str, Any]) -> None:
    """Events/s, dead letters, alerts by rule, deliveries by outcome, both latency histograms and lag are charted."""
    exprs = "\n".join(_exprs(dashboard))
    for needle in (
        "rate(preempt_events_total",
        "preempt_events_dead_lettered_total",
        "sum by (rule) (rate(preempt_alerts_total",
        "sum by (receiver_type, outcome) (rate(preempt_notifications_total",
        "preempt_event_to_alert_seconds_bucket",
        "preempt_notification_latency_seconds_bucket",
        "preempt_consumer_lag",
        "preempt_ready",
    ):
        assert needle in exprs, needle


def test_dashboard_uses_only_declared_preempt_metrics(dashboard: dict[str, Any]) -> None:
    """Every preempt_* name the dashboard queries is declared in streams/runtime/metrics.py (no typos)."""
    declared = set()
    for value in vars(metrics).values():
        if isinstance(value, (Counter, Gauge, Histogram)):
            name = value.describe()[0].name
            declared.update(name + suffix for suffix in ("", "_total", "_bucket", "_sum", "_count"))
    used = {m for e in _exprs(dashboard) for m in re.findall(r"\bpreempt_[a-z_]+", e)}
    used = {m for m in used if not m.startswith(("preempt_rules_", "preempt_notify_"))}
    assert used <= declared, used - declared


def test_panels_use_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    """Panels point at the datasource uid that provisioning creates, so the dashboard works on first start."""
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {uid}


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    """The dashboard provider loads the folder docker-compose mounts the dashboards into."""
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "preempt.yml").read_text())
    compose = yaml.safe_load((GRAFANA.parent / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts
