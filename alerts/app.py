"""The Faust notifier app ``preempt-notify``: ``preempt.alerts`` → Slack / email / console.

``create_app`` builds the app — its topics, its ``deliveries`` and ``snoozes`` tables — and one
``NotifierRuntime`` (``alerts/runtime.py``), and registers the runtime's methods with Faust: the
alerts agent (concurrency 1, manual acks: a record is acked only when all its deliveries are
settled), the feedback agent, the delivery-loop task, the rebalance signals, the graceful-stop hook
(deliveries in flight finish before the consumer stops), the shutdown hook and
``POST /slack/actions``. The web server (``settings.notifier_web_port``) also serves ``/metrics``,
``/healthz`` and ``/readyz`` (``alerts/web.py``).

The consumer group and the changelog topics are named after the app id: ``preempt-notify`` for the
default topic prefix, ``<prefix>-notify`` otherwise (so deployments sharing a broker stay apart).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.web import Request, Response, View

from alerts.channels.base import Notifier
from alerts.channels.factory import build_notifiers
from alerts.liveness import AlertsWatchdog
from alerts.routing.config import RoutingConfig
from alerts.runtime import APP_NAME, NotifierRuntime, NotifierTopics
from alerts.web import register_web
from streams.runtime.copartitioning import PartitionCountError, assignment_problem
from streams.runtime.data_dir import prepared_data_dir
from streams.runtime.faust_compat import (
    AppWithBeforeStop,
    ClusterPartitionCounts,
    aiohttp_request,
    close_connection_after,
    consumer_isolation_level,
    current_event_scope,
    placeholder_event,
    resume_flow_without_clearing,
    seek_uncommitted_to_beginning,
    seek_unread_changelogs_from_start,
    stop_fetchers_cleanly,
    tolerate_non_utf8_header_keys,
)
from streams.runtime.kafka_clients import faust_credentials, metadata_max_age_ms
from streams.runtime.logs import get_logger
from streams.runtime.metrics import expose_notifier_series
from streams.runtime.missing_topics import confirm_seconds, crash_on, dead_letter_reason, watch_topics
from streams.runtime.ops_web import broker_unreachable, register_liveness, register_recordless
from streams.runtime.range_reader import RangeReader
from streams.runtime.settings import Settings
from streams.runtime.table_store import table_options
from streams.runtime.topics import TopicNames, changelog_topics, ensure_topics

__all__ = ["APP_NAME", "app_id", "console_routing", "create_app", "ensure_notifier_topics"]

log = get_logger(__name__)


NOTIFIER_STREAM_BUFFER = 4096  # Faust's default agent buffer (stream_buffer_maxsize)
NOTIFIER_MAX_POLL_RECORDS = 500  # below a fifth of the buffer: what a poll puts past its high-pressure mark fits


def app_id(settings: Settings) -> str:
    """The Faust app id (= consumer group, changelog topic prefix) for ``settings``."""
    return APP_NAME if settings.topic_prefix == "preempt" else f"{settings.topic_prefix}-notify"


def console_routing() -> RoutingConfig:
    """The routing used without PREEMPT_ROUTES_PATH: every alert to a console preview, per account."""
    return RoutingConfig.model_validate(
        {"receivers": [{"name": "console", "console_configs": [{}]}], "route": {"receiver": "console"}}
    )


def ensure_notifier_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create the alerts, alerts DLQ and feedback topics if they are missing (idempotent)."""
    topics = TopicNames.from_settings(settings).notifier()
    ensure_topics(settings, timeout_s=timeout_s, topics=topics, client_id="preempt-notify-admin")


