"""Tests for streams/worker/web.py: the probes answer from Faust's state, /metrics serves the registry,
and the lag exporter sets preempt_consumer_lag from the consumer's offsets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import faust
import pytest
from prometheus_client import REGISTRY

from streams.runtime import ops_web
from streams.runtime.health import ConsumerState
from streams.runtime.testing import TP, FakeConsumer, NotStartedConsumer
from streams.worker import web


@pytest.fixture
def make_app() -> Callable[..., faust.App]:
    """Factory: an unstarted Faust app with the ops web surface registered."""

    def factory(**register: Any) -> faust.App:
        app = faust.App(f"ut-{uuid.uuid4().hex[:8]}-rules", broker="kafka://127.0.0.1:1", store="memory://")
        web.register_web(app, **register)
        return app

    return factory


async def _get(app: faust.App, path: str) -> tuple[int, Any]:
    response = await app.web.views[path].get(None)
    body = response.body
    return response.status, json.loads(body) if path != "/metrics" else body.decode()


def _ready_value(app: faust.App) -> float | None:
    return REGISTRY.get_sample_value("preempt_ready", {"app": app.conf.name})


async def test_healthz_answers_while_the_process_runs(make_app: Callable[..., faust.App]) -> None:
    """/healthz is 200 even before the consumer started: it only says the process is alive."""
    app = make_app()
    app.consumer = NotStartedConsumer()
    status, body = await _get(app, "/healthz")
    assert (status, body["status"]) == (200, "alive")


async def test_readyz_is_503_with_a_reason_before_the_consumer_starts(make_app: Callable[..., faust.App]) -> None:
    """/readyz is 503 with a JSON reason while the consumer has not started, and preempt_ready is 0."""
    app = make_app()
    app.consumer = NotStartedConsumer()
    status, body = await _get(app, "/readyz")
    assert status == 503
    assert body == {"status": "not_ready", "app": app.conf.name, "reason": "consumer not started"}
    assert _ready_value(app) == 0


async def test_readyz_is_503_until_the_group_assigns_partitions(make_app: Callable[..., faust.App]) -> None:
    """A started consumer that has not been through a rebalance yet is not ready."""
    app = make_app()
    app.consumer = FakeConsumer(set(), {}, {})
    status, body = await _get(app, "/readyz")
    assert status == 503
    assert "assign partitions" in body["reason"]


async def test_readyz_is_200_once_assigned_and_recovered(
    make_app: Callable[..., faust.App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an assignment with recovery complete, /readyz is 200 and preempt_ready is 1."""
    app = make_app()
    events = TP("p.events", 0)
    app.consumer = FakeConsumer({events, TP("app-__assignor-__leader", 0)}, {}, {})
    monkeypatch.setattr(app, "rebalancing_count", 1)
    app.tables.recovery.completed.set()  # type: ignore[attr-defined]
    status, body = await _get(app, "/readyz")
    assert status == 200
    assert body["detail"] == "1 partitions assigned, tables recovered"
    assert _ready_value(app) == 1


def test_consumer_state_reads_fausts_flags(make_app: Callable[..., faust.App], monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebalance and recovery flags come from the app; only source partitions are counted."""
    app = make_app()
    app.consumer = FakeConsumer({TP("p.events", 0), TP("p.events", 1), TP("app-__assignor-__leader", 0)}, {}, {})
    monkeypatch.setattr(app, "rebalancing_count", 3)
    monkeypatch.setattr(app, "rebalancing", True)
    monkeypatch.setattr(app, "in_recovery", True)
    assert ops_web.consumer_state(app) == ConsumerState(
        started=True,
        rebalances=3,
        rebalancing=True,
        in_recovery=True,
        recovery_completed=False,
        assigned_partitions=2,
    )


async def test_metrics_serves_preempt_and_faust_sensor_metrics(make_app: Callable[..., faust.App]) -> None:
    """/metrics exposes the preempt_* metrics and Faust's sensor under the fixed preempt_rules_ prefix."""
    app = make_app()
    app.consumer = NotStartedConsumer()
    await _get(app, "/readyz")
    status, text = await _get(app, "/metrics")
    assert status == 200
    assert f'preempt_ready{{app="{app.conf.name}"}} 0.0' in text
    assert "preempt_rules_messages_received_total" in text


def test_an_app_that_serves_its_own_metrics_page_keeps_it() -> None:
    """register_web leaves an existing /metrics page alone (and still adds the probes)."""
    app = faust.App(f"ut-{uuid.uuid4().hex[:8]}-rules", broker="kafka://127.0.0.1:1", store="memory://")

    @app.page("/metrics")
    async def own(self: Any, request: Any) -> Any:
        return self.text("own")

    web.register_web(app)
    assert type(app.web.views["/metrics"]).__name__ == "own"
    assert {"/healthz", "/readyz"} <= set(app.web.views)


async def test_lag_exporter_sets_lag_per_topic_and_zeroes_revoked_topics(make_app: Callable[..., faust.App]) -> None:
    """Lag = end − committed summed per source topic; a topic no longer assigned drops to 0."""
    app = make_app()
    e0, e1, f0 = TP("p.events", 0), TP("p.events", 1), TP("p.feedback", 0)
    app.consumer = FakeConsumer({e0, e1, f0}, {e0: 10, e1: 5, f0: 4}, {e0: 7, e1: None, f0: 4})
    await ops_web.update_consumer_lag(app)

    def lag(topic: str) -> float | None:
        return REGISTRY.get_sample_value("preempt_consumer_lag", {"app": app.conf.name, "topic": topic})

    assert (lag("p.events"), lag("p.feedback")) == (8, 0)
    app.consumer = FakeConsumer({f0}, {f0: 9}, {f0: 4})
    await ops_web.update_consumer_lag(app)
    assert (lag("p.events"), lag("p.feedback")) == (0, 5)


def test_register_web_adds_the_lag_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter is registered as a Faust timer with the interval asked for."""
    app = faust.App(f"ut-{uuid.uuid4().hex[:8]}-rules", broker="kafka://127.0.0.1:1", store="memory://")
    calls: list[dict[str, Any]] = []

    def record_timer(**kwargs: Any) -> Callable[[Any], Any]:
        calls.append(kwargs)
        return lambda fun: fun

    monkeypatch.setattr(app, "timer", record_timer)
    web.register_web(app, lag_interval_s=7.5)
    assert calls == [{"interval": 7.5, "name": f"{app.conf.name}.consumer_lag"}]
