"""Every producer Preempt makes refreshes its topic metadata every PREEMPT_METADATA_MAX_AGE_SECONDS, as its
consumers do (the client libraries' default, 5 minutes, left a deleted or re-made topic and added partitions
unseen by the producers that long)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest

import streams.ingest.account_merger as account_merger
import streams.ingest.sink as sink_module
import streams.sdk.publisher as publisher_module
import streams.simulate.publishing as publishing
from alerts.app import create_app as create_notifier_app
from alerts.cli.dead_letters import replay
from alerts.testing.factories import build_alert
from streams.cli.ingest import kafka_writers
from streams.runtime.dead_letter_reader import StoredDeadLetter
from streams.runtime.dead_letters import alert_dead_letter_headers, alert_dead_letter_verdict
from streams.runtime.settings import Settings
from streams.sdk.publisher import Publisher
from streams.simulate.publishing import KafkaSink
from streams.worker.app import create_app as create_worker_app

AGE_MS = 7_000


class NotConnectedError(Exception):
    """Raised by the recorder's ``start``: the test needs the configuration only."""


class RecordedProducer:
    """Stands in for a producer class: keeps the keyword arguments of every instance."""

    configs: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, *args: Any, **config: Any) -> None:
        RecordedProducer.configs.append(config)

    async def start(self) -> None:
        raise NotConnectedError

    def send(self, *args: Any, **kwargs: Any) -> Any:
        return _Done()

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None


class _Done:
    is_done = True
    exception = None

    def failed(self) -> bool:
        return False


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    RecordedProducer.configs = []
    return Settings(
        topic_prefix=f"ut{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path, metadata_max_age_seconds=7
    )


def test_both_faust_apps_give_their_producer_the_metadata_age(settings: Settings) -> None:
    """The rules worker's and the notifier's producer (Faust's producer_metadata_max_age_ms) as their consumer."""
    for app in (create_worker_app(settings), create_notifier_app(settings)):
        assert app.conf.producer_metadata_max_age_ms == AGE_MS
        assert app.conf.consumer_metadata_max_age_ms == AGE_MS


def test_the_ingest_producers_are_made_with_the_metadata_age(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`preempt ingest`'s event sink and its account merger's producer and consumer."""
    monkeypatch.setattr(sink_module, "AIOKafkaProducer", RecordedProducer)
    monkeypatch.setattr(account_merger, "AIOKafkaProducer", RecordedProducer)
    sink, merger = kafka_writers(settings)

    async def started_view() -> None:
        return None

    merger.view.start = started_view  # type: ignore[method-assign]
    for start in (sink.start, merger.start):
        with pytest.raises(NotConnectedError):
            asyncio.run(start())
    assert [config["metadata_max_age_ms"] for config in RecordedProducer.configs] == [AGE_MS, AGE_MS]


def test_publish_simulate_and_the_dead_letter_replay_make_their_producer_with_the_metadata_age(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`preempt publish` (Publisher.from_settings), `preempt simulate` and `preempt alerts dead-letters --replay`."""
    for module in (publisher_module, publishing):
        monkeypatch.setattr(module, "KafkaProducer", RecordedProducer)
        monkeypatch.setattr(module, "ensure_topics", lambda settings: None)
    monkeypatch.setattr(publisher_module, "probe_broker", lambda settings: None)
    Publisher.from_settings(settings)
    KafkaSink(settings)
    alert = build_alert()
    headers = alert_dead_letter_headers("permanent", "boom", target="csm/slack", receiver_type="slack")
    stored = StoredDeadLetter(alert.account_id, alert.model_dump_json().encode(), alert_dead_letter_verdict(headers), 0)
    assert replay(settings, [stored], producer_factory=RecordedProducer) == (1, 0)
    assert [config["metadata_max_age_ms"] for config in RecordedProducer.configs] == [AGE_MS] * 3
