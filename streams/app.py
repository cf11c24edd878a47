"""The Faust rules app ``preempt-rules``: consumes ``preempt.events``.

Walking skeleton: decode each record as JSON and count it. The rules issue grows this into
decode → dedup → evaluate → emit.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson

from schemas.logs import get_logger
from schemas.metrics import EVENTS
from schemas.settings import Settings
from streams.topics import TopicNames

log = get_logger(__name__)


def create_app(settings: Settings) -> faust.App:
    """Build the rules app for ``settings`` (no I/O until the worker starts)."""
    names = TopicNames.from_settings(settings)
    app = faust.App(
        "preempt-rules",
        broker=settings.broker,
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        web_host=settings.web_host,
        web_port=settings.worker_web_port,
        web_in_thread=False,
    )
    events = app.topic(names.events, key_serializer="raw", value_serializer="raw")

    @app.agent(events)
    async def consume(stream: Any) -> None:
        async for record in stream.events():
            try:
                payload = orjson.loads(record.value)
                EVENTS.labels(outcome="accepted").inc()
                log.info(
                    "event consumed",
                    account_id=payload.get("account_id"),
                    event_name=payload.get("event"),
                    partition=record.message.partition,
                    offset=record.message.offset,
                )
            except (orjson.JSONDecodeError, AttributeError) as exc:
                EVENTS.labels(outcome="dead_lettered").inc()
                log.warning("undecodable event", error=str(exc), offset=record.message.offset)

    return app
