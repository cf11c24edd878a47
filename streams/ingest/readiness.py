"""``GET /readyz`` of ``preempt ingest``: ready while a Kafka broker answers and takes ingest's writes.

Ingest holds no partitions and no tables: what it needs to do its job is a broker that takes its
writes. While none does, every request with events is answered 429 or 503 and the SDKs hold their
batches, so the pod should leave the load balancer and the on-call should hear of it — as for the
rules worker and the notifier (docs/operations.md, "Health probes"): every ``interval_s`` one
connection attempt to the bootstrap servers (``check``: ``kafka_clients.unreachable_reason`` in the
process), judged by the same ``BrokerWatch``; once none has answered for
``PREEMPT_BROKER_UNREACHABLE_SECONDS``, ``/readyz`` answers 503 with the reason, ``preempt_ready``
and ``preempt_broker_reachable`` (``app="preempt-ingest"``) say 0, and one ERROR line is logged
(one INFO line when a broker answers again). The process keeps serving: a restart would not bring
the broker back, and the producer picks up again by itself.

A broker that answers but refuses the writes (a topic deleted, too few in-sync replicas, no WRITE
ACL) is the other reason: ``IngestWriteHealth`` (``write_health``) reports the kinds of write —
the events, the account updates, the account merger's — that have all failed for
``PREEMPT_INGEST_WRITES_FAILING_SECONDS``. Failing event writes make ``/readyz`` answer 503 naming
the topic and the last error; failing account writes are listed under ``degraded`` in a 200 answer
(the events still go through: a pod out of the load balancer would refuse them too). The broker's
reason, the cause of anything else, is said first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from streams.ingest.write_health import WRITE_EVENTS, IngestWriteHealth
from streams.runtime.health import BrokerWatch
from streams.runtime.logs import get_logger
from streams.runtime.metrics import BROKER_REACHABLE, READY

log = get_logger(__name__)

APP_NAME = "preempt-ingest"  # the ``app`` label of preempt_ready and preempt_broker_reachable (default prefix)
BROKER_WATCH_INTERVAL_SECONDS = 5.0
BrokerCheck = Callable[[], Awaitable[str | None]]  # None: a broker answered; else why none did


class IngestReadiness:
    """The broker watch of one ingest app and its ``/readyz`` answer; started and stopped with the app."""

    def __init__(
        self,
        check: BrokerCheck | None,
        unreachable_after_s: float,
        interval_s: float = BROKER_WATCH_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        writes: IngestWriteHealth | None = None,
        app_name: str = APP_NAME,
    ) -> None:
        self._app = app_name  # ``<prefix>-ingest``: deployments sharing a Prometheus stay apart
        self._check = check
        self._writes = writes
        self._interval_s = interval_s
        self._clock = clock
        self._watch = BrokerWatch(unreachable_after_s, clock())  # the CLI probed the broker before it started
        self._task: asyncio.Task[None] | None = None
        self._reported = False
        READY.labels(app=self._app).set(1)
        BROKER_REACHABLE.labels(app=self._app).set(1)

    def not_ready_reason(self) -> str | None:
        """Why ingest is not ready now (None: ready); sets ``preempt_ready``."""
        return self._state()[0]

    def _state(self) -> tuple[str | None, list[str]]:
        """``(why not ready or None, what is degraded)``: only the events' writes make ingest unready.

        The account updates' and the merger's failing writes are reported (``degraded`` in the body,
        ``preempt_ingest_writes_failing``, one ERROR) but keep the pod ready: its events still go
        through, and every replica shares the broker, so taking them all out of the load balancer
        would refuse every event for a fault of the account records alone."""
        unreachable = self._watch.unreachable(self._clock())
        failing = self._writes.failing_by_group() if self._writes is not None else []
        blocking = [reason for group, reason in failing if group == WRITE_EVENTS]
        degraded = [reason for group, reason in failing if group != WRITE_EVENTS]
        if unreachable is not None:
            reason: str | None = f"broker unreachable: {unreachable}"
        else:
            reason = "; ".join(blocking) or None
        READY.labels(app=self._app).set(0 if reason is not None else 1)
        return reason, degraded

    async def readyz(self, _request: web.Request) -> web.Response:
        """200 ``{"status": "ready"}``, or 503 ``{"status": "not_ready", "reason": …}``; either with
        ``"degraded": [...]`` while account writes fail."""
        reason, degraded = self._state()
        body: dict[str, object] = {"status": "ready" if reason is None else "not_ready", "app": self._app}
        if reason is not None:
            body["reason"] = reason
        if degraded:
            body["degraded"] = degraded
        return web.Response(
            status=200 if reason is None else 503, body=orjson.dumps(body), content_type="application/json"
        )

    async def start(self) -> None:
        """Start watching (without a ``check``, only the writes are watched)."""
        self._task = asyncio.create_task(self._run(self._check), name=f"{self._app}-broker-watch")

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, check: BrokerCheck | None) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if check is None:
                self.not_ready_reason()  # the writes' ERROR/INFO lines and preempt_ready, without a probe
                continue
            try:
                error = await check()
            except Exception as exc:  # noqa: BLE001 - a check that breaks must not end the watch ("ready" for ever)
                error = f"the broker check failed: {exc!r}"
            self.observe(error)

    def observe(self, error: str | None) -> None:
        """Record one connection attempt's outcome (None: a broker answered) and update metrics and log."""
        self._watch.observe(error, self._clock())
        BROKER_REACHABLE.labels(app=self._app).set(0 if error is not None else 1)
        reason = self._watch.unreachable(self._clock())
        self.not_ready_reason()
        if reason is not None and not self._reported:
            self._reported = True
            log.error(
                "broker unreachable; ingest not ready until it answers",
                app=self._app,
                reason=f"broker unreachable: {reason}",
            )
        elif error is None and self._reported:
            self._reported = False
            log.info("broker reachable again", app=self._app)
