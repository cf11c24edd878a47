"""promtool on the shipped Prometheus files: the scrape config and alert rules are valid, the alert
rules' unit tests pass, and every Grafana dashboard query is valid PromQL."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

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
