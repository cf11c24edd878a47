"""The Faust notifier app ``preempt-notify``: ``preempt.alerts`` → Slack / email / console.

One agent (concurrency 1, manual acks) decodes each alert and hands it to the ``Dispatcher``; a
delivery loop task flushes aggregation groups and runs delivery attempts and retries. An alert's
record is acked only when all its deliveries are settled, and a delivery is recorded in the
``deliveries`` table (changelog flushed) before that ack, so a restart or rebalance never re-sends
what was delivered. A second agent applies ``preempt.feedback`` snoozes to the ``snoozes`` table.
The web server (``settings.notifier_web_port``) serves ``/metrics`` and ``POST /slack/actions``.

The consumer group and the changelog topics are named after the app id: ``preempt-notify`` for the
default topic prefix, ``<prefix>-notify`` otherwise (so deployments sharing a broker stay apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections import OrderedDict
from typing import Any, cast

import faust
from aiohttp import web
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from pydantic import SecretStr, ValidationError

from alerts.channels.base import Notifier
from alerts.channels.factory import build_notifiers
from alerts.delivery_log import DeliveryLog
from alerts.dispatch import Dispatcher
from alerts.feedback import (
    MAX_ACTION_BODY_BYTES,
    SlackAction,
    SlackActionHandler,
    SnoozeBook,
    read_bounded,
    update_note,
)
from alerts.retry import BackoffPolicy
from alerts.routing.config import RoutingConfig
from schemas.alert import Alert
from schemas.feedback import Feedback
from streams.runtime.kafka_clients import check_access, faust_credentials, kafka_python_config
from streams.runtime.logs import get_logger
from streams.runtime.metrics import ALERTS_SUPPRESSED, NOTIFICATIONS, NOTIFICATIONS_DEAD_LETTERED, READY
from streams.runtime.settings import Settings

log = get_logger(__name__)

APP_NAME = "preempt-notify"
_LOOP_MAX_SLEEP = 0.5


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
    check_access(settings)  # a refused login is one clear error now, not a 30 s bootstrap timeout
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="preempt-notify-admin",
        request_timeout_ms=int(timeout_s * 1000),
        **kafka_python_config(settings),
    )
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(name=t, num_partitions=settings.topic_partitions, replication_factor=settings.topic_replication)
            for t in (settings.topic("alerts"), settings.topic("alerts.dlq"), settings.topic("feedback"))
            if t not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(wanted)
    finally:
        admin.close()


def _secrets(settings: Settings, routing: RoutingConfig) -> list[str]:
    values: list[SecretStr | None] = [
        settings.slack_bot_token,
        settings.slack_webhook_url,
        settings.smtp_password,
        settings.slack_signing_secret,
    ]
    values += [s.webhook_url for r in routing.receivers for s in r.slack_configs]
    return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


class RecentAlerts:
    """The last delivered alerts by id, so a Slack button can re-render its message (bounded)."""

    def __init__(self, size: int = 5000) -> None:
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        self._size = size

    def add(self, alert: Alert) -> None:
        """Remember ``alert`` (evicting the oldest past the bound)."""
        self._alerts[alert.alert_id] = alert
        self._alerts.move_to_end(alert.alert_id)
        while len(self._alerts) > self._size:
            self._alerts.popitem(last=False)

    def get(self, alert_id: str) -> Alert | None:
        """The alert with this id, if it is still remembered."""
        return self._alerts.get(alert_id)


def create_app(
    settings: Settings, routing: RoutingConfig | None = None, notifiers: dict[str, list[Notifier]] | None = None
) -> faust.App:
    """Build the notifier app (no I/O until the worker starts). ``routing`` defaults to the console."""
    routing = routing or console_routing()
    notifiers = notifiers if notifiers is not None else build_notifiers(routing, settings)
    app = faust.App(
        app_id(settings),
        broker=settings.broker,
        store=settings.store,
        datadir=str(settings.data_dir),
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
        web_port=settings.notifier_web_port,
        web_in_thread=False,
        # Faust's /table and /router pages would serve table contents (deliveries, snoozes) to
        # anyone who can reach the port; the app does not use them.
        web_tables_enabled=False,
        web_router_enabled=False,
        broker_credentials=faust_credentials(settings),
    )
    alerts_topic = app.topic(settings.topic("alerts"), key_serializer="raw", value_serializer="raw")
    feedback_topic = app.topic(settings.topic("feedback"), key_serializer="raw", value_serializer="raw")
    dlq_topic = app.topic(settings.topic("alerts.dlq"), key_serializer="raw", value_serializer="raw")
    # Keyed by the raw account_id bytes — the alerts' key — so the default partitioner puts each
    # changelog record on the alert's partition (written from the delivery loop, outside the stream).
    deliveries = app.Table(
        "deliveries",
        partitions=settings.topic_partitions,
        key_type=bytes,
        use_partitioner=True,
    )
    snooze_table = app.Table("snoozes", partitions=settings.topic_partitions, key_type=bytes)
    snoozes = SnoozeBook(snooze_table)
    recent = RecentAlerts()

    async def flush() -> None:
        await app.producer.flush()

    async def dead_letter(alert: Alert, target: str, receiver_type: str, reason: str, detail: str) -> None:
        await dlq_topic.send(
            key=alert.account_id.encode(),
            value=alert.model_dump_json().encode(),
            headers=[
                ("target", target.encode()),
                ("receiver", target.split("/", 1)[0].encode()),
                ("receiver_type", receiver_type.encode()),
                ("reason", reason.encode()),
                ("error", detail.encode()),
            ],
        )
        await flush()

    dispatcher = Dispatcher(
        routing,
        notifiers,
        DeliveryLog(deliveries, settings.delivery_log_retention_seconds),
        dead_letter,
        flush,
        snoozes=snoozes,
        policy=BackoffPolicy(
            initial=settings.delivery_retry_initial_seconds,
            maximum=settings.delivery_retry_max_seconds,
            give_up=settings.delivery_give_up_seconds,
        ),
        scrub=_secrets(settings, routing),
    )
    dispatcher.on_delivered_alert = recent.add

    @app.agent(alerts_topic, concurrency=1)
    async def notify(stream: Any) -> None:
        # Manual acks: the dispatcher acks each record once its deliveries are settled.
        async for event in stream.noack().events():
            message = event.message
            try:
                alert = Alert.model_validate_json(event.value or b"")
            except ValidationError as exc:
                await _dead_letter_raw(dlq_topic, message.key, event.value, exc)
                await flush()
                ALERTS_SUPPRESSED.labels(reason="invalid").inc()
                NOTIFICATIONS_DEAD_LETTERED.labels(receiver_type="none", reason="invalid_alert").inc()
                NOTIFICATIONS.labels(receiver_type="none", outcome="dead_lettered").inc()
                event.ack()
                continue
            # Never raises for one alert: its failures are dead-lettered (alerts/dispatch.py).
            dispatcher.on_alert(alert, event.ack, message.partition)

    @app.agent(feedback_topic)
    async def apply_feedback(stream: Any) -> None:
        async for event in stream.events():
            try:
                feedback = Feedback.model_validate_json(event.value)
            except ValidationError as exc:
                log.warning("invalid feedback record ignored", error=str(exc), offset=event.message.offset)
                continue
            until = snoozes.apply(feedback, time.time())
            if until is not None:
                log.info(
                    "snooze recorded",
                    account_id=feedback.account_id,
                    rule_id=feedback.rule_id,
                    until=feedback.snooze_until,
                )

    @app.task  # type: ignore[untyped-decorator]
    async def delivery_loop() -> None:
        wakeup = dispatcher.scheduler.wakeup
        while not app.should_stop:
            wakeup.clear()
            try:
                next_at = dispatcher.tick()
            except Exception as exc:
                # Per-alert failures are dead-lettered inside tick(), so this is a bug in the loop
                # itself: stop the process (a silent, dead delivery loop is the worst outcome). The
                # unacked alerts are re-read after the restart and the delivery log refuses re-sends.
                log.critical("delivery loop failed; stopping the notifier", error=repr(exc))
                await app.crash(exc)
                raise
            timeout = _LOOP_MAX_SLEEP if next_at is None else min(max(next_at - time.time(), 0.0), _LOOP_MAX_SLEEP)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode's signal typing
    async def on_ready(sender: Any, **kwargs: Any) -> None:
        READY.labels(app=APP_NAME).set(1)
        partitions = sorted(
            tp.partition for tp in app.consumer.assignment() if tp.topic == alerts_topic.get_topic_name()
        )
        log.info("notifier ready", partitions=partitions, app_id=app.conf.id)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        # Eager rebalancing revokes everything; hold deliveries until we know what stays ours.
        READY.labels(app=APP_NAME).set(0)
        dispatcher.paused = True

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        # Work of partitions that stayed here is kept (Faust does not re-deliver their records);
        # work of partitions that moved is dropped: the new owner re-reads it from the committed offset.
        mine = {tp.partition for tp in assigned if tp.topic == alerts_topic.get_topic_name()}
        dropped = dispatcher.retain(mine)
        if dropped:
            log.info("pending deliveries handed over on rebalance", kept_partitions=sorted(mine), dropped=dropped)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_channels(sender: Any, **kwargs: Any) -> None:
        # Unacked alerts are simply re-read by the next owner; only connections need closing here.
        for notifier in dispatcher.notifiers():
            with contextlib.suppress(Exception):
                await notifier.aclose()

    async def publish_feedback(feedback: Feedback) -> None:
        await feedback_topic.send(key=feedback.account_id.encode(), value=feedback.model_dump_json().encode())
        await flush()

    async def update_message(action: SlackAction, feedback: Feedback) -> None:
        alert = recent.get(action.alert_id)
        if action.ref is None or alert is None:
            log.info("slack message not updated (message or alert unknown here)", alert_id=action.alert_id)
            return
        for notifier in dispatcher.notifiers():
            if notifier.receiver_type == "slack" and getattr(notifier, "mode", "bot") != "webhook":
                await notifier.update(action.ref, (alert,), update_note(feedback))
                return

    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    handler = SlackActionHandler(secret, publish_feedback, update_message)

    @app.page("/slack/actions")
    class SlackActions(View):
        """Slack's interactivity request URL (buttons on alert messages)."""

        async def post(self, request: Request, **kwargs: Any) -> Response:
            # Faust's own read_request_content reads any size: read through aiohttp's stream, bounded.
            aio = cast(web.Request, request)
            body = await read_bounded(aio.content_length, aio.content.iter_chunked(64 * 1024), MAX_ACTION_BODY_BYTES)
            if body is None:
                status, text = handler.too_large(aio.content_length)
                response = self.text(text, status=status)
                cast(web.Response, response).force_close()  # do not linger reading the rest of it
                return response
            status, text = await handler.handle(request.headers, body, time.time())
            return self.text(text, status=status)

    _register_web(app)
    app.preempt_dispatcher = dispatcher  # type: ignore[attr-defined]  # for `preempt notifier` shutdown
    return app


def _register_web(app: faust.App) -> None:
    """/metrics, /healthz and /readyz from alerts/web.py (the ops module); bare /metrics without it."""
    try:
        module = importlib.import_module("alerts.web")
    except ModuleNotFoundError:
        setup_prometheus_sensors(app)
        return
    module.register_web(app)


async def _dead_letter_raw(dlq: Any, key: bytes | None, value: bytes | None, exc: ValidationError) -> None:
    errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
    log.warning("undecodable alert dead-lettered", error=errors)
    await dlq.send(
        key=key,
        value=value,
        headers=[("reason", b"invalid_alert"), ("error", errors[:500].encode())],
    )
