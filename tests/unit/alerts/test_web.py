"""Tests for alerts/web.py: the notifier's probes, /metrics and lag exporter behave like the rules
worker's (streams/worker/web.py), under the notifier's own sensor prefix."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import faust
import pytest
from prometheus_client import REGISTRY

from alerts import web
from streams.runtime import ops_web
from streams.runtime.testing import TP, FakeConsumer, NotStartedConsumer

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def notifier_app() -> faust.App:
    """An unstarted notifier-like Faust app with the ops web surface registered."""
    app = faust.App(f"ut-{uuid.uuid4().hex[:8]}-notify", broker="kafka://127.0.0.1:1", store="memory://")
    web.register_web(app)
    return app


async def test_probes_follow_the_consumer(notifier_app: faust.App, monkeypatch: pytest.MonkeyPatch) -> None:
    """/healthz is always 200; /readyz goes from 503 (not started) to 200 (assigned, recovered)."""
    notifier_app.consumer = NotStartedConsumer()
    assert (await notifier_app.web.views["/healthz"].get(None)).status == 200
    not_ready = await notifier_app.web.views["/readyz"].get(None)
    assert (not_ready.status, json.loads(not_ready.body)["reason"]) == (503, "consumer not started")

    notifier_app.consumer = FakeConsumer({TP("p.alerts", 0)}, {}, {})
    monkeypatch.setattr(notifier_app, "rebalancing_count", 1)
    notifier_app.tables.recovery.completed.set()  # type: ignore[attr-defined]
    assert (await notifier_app.web.views["/readyz"].get(None)).status == 200
    assert REGISTRY.get_sample_value("preempt_ready", {"app": notifier_app.conf.name}) == 1


async def test_metrics_use_the_notifier_sensor_prefix(notifier_app: faust.App) -> None:
    """Faust's sensor metrics of the notifier are named preempt_notify_*."""
    text = (await notifier_app.web.views["/metrics"].get(None)).body.decode()
    assert "preempt_notify_messages_received_total" in text


async def test_lag_exporter_reports_the_alerts_topic(notifier_app: faust.App) -> None:
    """The notifier's lag is end − committed on its assigned alerts partitions."""
    tp = TP("p.alerts", 0)
    notifier_app.consumer = FakeConsumer({tp}, {tp: 12}, {tp: 2})
    await ops_web.update_consumer_lag(notifier_app)
    labels = {"app": notifier_app.conf.name, "topic": "p.alerts"}
    assert REGISTRY.get_sample_value("preempt_consumer_lag", labels) == 10


def test_worker_and_notifier_differ_only_in_sensor_prefix() -> None:
    """Both apps register the one shared implementation (streams.runtime.ops_web), each under its own prefix."""
    from streams.worker import web as worker_web

    assert web.FAUST_METRICS_PREFIX == "preempt_notify"
    assert worker_web.FAUST_METRICS_PREFIX == "preempt_rules"
