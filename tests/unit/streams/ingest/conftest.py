"""Fixtures for the ingest unit tests: an in-memory sink, a test client on the ingest app, and the
items and counters the app's tests share."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from schemas.rfc3339 import parse_rfc3339
from streams.ingest.app import create_ingest_app
from streams.ingest.auth import key_digest
from streams.ingest.gate import DEAD_LETTERS
from streams.ingest.readiness import BrokerCheck
from streams.runtime.dead_letters import DeadLetterRecord
from streams.runtime.settings import Settings

NOW = parse_rfc3339("2026-11-23T06:00:00Z")
KEY = "pk_live_web"
AUTH = {"Authorization": f"Bearer {KEY}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}  # what the tracking SDKs send


def event(event_id: str = "e1", **overrides: Any) -> dict[str, Any]:
    """A valid canonical event for /v1/events; overrides replace fields."""
    return {
        "event_id": event_id,
        "event": "Login",
        "account_id": "acme",
        "timestamp": "2026-11-23T05:00:00Z",
    } | overrides


def track(message_id: str = "m-1", **overrides: Any) -> dict[str, Any]:
    """A valid Segment track call of account acme; overrides replace fields."""
    return {
        "type": "track",
        "messageId": message_id,
        "userId": "u-1",
        "event": "Report Exported",
        "timestamp": "2026-11-23T05:00:00Z",
        "context": {"groupId": "acme"},
    } | overrides


def counter(name: str, **labels: str) -> float:
    """The current value of a counter series (0 when it does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class MemorySink:
    """An EventSink that keeps the records in memory; ``fail`` makes sends raise, ``delay_s`` makes them slow.

    ``fail_dead_letters`` makes only ``send_dead_letters`` raise, ``dead_letter_delay_s`` only it
    slow; ``calls`` lists the sends in order, ``stop`` included.
    """

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.account_updates: list[tuple[bytes, bytes]] = []
        self.dead_letters: list[DeadLetterRecord] = []
        self.calls: list[str] = []
        self.started = self.stopped = False
        self.fail = False
        self.fail_dead_letters = False
        self.delay_s = 0.0
        self.dead_letter_delay_s = 0.0

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.calls.append("stop")
        self.stopped = True

    async def _hold(self) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("broker unreachable")

    async def send_many(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        await self._hold()
        self.calls.append("events")
        self.records.extend(records)

    async def send_account_updates(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        await self._hold()
        self.calls.append("account_updates")
        self.account_updates.extend(records)

    async def send_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> None:
        await self._hold()
        if self.dead_letter_delay_s:
            await asyncio.sleep(self.dead_letter_delay_s)
        if self.fail_dead_letters:
            raise ConnectionError("dead-letter topic unreachable")
        self.calls.append("dead_letters")
        self.dead_letters.extend(letters)


ClientFactory = Callable[..., Awaitable[tuple[TestClient[Any, Any], MemorySink]]]


@pytest.fixture
async def client_factory() -> AsyncIterator[ClientFactory]:
    """Factory: a test client on an ingest app with a MemorySink; settings overrides apply.

    ``handler_cancellation``: aiohttp cancels a handler whose client went away (as every handler at a stop).
    """
    clients: list[TestClient[Any, Any]] = []

    async def factory(
        clock: Callable[[], float] = lambda: NOW,
        broker_check: BrokerCheck | None = None,
        handler_cancellation: bool = False,
        **overrides: Any,
    ) -> tuple[TestClient[Any, Any], MemorySink]:
        settings = Settings(ingest_api_keys=(f"web={key_digest(KEY)}",), **overrides)  # type: ignore[arg-type]
        sink = MemorySink()
        app = create_ingest_app(settings, sink, clock=clock, broker_check=broker_check)
        client: TestClient[Any, Any] = TestClient(TestServer(app, handler_cancellation=handler_cancellation))
        await client.start_server()
        clients.append(client)
        return client, sink

    yield factory
    for client in clients:
        await client.close()


async def dead_letters_done(client: TestClient[Any, Any]) -> None:
    """Wait for the app's background dead-letter writes (no answer waits for them)."""
    await client.app[DEAD_LETTERS].flush()
