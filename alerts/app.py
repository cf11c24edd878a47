"""The Faust notifier app ``preempt-notify``: ``preempt.alerts`` → Slack / email / console.

``create_app`` builds the app — its topics, its ``deliveries`` and ``snoozes`` tables — and one
``NotifierRuntime`` (``alerts/runtime.py``), and registers the runtime's methods with Faust: the
alerts agent (concurrency 1, manual acks: a record is acked only when all its deliveries are
settled), the feedback agent, the delivery-loop task, the rebalance signals, the shutdown hook and
``POST /slack/actions``. The web server (``settings.notifier_web_port``) also serves ``/metrics``,
``/healthz`` and ``/readyz`` (``alerts/web.py``).

The consumer group and the changelog topics are named after the app id: ``preempt-notify`` for the
default topic prefix, ``<prefix>-notify`` otherwise (so deployments sharing a broker stay apart).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View

from alerts.channels.base import Notifier
from alerts.channels.factory import build_notifiers
from alerts.routing.config import RoutingConfig
from alerts.runtime import APP_NAME, NotifierRuntime, NotifierTopics
from alerts.web import register_web
from streams.runtime.faust_compat import aiohttp_request, close_connection_after, tolerate_non_utf8_header_keys
from streams.runtime.kafka_clients import faust_credentials
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames, ensure_topics

__all__ = ["APP_NAME", "app_id", "console_routing", "create_app", "ensure_notifier_topics"]


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


def _data_dir(settings: Settings) -> Path:
    """This process's folder under PREEMPT_DATA_DIR (per app, brokers and web port); its parents are
    made here (Faust makes only the last level)."""
    folder = settings.app_data_dir(app_id(settings), settings.notifier_web_port)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


def create_app(
    settings: Settings, routing: RoutingConfig | None = None, notifiers: dict[str, list[Notifier]] | None = None
) -> faust.App:
    """Build the notifier app (no I/O until the worker starts). ``routing`` defaults to the console.

    Called by ``preempt notifier`` (and the tests) once per process, before the Faust worker runs.
    """
    tolerate_non_utf8_header_keys()  # one such record crashed the notifier, again after every restart
    routing = routing or console_routing()
    notifiers = notifiers if notifiers is not None else build_notifiers(routing, settings)
    app = faust.App(
        app_id(settings),
        broker=settings.broker,
        store=settings.store,
        datadir=str(_data_dir(settings)),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        # Alerts can wait for hours (quiet hours, retries): a rebalance must not wait for them to be
        # acked. Their new owner re-consumes them from the committed offset; the log dedups.
        stream_wait_empty=False,
        broker_commit_interval=settings.notifier_commit_interval_seconds,
        broker_session_timeout=settings.notifier_session_timeout_seconds,
        web_host=settings.web_host,
        # web_host only names the server in URLs; Faust listens on web_bind (default 0.0.0.0, every
        # interface). PREEMPT_WEB_HOST is the interface to listen on (docs/operations.md).
        web_bind=settings.web_host,
        web_port=settings.notifier_web_port,
        web_in_thread=False,
        # Faust's /table and /router pages would serve table contents (deliveries, snoozes) to
        # anyone who can reach the port; the app does not use them.
        web_tables_enabled=False,
        web_router_enabled=False,
        broker_credentials=faust_credentials(settings),
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    topics = NotifierTopics(
        alerts=app.topic(settings.topic("alerts"), **raw),
        dead_letters=app.topic(settings.topic("alerts.dlq"), **raw),
        feedback=app.topic(settings.topic("feedback"), **raw),
    )
    # Keyed by the raw account_id bytes — the alerts' key — so the default partitioner puts each
    # changelog record on the alert's partition (written from the delivery loop, outside the stream).
    deliveries = app.Table("deliveries", partitions=settings.topic_partitions, key_type=bytes, use_partitioner=True)
    snoozes = app.Table("snoozes", partitions=settings.topic_partitions, key_type=bytes)
    runtime = NotifierRuntime(app, settings, routing, notifiers, topics, deliveries, snoozes)
    _install(app, runtime)
    _register_slack_actions(app, runtime)
    _register_web(app, settings)
    app.preempt_runtime = runtime  # type: ignore[attr-defined]  # the app's one handle on its runtime (tests, a debugger)
    return app


def _install(app: faust.App, runtime: NotifierRuntime) -> None:
    """Register the runtime's agents, delivery-loop task, rebalance signals and shutdown hook on ``app``."""
    # The agents keep the names they had as closures here (Faust's logs name them).
    app.agent(runtime.topics.alerts, name="alerts.app.notify", concurrency=1)(runtime.consume_alerts)
    app.agent(runtime.topics.feedback, name="alerts.app.apply_feedback")(runtime.consume_feedback)
    app.task(runtime.run_delivery_loop)

    async def recovered(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        runtime.on_recovered()

    async def revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        runtime.on_partitions_revoked(args[0] if args else kwargs.get("revoked", ()))

    async def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        runtime.on_partitions_assigned(args[0] if args else kwargs.get("assigned", ()))

    async def shutdown(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await runtime.close_channels()

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
