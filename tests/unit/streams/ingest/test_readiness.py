"""``GET /readyz`` of preempt ingest: ready while a broker answers, 503 with the reason once none has for a while."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from streams.ingest.app import READINESS
from tests.unit.streams.ingest.conftest import AUTH, ClientFactory, event

UNREACHABLE_LOG = "broker unreachable; ingest not ready until it answers"


def gauge(name: str, app: str = "preempt-ingest") -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"app": app})


async def answered(broker_check_result: str | None) -> str | None:
    return broker_check_result


async def test_readyz_is_200_while_a_broker_answers(client_factory: ClientFactory) -> None:
    """A freshly started ingest whose broker answers: /readyz 200 ready, preempt_ready{app="preempt-ingest"} 1."""
    client, _ = await client_factory(broker_check=lambda: answered(None))
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "app": "preempt-ingest"}
    assert (gauge("preempt_ready"), gauge("preempt_broker_reachable")) == (1.0, 1.0)


async def test_readyz_and_its_gauges_name_the_prefixs_ingest(client_factory: ClientFactory) -> None:
    """With PREEMPT_TOPIC_PREFIX=acme, ingest is ``acme-ingest`` on /readyz and in preempt_ready, as the worker is
    ``acme-rules``: two deployments sharing a Prometheus do not overwrite each other's gauges."""
    client, _ = await client_factory(broker_check=lambda: answered("127.0.0.1:9: refused"), topic_prefix="acme")
    client.app[READINESS].observe("127.0.0.1:9: refused")
    assert await (await client.get("/readyz")).json() == {"status": "ready", "app": "acme-ingest"}
    assert (gauge("preempt_ready", "acme-ingest"), gauge("preempt_broker_reachable", "acme-ingest")) == (1.0, 0.0)


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


def writes_failing(write: str) -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("preempt_ingest_writes_failing", {"write": write})


WRITES_FAILING_LOG = "writes failing: every write to a topic failed; ingest not ready until one succeeds"
ACCOUNT_WRITES_FAILING_LOG = (
    "account writes failing: every write to a topic failed; events still taken, accounts not updated"
)


async def test_readyz_is_503_naming_the_topic_once_every_write_was_refused_for_the_limit(
    client_factory: ClientFactory,
) -> None:
    """A broker that answers but refuses every write (topic deleted, too few replicas, no ACL): once 3 writes
    and PREEMPT_INGEST_WRITES_FAILING_SECONDS passed with none taken, /readyz 503 names the events topic and
    the error, the gauges say so and one ERROR is logged; the next write taken makes it ready (one INFO)."""
    client, sink = await client_factory(
        broker_check=lambda: answered(None), ingest_writes_failing_seconds=0.05, topic_prefix="shop"
    )
    sink.fail = True
    for i in range(3):
        assert (await client.post("/v1/events", json=event(f"e{i}"), headers=AUTH)).status == 503
    assert (await client.get("/readyz")).status == 200  # not for long yet
    await asyncio.sleep(0.06)
    with capture_logs() as logs:
        response = await client.get("/readyz")
        assert (await client.get("/readyz")).status == 503
    assert response.status == 503
    reason = (await response.json())["reason"]
    assert reason.startswith("writes failing: topic shop.events: 3 attempts failed in a row")
    assert "ConnectionError: broker unreachable" in reason
    assert (gauge("preempt_ready", "shop-ingest"), writes_failing("events")) == (0.0, 1.0)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [WRITES_FAILING_LOG]
    sink.fail = False
    with capture_logs() as logs:
        assert (await client.post("/v1/events", json=event("e9"), headers=AUTH)).status == 202
    assert (await client.get("/readyz")).status == 200
    assert (gauge("preempt_ready", "shop-ingest"), writes_failing("events")) == (1.0, 0.0)
    assert "writes succeeding again" in [e["event"] for e in logs if e["log_level"] == "info"]


async def test_writes_never_acknowledged_in_time_make_ingest_not_ready_too(client_factory: ClientFactory) -> None:
    """Writes answered 429 because Kafka never acknowledged them (what a deleted topic gives) count as failed."""
    client, sink = await client_factory(ingest_writes_failing_seconds=0.05, ingest_kafka_timeout_seconds=0.01)
    sink.delay_s = 0.05
    for i in range(3):
        assert (await client.post("/v1/events", json=event(f"e{i}"), headers=AUTH)).status == 429
    await asyncio.sleep(0.06)
    response = await client.get("/readyz")
    assert response.status == 503
    assert "topic preempt.events" in (await response.json())["reason"]
    assert "not acknowledged within 0.01 s" in (await response.json())["reason"]


async def test_one_success_between_failures_keeps_ingest_ready(client_factory: ClientFactory) -> None:
    """Failures interrupted by a write that is taken start a new streak: a flaky broker is not 'failing'."""
    client, sink = await client_factory(ingest_writes_failing_seconds=0.05)
    for i in range(4):
        sink.fail = i != 2
        await client.post("/v1/events", json=event(f"e{i}"), headers=AUTH)
        await asyncio.sleep(0.02)
    assert (await client.get("/readyz")).status == 200


async def test_failing_account_writes_are_degraded_not_unready() -> None:
    """The merger's (or the group calls') writes failing for the limit: /readyz stays 200, with the reason
    under "degraded", the gauge says so and one ERROR is logged — the events still go through, and an unready
    answer would take every replica (they share the broker) out of the load balancer. Failing event writes
    alongside make it 503, the account writes' reason still listed."""
    import orjson

    from streams.ingest.readiness import IngestReadiness
    from streams.ingest.write_health import WRITE_ACCOUNT_MERGES, WRITE_EVENTS, IngestWriteHealth

    now = [100.0]
    writes = IngestWriteHealth(10.0, clock=lambda: now[0])
    readiness = IngestReadiness(None, unreachable_after_s=30.0, clock=lambda: now[0], writes=writes)
    with capture_logs() as logs:
        for _ in range(3):
            writes.write_failed(WRITE_ACCOUNT_MERGES, "shop.accounts", "TimeoutError: the view did not read")
        now[0] += 11
        response = await readiness.readyz(None)  # type: ignore[arg-type]
    body = orjson.loads(response.body)  # type: ignore[arg-type]
    assert response.status == 200
    assert body["status"] == "ready"
    assert [r.split(": 3 attempts")[0] for r in body["degraded"]] == ["account merger stuck: topic shop.accounts"]
    assert (gauge("preempt_ready"), writes_failing("account_merges")) == (1.0, 1.0)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [ACCOUNT_WRITES_FAILING_LOG]
    for _ in range(3):
        writes.write_failed(WRITE_EVENTS, "shop.events", "KafkaError: UNKNOWN_TOPIC_OR_PARTITION")
    now[0] += 11
    writes.write_failed(WRITE_ACCOUNT_MERGES, "shop.accounts", "TimeoutError: the view did not read")
    response = await readiness.readyz(None)  # type: ignore[arg-type]
    body = orjson.loads(response.body)  # type: ignore[arg-type]
    assert response.status == 503
    assert body["reason"].startswith("writes failing: topic shop.events")
    assert len(body["degraded"]) == 1
