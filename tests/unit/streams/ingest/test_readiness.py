"""``GET /readyz`` of preempt ingest: ready while a broker answers, 503 with the reason once none has for a while."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from streams.ingest.app import READINESS
from tests.unit.streams.ingest.conftest import ClientFactory

UNREACHABLE_LOG = "broker unreachable; ingest not ready until it answers"


def gauge(name: str) -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"app": "preempt-ingest"})


async def answered(broker_check_result: str | None) -> str | None:
    return broker_check_result


async def test_readyz_is_200_while_a_broker_answers(client_factory: ClientFactory) -> None:
    """A freshly started ingest whose broker answers: /readyz 200 ready, preempt_ready{app="preempt-ingest"} 1."""
    client, _ = await client_factory(broker_check=lambda: answered(None))
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "app": "preempt-ingest"}
    assert (gauge("preempt_ready"), gauge("preempt_broker_reachable")) == (1.0, 1.0)


async def test_readyz_is_503_with_the_reason_once_no_broker_answered_for_the_limit(
    client_factory: ClientFactory,
) -> None:
    """No broker for PREEMPT_BROKER_UNREACHABLE_SECONDS: 503 naming the cause, gauges 0, one ERROR line;
    ready again (and one INFO line) as soon as a broker answers — the process itself keeps serving."""
    client, _ = await client_factory(
        broker_check=lambda: answered("127.0.0.1:9: connection refused"), broker_unreachable_seconds=0.01
    )
    readiness = client.app[READINESS]
    await asyncio.sleep(0.02)
    with capture_logs() as logs:
        readiness.observe("127.0.0.1:9: connection refused")
        readiness.observe("127.0.0.1:9: connection refused")
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not_ready"
    assert body["reason"].startswith("broker unreachable: no broker answered for ")
    assert "connection refused" in body["reason"]
    assert (gauge("preempt_ready"), gauge("preempt_broker_reachable")) == (0.0, 0.0)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [UNREACHABLE_LOG]
    assert (await client.get("/healthz")).status == 200
    with capture_logs() as logs:
        readiness.observe(None)
    assert (await client.get("/readyz")).status == 200
    assert (gauge("preempt_ready"), gauge("preempt_broker_reachable")) == (1.0, 1.0)
    assert [e["event"] for e in logs] == ["broker reachable again"]


async def test_the_watch_runs_the_check_every_interval_and_survives_a_check_that_raises() -> None:
    """The background watch calls the check every interval; a check that raises counts as a failed attempt
    (a watch that died would say "ready" for ever)."""
    from streams.ingest.readiness import IngestReadiness

    calls = 0

    async def check() -> str | None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    readiness = IngestReadiness(check, unreachable_after_s=0.01, interval_s=0.01)
    await readiness.start()
    await asyncio.sleep(0.1)
    await readiness.stop()
    assert calls >= 3
    reason = readiness.not_ready_reason()
    assert reason is not None
    assert "the broker check failed: RuntimeError('boom')" in reason
