"""The containers of both Faust apps give a graceful stop more time than the app's own bounds on it: the
work before the stop (states written, deliveries in flight), then PREEMPT_STOP_TIMEOUT_SECONDS, after
which a stop that cannot finish ends the process with an ERROR line before the container's SIGKILL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alerts.runtime import STOP_DELIVERY_TIMEOUT_SECONDS
from streams.runtime.settings import Settings
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


def _stop_timeout() -> float:
    return float(Settings.model_fields["stop_timeout_seconds"].default)


@pytest.mark.parametrize("service", sorted(BOUNDS))
def test_the_stop_deadline_leaves_the_work_before_the_stop_its_time(service: str) -> None:
    """PREEMPT_STOP_TIMEOUT_SECONDS must not cut the states' write or the deliveries' wait short."""
    assert _stop_timeout() >= BOUNDS[service] + 10


@pytest.mark.parametrize("service", sorted(BOUNDS))
def test_the_stop_deadline_comes_before_the_containers_sigkill(service: str) -> None:
    """Compose's stop_grace_period and Kubernetes' terminationGracePeriodSeconds outlast the stop deadline,
    so a stop that cannot finish says so (ERROR) before it is killed without a word."""
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    deployment = yaml.safe_load((REPO / "deploy" / "k8s" / f"{service}-deployment.yaml").read_text())
    assert _seconds(compose["services"][service].get("stop_grace_period", "10s")) >= _stop_timeout() + 10
    assert deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30) >= _stop_timeout() + 10


def test_no_stop_deadline_allowed_by_the_settings_cuts_the_work_before_the_stop_short() -> None:
    """The smallest PREEMPT_STOP_TIMEOUT_SECONDS accepted still leaves the states' write and the deliveries'
    wait their time (a 5 s deadline would have re-sent the deliveries in flight after every restart)."""
    (lower,) = [m.ge for m in Settings.model_fields["stop_timeout_seconds"].metadata if hasattr(m, "ge")]
    assert lower >= max(BOUNDS.values()) + 5
