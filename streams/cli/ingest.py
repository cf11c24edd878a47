"""``preempt ingest`` — serve HTTP ingest (``POST /v1/events``) as its own process."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from streams.runtime.logs import configure_logging, get_logger
from streams.runtime.option_types import WholeNumberRange
from streams.runtime.settings import Settings

if TYPE_CHECKING:
    from streams.ingest.account_merger import AccountMerger
    from streams.ingest.sink import KafkaEventSink

BROKER_CHECK_TIMEOUT_SECONDS = 4.0  # one /readyz connection attempt every 5 s (streams.ingest.readiness)


def merger_group_id(settings: Settings) -> str:
    """The consumer group of ingest's account merger."""
    return f"{settings.topic_prefix}-ingest-accounts"


def kafka_writers(settings: Settings) -> tuple[KafkaEventSink, AccountMerger]:
    """Ingest's Kafka clients (not connected yet: they connect when the app starts), with the settings'
    security and metadata refresh (``PREEMPT_METADATA_MAX_AGE_SECONDS``)."""
    from streams.ingest.account_merger import AccountMerger
    from streams.ingest.sink import KafkaEventSink
    from streams.runtime.kafka_clients import aiokafka_config, metadata_max_age_ms
    from streams.runtime.topics import TopicNames

    topics = TopicNames.from_settings(settings)
    sink = KafkaEventSink(
        settings.bootstrap_servers,
        topics.events,
        max_event_bytes=settings.max_event_bytes,
        account_updates_topic=topics.account_updates,
        dead_letter_topic=topics.events_dlq,
        metadata_max_age_ms=metadata_max_age_ms(settings),
        security=aiokafka_config(settings),
    )
    merger = AccountMerger(
        settings.bootstrap_servers,
        updates_topic=topics.account_updates,
        accounts_topic=topics.accounts,
        group_id=merger_group_id(settings),
        catch_up_timeout_s=settings.ingest_account_catch_up_seconds,
        metadata_max_age_ms=metadata_max_age_ms(settings),
        security=aiokafka_config(settings),
    )
    return sink, merger


@click.command()
@click.option("--host", default=None, help="Interface to listen on (default: PREEMPT_WEB_HOST).")
@click.option(
    "--port",
    type=WholeNumberRange(0, 65535),
    default=None,
    help="Port to listen on (default, and with 0: PREEMPT_INGEST_PORT, 6068).",
)
def ingest(host: str | None, port: int | None) -> None:
    """Serve POST /v1/events and the Segment/RudderStack tracking API (/v1/batch, /v1/track…) into preempt.events.

    Group calls update preempt.accounts, except those of the keys whose source is listed in
    PREEMPT_INGEST_EVENT_ONLY_SOURCES (a browser's public key). Needs PREEMPT_INGEST_API_KEYS (a JSON
    list of sha256 hex digests of the API keys, optionally "source=digest"); PREEMPT_INGEST_HMAC_SECRET
    turns request signing on. See docs/events.md.
    """
    from aiohttp import web

    from streams.ingest.app import create_ingest_app, stop_wait_seconds
    from streams.runtime.broker_probe import probe_broker
    from streams.runtime.kafka_clients import unreachable_reason
    from streams.runtime.kafka_permissions import check_permissions
    from streams.runtime.ops_web import check_web_port
    from streams.runtime.topics import ensure_topics

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    log = get_logger("streams.ingest")
    # The sink and the merger connect only when the app starts, so the app's own checks (API
    # keys) come first, then the broker probe, then topic creation.
    merger_group = merger_group_id(settings)
    sink, merger = kafka_writers(settings)

    async def broker_check() -> str | None:
        return await unreachable_reason(settings, BROKER_CHECK_TIMEOUT_SECONDS)

    try:
        app = create_ingest_app(settings, sink, merger=merger, broker_check=broker_check)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    bind_host, bind_port = host or settings.web_host, port or settings.ingest_port
    # A taken port or a foreign address is one line before any connection (not after the probe and
    # topic creation, under an "ingest listening" log line).
    check_web_port(bind_host, bind_port, "--port / PREEMPT_INGEST_PORT")
    probe_broker(settings)
    ensure_topics(settings)
    check_permissions(settings, group_id=merger_group)  # the merger's consumer group: one line, not its traceback
    log.info("ingest listening", host=bind_host, port=bind_port, signing=settings.ingest_hmac_secret is not None)
    try:
        web.run_app(
            app,
            host=bind_host,
            port=bind_port,
            print=None,
            access_log=None,
            shutdown_timeout=stop_wait_seconds(settings),
        )
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise click.ClickException(
            f"cannot listen on {bind_host}:{bind_port}: {exc.strerror or exc}; "
            "choose another --port / PREEMPT_INGEST_PORT or --host / PREEMPT_WEB_HOST"
        ) from exc
