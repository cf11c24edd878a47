"""deploy/prometheus/prometheus.yml scrapes every Preempt process the compose stack runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def _targets(job: dict[str, Any]) -> set[str]:
    """The host:port targets of a scrape job (static ones, and DNS names with their port)."""
    found = {t for static in job.get("static_configs", []) for t in static["targets"]}
    found |= {f"{name}:{dns['port']}" for dns in job.get("dns_sd_configs", []) for name in dns["names"]}
    return found


def test_every_preempt_service_of_the_compose_stack_is_scraped_on_its_port() -> None:
    """Worker, notifier and ingest (its profile included) each have a scrape job on the port they serve
    /metrics on, named as the alert rules expect for the two Faust apps."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: _targets(job) for job in scrape["scrape_configs"]}
    served = {
        name: f"{name}:{service['ports'][0].split(':')[-1]}"
        for name, service in compose["services"].items()
        if service.get("command", [""])[0] in {"worker", "notifier", "ingest"}
    }
    assert set(served) == {"worker", "notifier", "ingest"}
    scraped = set().union(*jobs.values())
    assert set(served.values()) <= scraped
    assert served["worker"] in jobs["preempt-rules"]
    assert served["notifier"] in jobs["preempt-notify"]
