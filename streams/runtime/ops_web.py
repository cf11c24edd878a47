"""The operational web surface of a Faust app: ``/metrics``, ``/healthz``, ``/readyz``, consumer lag.

Shared by the rules worker (``streams/worker/web.py``) and the notifier (``alerts/web.py``), which may not
import each other; each passes its own Faust-sensor prefix. The decisions (ready or not, lag
arithmetic) live in ``streams/runtime/health.py`` as pure functions. What it needs of Faust's private
state (the committed offsets, whether table recovery completed) comes from
``streams.runtime.faust_compat``, the one module every process shares for that.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
from aiokafka.errors import KafkaError
from faust import web
from faust.exceptions import ConsumerNotStarted
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from schemas.errors import ConfigError
from streams.runtime.faust_compat import bound_idle_connections, committed_offsets, tables_recovered
from streams.runtime.faust_sensor import AggregatingPrometheusMonitor
from streams.runtime.health import BrokerWatch, ConsumerState, Readiness, lag_by_topic, readiness
from streams.runtime.kafka_clients import unreachable_reason
from streams.runtime.logs import get_logger
from streams.runtime.metrics import BROKER_REACHABLE, CONSUMER_LAG, READY
from streams.runtime.settings import Settings

log = get_logger(__name__)
T = TypeVar("T")

# Faust's own sensor metrics are named <prefix>_* (preempt_rules_*, preempt_notify_*) whatever the
# app id (which carries the topic prefix), so dashboards and alert rules work for every deployment.
# They register on the process-wide registry: create them once per prefix, so building the app
# twice in one process does not fail.
_FAUST_METRICS: dict[str, FaustMetrics] = {}


def register_web(
    app: faust.App, *, faust_metrics_prefix: str, lag_interval_s: float = 15.0, settings: Settings | None = None
) -> None:
    """Add ``/metrics``, ``/healthz``, ``/readyz`` and the consumer-lag timer to ``app`` (and, given
    the process's ``settings``, the broker watch: :func:`register_broker_watch`).

    Called by ``create_app`` after the agents and tables are defined. The ``app`` label of
    ``preempt_ready`` and ``preempt_consumer_lag`` is the Faust app name.
    """
    # A connection that sends no whole request is closed after 75 s, as on ingest's port (it was an hour).
    bound_idle_connections(app)
    register_metrics_page(app, faust_metrics_prefix)
    register_probes(app)
    register_lag_exporter(app, interval_s=lag_interval_s)
    if settings is not None:
        register_broker_watch(app, settings)


def check_web_port(host: str, port: int, setting: str) -> None:
    """Raise :class:`ConfigError` (one line: what and which setting to change) when ``host:port``
    cannot be listened on — taken by another process, or not an address of this machine.

    Called before the Faust worker starts: Faust reports a failed bind as an error line carrying
    its whole traceback and exits, after it has connected to Kafka and joined the group.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp listens
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = "another process listens there" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ConfigError(
                f"cannot listen on {host}:{port} ({why}); set {setting} to a free port, "
                "or PREEMPT_WEB_HOST to an address of this machine"
            ) from None


def register_metrics_page(app: faust.App, faust_metrics_prefix: str) -> None:
    """Install Faust's Prometheus sensor (``preempt_rules_*``) and serve the default registry at ``/metrics``.

    The sensor counts per consumed record in plain integers and is flushed into the Prometheus
    metrics when the page is scraped (``streams.runtime.faust_sensor``): same names, no per-message cost.
    """
    if "/metrics" in app.web.views:  # an app.py that registered its own page keeps it
        return
    metrics = _FAUST_METRICS.get(faust_metrics_prefix)
    if metrics is None:
        metrics = _FAUST_METRICS[faust_metrics_prefix] = FaustMetrics.create(REGISTRY, faust_metrics_prefix)
    sensor = AggregatingPrometheusMonitor(metrics=metrics)
    app.monitor = sensor

    @app.page("/metrics")
    async def metrics_page(self: web.View, request: web.Request) -> web.Response:
        sensor.flush()
        return self.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def register_probes(app: faust.App) -> None:
    """``/healthz``: 200 while the process runs. ``/readyz``: 200 when ready, 503 with the reason."""
    name = app.conf.name
    READY.labels(app=name).set(0)

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        return self.json({"status": "alive", "app": name})

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        verdict = refresh_ready(app)
        if verdict.ready:
            return self.json({"status": "ready", "app": name, "detail": verdict.reason})
        return self.json({"status": "not_ready", "app": name, "reason": verdict.reason}, status=503)


def register_lag_exporter(app: faust.App, *, interval_s: float = 15.0) -> None:
    """A timer on every worker that sets ``preempt_consumer_lag`` and refreshes ``preempt_ready``."""

    async def export_consumer_lag() -> None:
        refresh_ready(app)
        await update_consumer_lag(app)

    app.timer(interval=interval_s, name=f"{app.conf.name}.consumer_lag")(export_consumer_lag)


# App -> its broker watch (whether the brokers answer; ``register_broker_watch``).
_BROKER_WATCH: weakref.WeakKeyDictionary[faust.App, BrokerWatch] = weakref.WeakKeyDictionary()
BROKER_WATCH_INTERVAL_SECONDS = 5.0


def register_broker_watch(
    app: faust.App, settings: Settings, interval_s: float = BROKER_WATCH_INTERVAL_SECONDS
) -> None:
    """Every ``interval_s``, open one connection to the bootstrap servers (with the process's
    security settings). Once none has answered for ``PREEMPT_BROKER_UNREACHABLE_SECONDS``,
    ``/readyz`` answers 503 ``broker unreachable: …`` and an ERROR line says so once; a line says
    when a broker answers again. ``preempt_broker_reachable{app}`` follows every attempt.

    Faust's and aiokafka's clients retry an unreachable broker for ever (and pick up again when it
    returns); without this the process went on answering "ready" with a lag gauge frozen at its
    last value, and only the clients' own log lines said anything.
    """
    name = app.conf.name
    watch = _BROKER_WATCH[app] = BrokerWatch(settings.broker_unreachable_seconds, time.monotonic())
    BROKER_REACHABLE.labels(app=name).set(1)
    timeout_s = max(0.5, min(settings.broker_probe_seconds, interval_s * 0.8))
    reported = False

    async def watch_broker() -> None:
        nonlocal reported
        error, loop_lag = await with_loop_lag(unreachable_reason(settings, timeout_s))
        now = time.monotonic()
        watch.observe(error, now, loop_lag=loop_lag)
        BROKER_REACHABLE.labels(app=name).set(0 if error is not None else 1)
        down = watch.down_for(now)
        if down is not None and not reported:
            reported = True
            log.error("broker unreachable; not ready until it answers", app=name, seconds=round(down), error=error)
        elif error is None and reported:
            reported = False
            log.info("broker reachable again", app=name)
        refresh_ready(app)

    app.timer(interval=interval_s, name=f"{name}.broker_watch")(watch_broker)


async def with_loop_lag(awaitable: Awaitable[T], step_s: float = 0.25) -> tuple[T, float]:
    """``awaitable``'s result, and how long the event loop was blocked when it ended (seconds beyond
    ``step_s`` that the sleep under way at its end overslept; 0 when the loop was free then).

    A broker-watch attempt runs on the process's own event loop: a batch that holds the loop across
    the attempt's deadline makes it time out though the broker answered. Only a block at the end
    counts: one in the middle of the attempt leaves it time to read an answer that came meanwhile
    (asyncio hands out ready sockets before expired timers), so the attempt's failure is the broker's.
    """
    loop = asyncio.get_running_loop()
    sleeping_since = loop.time()

    async def measure() -> None:
        nonlocal sleeping_since
        while True:
            sleeping_since = loop.time()
            await asyncio.sleep(step_s)

    sentinel = asyncio.ensure_future(measure())
    try:
        result = await awaitable
    finally:
        sentinel.cancel()
    return result, max(0.0, loop.time() - sleeping_since - step_s)


def broker_unreachable(app: faust.App) -> bool:
    """True while ``app``'s broker watch (:func:`register_broker_watch`) declares the brokers
    unreachable: none answered for ``PREEMPT_BROKER_UNREACHABLE_SECONDS`` (False without a watch)."""
    watch = _BROKER_WATCH.get(app)
    return watch is not None and watch.down_for(time.monotonic()) is not None


def broker_last_unanswered(app: faust.App) -> float | None:
    """Wall-clock seconds of the latest attempt of ``app``'s broker watch that no broker answered
    (None: none yet, or no watch) — also an outage shorter than ``PREEMPT_BROKER_UNREACHABLE_SECONDS``."""
    watch = _BROKER_WATCH.get(app)
    if watch is None or watch.last_failure is None:
        return None
    return time.time() - (time.monotonic() - watch.last_failure)


# App -> "topic/partition" of its stalled partitions (the rules worker's liveness watchdog).
_STALLED: weakref.WeakKeyDictionary[faust.App, Callable[[], tuple[str, ...]]] = weakref.WeakKeyDictionary()
# App -> why writes it waits on are stuck (the notifier's dead letters in flight too long).
_STUCK: weakref.WeakKeyDictionary[faust.App, Callable[[], tuple[str, ...]]] = weakref.WeakKeyDictionary()
# App -> why topics deleted under it matter (streams.runtime.missing_topics).
_MISSING: weakref.WeakKeyDictionary[faust.App, Callable[[], tuple[str, ...]]] = weakref.WeakKeyDictionary()


def register_liveness(
    app: faust.App,
    stalled: Callable[[], tuple[str, ...]],
    stuck: Callable[[], tuple[str, ...]] | None = None,
    missing: Callable[[], tuple[str, ...]] | None = None,
) -> None:
    """Make ``/readyz`` and ``preempt_ready`` report the partitions ``stalled()`` names as not ready,
    the writes ``stuck()`` describes (the notifier's dead letters the broker does not take) and the
    topics deleted under the process ``missing()`` describes (``streams.runtime.missing_topics``)."""
    _STALLED[app] = stalled
    if stuck is not None:
        _STUCK[app] = stuck
    if missing is not None:
        _MISSING[app] = missing


def consumer_state(app: faust.App) -> ConsumerState:
    """Read Faust's own group, rebalance and recovery state (and the watchdog's stalls, if any)."""
    try:
        assigned, started = source_partitions(app), True
    except ConsumerNotStarted:
        assigned, started = set(), False
    return ConsumerState(
        started=started,
        rebalances=app.rebalancing_count,
        rebalancing=bool(app.rebalancing),
        in_recovery=bool(app.in_recovery),
        recovery_completed=tables_recovered(app),
        assigned_partitions=len(assigned),
        stalled=stalled() if (stalled := _STALLED.get(app)) is not None else (),
        broker_unreachable=watch.unreachable(time.monotonic()) if (watch := _BROKER_WATCH.get(app)) else None,
        stuck=stuck() if (stuck := _STUCK.get(app)) is not None else (),
        missing=missing() if (missing := _MISSING.get(app)) is not None else (),
    )


def source_partitions(app: faust.App) -> set[Any]:
    """This worker's assigned partitions of the topics its agents read.

    Leaves out table changelogs (active and standby) and Faust's internal leader topic.
    """
    consumer = app.consumer
    internal = set(app.tables.changelog_topics) | set(getattr(consumer, "randomly_assigned_topics", ()))
    return {tp for tp in consumer.assignment() if tp.topic not in internal}


def refresh_ready(app: faust.App) -> Readiness:
    """Decide readiness now and mirror it in ``preempt_ready``."""
    verdict = readiness(consumer_state(app))
    READY.labels(app=app.conf.name).set(1 if verdict.ready else 0)
    return verdict


# App -> topic -> how many offsets of [start, end) of a partition hold no record (register_recordless).
_RECORDLESS: weakref.WeakKeyDictionary[faust.App, dict[str, Callable[[int, int, int], int]]] = (
    weakref.WeakKeyDictionary()
)


def register_recordless(app: faust.App, topic: str, recordless: Callable[[int, int, int], int]) -> None:
    """Leave out of ``preempt_consumer_lag`` the offsets of ``topic`` that ``recordless(partition,
    committed, end)`` says hold no record (the notifier: transaction markers on ``preempt.alerts``)."""
    _RECORDLESS.setdefault(app, {})[topic] = recordless


_REPORTED_TOPICS: dict[str, set[str]] = {}


async def update_consumer_lag(app: faust.App) -> None:
    """Set ``preempt_consumer_lag{app,topic}`` from this worker's assigned source partitions, less
    the offsets known to hold no record (:func:`register_recordless`).

    Topics this worker no longer holds drop to 0 so a revoked partition's lag does not linger.
    """
    name = app.conf.name
    consumer = app.consumer
    try:
        tps = source_partitions(app)
        ends = await consumer.highwaters(*tps) if tps else {}
        committed_map = committed_offsets(consumer)  # Faust's own record: no broker round trip
        committed = {tp: committed_map.get(tp) for tp in tps}
        missing = [tp for tp, offset in committed.items() if offset is None]
        earliest = await consumer.earliest_offsets(*missing) if missing else {}
    except (TimeoutError, ConsumerNotStarted, KafkaError) as exc:
        log.warning("consumer lag not updated", app=name, error=repr(exc))
        return
    known = _RECORDLESS.get(app, {})

    def recordless(tp: Any, start: int, end: int) -> int:
        count = known.get(tp.topic)
        return count(tp.partition, start, end) if count is not None else 0

    lag = lag_by_topic(tps, ends, committed, earliest, recordless if known else None)
    reported = _REPORTED_TOPICS.setdefault(name, set())
    for topic in reported - lag.keys():
        CONSUMER_LAG.labels(app=name, topic=topic).set(0)
    for topic, value in lag.items():
        CONSUMER_LAG.labels(app=name, topic=topic).set(value)
    reported.update(lag)
