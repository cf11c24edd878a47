"""The containers of both Faust apps give a graceful stop more time than the app's own bound on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alerts.runtime import STOP_DELIVERY_TIMEOUT_SECONDS
from streams.worker.agents import STOP_WRITE_TIMEOUT_SECONDS

REPO = Path(__file__).resolve().parents[3]
BOUNDS = {"worker": STOP_WRITE_TIMEOUT_SECONDS, "notifier": STOP_DELIVERY_TIMEOUT_SECONDS}


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


@pytest.mark.parametrize("service", sorted(BOUNDS))
def test_compose_lets_a_graceful_stop_finish_before_it_kills(service: str) -> None:
    """Docker's default of 10 s before SIGKILL is shorter than the notifier's wait for the deliveries in flight
    (and the worker's state write): each service sets a stop_grace_period with room to spare."""
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    grace = _seconds(compose["services"][service].get("stop_grace_period", "10s"))
    assert grace >= BOUNDS[service] + 10


@pytest.mark.parametrize("service", sorted(BOUNDS))
def test_kubernetes_lets_a_graceful_stop_finish_before_it_kills(service: str) -> None:
    """The Deployments' terminationGracePeriodSeconds leave the same room."""
    deployment = yaml.safe_load((REPO / "deploy" / "k8s" / f"{service}-deployment.yaml").read_text())
    grace = deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    assert grace >= BOUNDS[service] + 10