class PartitionedWrites(MutableMapping[bytes, Any]):
    """A ``use_partitioner`` table written from outside stream iteration (the delivery loop).

    Faust's changelog record goes to the partition the producer's default partitioner picks for the
    key, but the RocksDB store chooses its local partition database from the *current event* and
    asserts there is one (``faust.stores.rocksdb.Store._set``): every delivery record written by the
    delivery loop failed with ``AssertionError`` on ``rocksdb://`` (the production store), so
    nothing was recorded and no alert offset was ever settled. Each write here runs with a
    placeholder event of the partition the producer will pick, so the local database and the
    changelog partition agree (``memory://`` ignores it).
    """

    def __init__(self, app: faust.App, table: MutableMapping[bytes, Any], topic: str, partitions: int) -> None:
        self._app = app
        self._table = table
        self._topic = topic
        self._partitions = list(range(partitions))
        self._events: dict[int, faust.Event] = {}  # held strongly: the current event is a weakref

    def partition_for(self, key: bytes) -> int:
        """The changelog partition the producer's default (murmur2) partitioner picks for ``key``."""
        return int(DefaultPartitioner()(key, self._partitions, self._partitions))

    def __setitem__(self, key: bytes, value: Any) -> None:
        partition = self.partition_for(key)
        event = self._events.get(partition)
        if event is None:
            event = self._events[partition] = placeholder_event(self._app, self._topic, partition)
        with current_event_scope(event):
            self._table[key] = value

    def __getitem__(self, key: bytes) -> Any:
        return self._table[key]

    def __delitem__(self, key: bytes) -> None:
        del self._table[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def create_app(
    settings: Settings, routing: RoutingConfig | None = None, notifiers: dict[str, list[Notifier]] | None = None
) -> AppWithBeforeStop:
    """Build the notifier app (no I/O until the worker starts). ``routing`` defaults to the console.

    Called by ``preempt notifier`` (and the tests) once per process, before the Faust worker runs.
    """
    tolerate_non_utf8_header_keys()  # one such record crashed the notifier, again after every restart
    stop_fetchers_cleanly()  # a SIGTERM while the broker was away took 64 s (faust_compat section 15)
    seek_unread_changelogs_from_start()  # a standby without an offset stopped a worker after a pause
    routing = routing or console_routing()
    notifiers = notifiers if notifiers is not None else build_notifiers(routing, settings)
    expose_notifier_series(sorted({n.receiver_type for targets in notifiers.values() for n in targets}))
    # Deliveries in flight finish as a graceful stop begins (before_stop, in _install); preempt
    # notifier sets its stop deadline.
    app = AppWithBeforeStop(
        app_id(settings),
        broker=settings.broker,
        store=settings.store,
        datadir=str(prepared_data_dir(settings, app_id(settings), settings.notifier_web_port)),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        # Alerts can wait for hours (quiet hours, retries): a rebalance must not wait for them to be
        # acked. Their new owner re-consumes them from the committed offset; the log dedups.
        stream_wait_empty=False,
        # Faust stops fetching a partition once the agent's buffer is 80 % full, but puts the rest of the poll
        # in it, and a full buffer blocks its fetcher for every topic. A poll of at most 500 records fits in
        # what is left (4,096 - 3,276), so an intake pause (alerts/intake.py) never blocks the feedback topic.
        stream_buffer_maxsize=NOTIFIER_STREAM_BUFFER,
        broker_max_poll_records=NOTIFIER_MAX_POLL_RECORDS,
        broker_commit_interval=settings.notifier_commit_interval_seconds,
        broker_session_timeout=settings.notifier_session_timeout_seconds,
        consumer_metadata_max_age_ms=metadata_max_age_ms(settings),
        producer_metadata_max_age_ms=metadata_max_age_ms(settings),
        web_host=settings.web_url_host,
        # web_host only names the server in URLs (an IPv6 address in brackets); Faust listens on
        # web_bind (default 0.0.0.0, every interface). PREEMPT_WEB_HOST is the interface to listen on
        # (docs/operations.md).
        web_bind=settings.web_host,
        web_port=settings.notifier_web_port,
        web_in_thread=False,
        # Faust's /table and /router pages would serve table contents (deliveries, snoozes) to
        # anyone who can reach the port; the app does not use them.
        web_tables_enabled=False,
        web_router_enabled=False,
        broker_credentials=faust_credentials(settings),
    )
    # Alerts fetched as a rebalance or recovery stops the flow are read again from the committed
    # offset; with nothing committed yet (a restart before the first commit) they were skipped.
    seek_uncommitted_to_beginning(app)
    # Faust empties the agents' queues when recovery resumes the flow after its final seek: alerts
    # waiting there were neither delivered nor re-read (one restart in about six lost one).
    resume_flow_without_clearing(app)
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    topics = NotifierTopics(
        alerts=app.topic(settings.topic("alerts"), **raw),
        dead_letters=app.topic(settings.topic("alerts.dlq"), **raw),
        feedback=app.topic(settings.topic("feedback"), **raw),
    )
    # Keyed by the raw account_id bytes — the alerts' key — so the default partitioner puts each
    # changelog record on the alert's partition (written from the delivery loop, outside the stream).
    # Each table's RocksDB memory bounded (Faust's defaults grow toward gigabytes: streams/runtime/table_store.py).
    deliveries = app.Table(
        "deliveries",
        partitions=settings.topic_partitions,
        key_type=bytes,
        use_partitioner=True,
        options=table_options(settings),
    )
    snoozes = app.Table(
        "snoozes", partitions=settings.topic_partitions, key_type=bytes, options=table_options(settings)
    )
    written = PartitionedWrites(app, deliveries, settings.topic("alerts"), settings.topic_partitions)
    # One side consumer of preempt.alerts, as the agent's consumer reads (read_committed under exactly_once),
    # bounded at 5 s a read: the watchdog's tail probe and the agent's re-read of alerts Faust skipped.
    reader = RangeReader(
        settings,
        settings.topic("alerts"),
        timeout_s=5.0,
        isolation_level=lambda: consumer_isolation_level(app),
        reader="the notifier",
        report_deleted=False,  # the runtime logs each range it could not re-read whole, once, counted as lost
    )
    runtime = NotifierRuntime(
        app,
        settings,
        routing,
        notifiers,
        topics,
        written,
        snoozes,
        partition_for=written.partition_for,
        skipped_reader=reader,
        recent_reader=reader,
    )
    _install(app, runtime)
    _register_watchdog(app, runtime, settings, reader)
    _register_slack_actions(app, runtime)
    _register_web(app, settings)
    app.preempt_runtime = runtime  # type: ignore[attr-defined]  # the app's one handle on its runtime (tests, a debugger)
    return app


def _register_watchdog(app: faust.App, runtime: NotifierRuntime, settings: Settings, tail: RangeReader) -> None:
    """The liveness watchdog (``alerts.liveness``): a timer, and its stalls on ``/readyz``. ``tail`` reads a
    partition's tail as the agent's consumer would: offsets holding only transaction markers are not lag."""
    topic = settings.topic("alerts")
    watchdog = AlertsWatchdog(
        app,
        topic,
        settings.partition_stall_seconds,
        read=lambda: runtime.read_offsets,
        ready=lambda: runtime.recovered and not runtime.intake.paused,  # a pause is named on /readyz itself
        broker_down=lambda: broker_unreachable(app),
        probe=tail.holds_no_record,
        dead_letters=runtime.dead_letters_pending,
        recordless=runtime.recordless,
    )
    app.timer(interval=watchdog.interval_s, name="alerts-watchdog")(watchdog.check)
    scheduler = runtime.dispatcher.scheduler
    health = scheduler.health
    # /readyz: dead letters the broker does not take, targets every delivery to which fails, and a line of deliveries
    # waiting for their channel's pacing slot for longer than the give-up window, and new alerts not read while too
    # many deliveries are pending.
    # A changelog (delivery log, snoozes) deleted under the notifier stops it: the next start asks the operator.
    changelogs = [t.name for t in changelog_topics(app, settings.topic_partitions)]
    # The alerts DLQ deleted: a dead letter waits in the producer and its partition's alerts behind it; named at once.
    missing = watch_topics(
        app,
        changelogs=changelogs,
        written=(settings.topic("alerts.dlq"),),
        reason_for=lambda topic: dead_letter_reason(topic, settings, "notifier", "alert"),
        stop=crash_on(app),
        confirm_s=confirm_seconds(settings),
    )
    register_liveness(
        app,
        watchdog.stalled,
        lambda: (
            watchdog.stuck()
            + watchdog.unreadable()
            + health.failing()
            + scheduler.paced_backlog()
            + runtime.intake.reason()
        ),
        missing,
    )
    # preempt_consumer_lag counts alerts: the offsets known to hold no record (markers) are left out.
    register_recordless(app, topic, runtime.recordless.excluded_from_lag)

    async def close_tail_reader(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await tail.close()

    app.on_before_shutdown.connect(close_tail_reader)


def _install(app: AppWithBeforeStop, runtime: NotifierRuntime) -> None:
    """Register the runtime's agents, delivery-loop task, rebalance signals, graceful-stop and shutdown
    hooks on ``app``."""
    # The agents keep the names they had as closures here (Faust's logs name them).
    app.agent(runtime.topics.alerts, name="alerts.app.notify", concurrency=1)(runtime.consume_alerts)
    app.agent(runtime.topics.feedback, name="alerts.app.apply_feedback")(runtime.consume_feedback)
    app.task(runtime.run_delivery_loop)
    # Nothing is sent before the delivery log is recovered (the first on_recovered resumes the dispatcher).
    runtime.dispatcher.paused = True

    async def recovered(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The inhibit_rules sources of the last horizon, read back before deliveries resume (a restart forgot
        # them); a rebalance begun meanwhile has its own on_rebalance_complete, which resumes them.
        before = (app.consumer_generation_id, app.rebalancing_count)
        await runtime.recall_inhibit_sources()
        if (app.consumer_generation_id, app.rebalancing_count) == before:
            runtime.on_recovered()

    async def revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        runtime.on_partitions_revoked(args[0] if args else kwargs.get("revoked", ()))

    stopping: list[asyncio.Future[None]] = []  # the crash task, kept alive

    async def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Partitions added to the alerts topic (seen at the consumer's next metadata refresh): its
        # tables are no longer co-partitioned with it; stop with the line the next start prints too.
        changelogs = [table.changelog_topic_name for table in app.tables.values()]
        configured = runtime.settings.topic_partitions
        alerts = runtime.topics.alerts.get_topic_name()
        problem = assignment_problem(ClusterPartitionCounts(app), alerts, changelogs, configured)
        if problem is not None:
            log.critical("partition count changed; stopping the notifier", problem=problem)
            stopping.append(asyncio.ensure_future(app.crash(PartitionCountError(problem))))
            return
        runtime.on_partitions_assigned(args[0] if args else kwargs.get("assigned", ()))

    async def shutdown(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await runtime.close_channels()

    app.before_stop = runtime.finish_deliveries  # deliveries in flight end before the consumer stops
    app.on_rebalance_complete.connect(recovered)
    app.on_partitions_revoked.connect(revoked)
    app.on_partitions_assigned.connect(assigned)
    app.on_before_shutdown.connect(shutdown)


def _register_slack_actions(app: faust.App, runtime: NotifierRuntime) -> None:
    """``POST /slack/actions``: Slack's interactivity request URL, answered by the runtime."""

    class SlackActions(View):
        """Slack's interactivity request URL (buttons on alert messages)."""

        async def post(self, request: Request, **kwargs: Any) -> Response:
            reply = await runtime.handle_slack_action(aiohttp_request(request))
            response = self.text(reply.text, status=reply.status)
            if reply.close:
                close_connection_after(response)  # do not linger reading the rest of it
            return response

    app.page("/slack/actions")(SlackActions)


def _register_web(app: faust.App, settings: Settings) -> None:
    """/metrics, /healthz, /readyz and the broker watch (alerts/web.py: the shared ops surface, notifier prefix)."""
    register_web(app, settings=settings)
