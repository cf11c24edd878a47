"""``preempt publish`` — send events to ``preempt.events`` with kafka-python."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click
import orjson
from kafka import KafkaProducer

from schemas.event import UsageEvent
from schemas.settings import Settings
from streams.topics import TopicNames, ensure_topics


@click.command()
@click.option("--event", "event_name", required=True, help="Event name, e.g. 'Report Exported'.")
@click.option("--account", "account_id", required=True, help="Account id the event belongs to.")
@click.option("--user", "user_id", default=None, help="Acting user id.")
def publish(event_name: str, account_id: str, user_id: str | None) -> None:
    """Publish one event, keyed by account, and wait until the broker has it."""
    settings = Settings()
    ensure_topics(settings)
    event = UsageEvent(
        event_id=uuid.uuid4().hex,
        event=event_name,
        account_id=account_id,
        user_id=user_id,
        timestamp=datetime.now(UTC),
    )
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        meta = producer.send(
            TopicNames.from_settings(settings).events,
            key=account_id.encode(),
            value=orjson.dumps(event.model_dump(mode="json", exclude_none=True)),
            headers=[("content-type", b"application/json")],
        ).get(timeout=30)
    finally:
        producer.close()
    click.echo(f"published {event.event_id} to {meta.topic}[{meta.partition}]@{meta.offset}")
