"""Fixtures for the ingest unit tests: an in-memory sink and a test client on the ingest app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas.rfc3339 import parse_rfc3339
from streams.ingest.app import create_ingest_app
from streams.ingest.auth import key_digest
from streams.runtime.dead_letters import DeadLetterRecord
from streams.runtime.settings import Settings

NOW = parse_rfc3339("2026-11-23T06:00:00Z")
KEY = "pk_live_web"
AUTH = {"Authorization": f"Bearer {KEY}"}


class MemorySink:
    """An EventSink that keeps the records in memory; ``fail`` makes sends raise, ``delay_s`` makes them slow.

    ``fail_dead_letters`` makes only ``send_dead_letters`` raise; ``calls`` lists the sends in order.
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

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
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
        if self.fail_dead_letters:
            raise ConnectionError("dead-letter topic unreachable")
        self.calls.append("dead_letters")
        self.dead_letters.extend(letters)


ClientFactory = Callable[..., Awaitable[tuple[TestClient[Any, Any], MemorySink]]]


@pytest.fixture
async def client_factory() -> AsyncIterator[ClientFactory]:
    """Factory: a test client on an ingest app with a MemorySink; settings overrides apply."""
    clients: list[TestClient[Any, Any]] = []

    async def factory(
        clock: Callable[[], float] = lambda: NOW, **overrides: Any
    ) -> tuple[TestClient[Any, Any], MemorySink]:
        settings = Settings(ingest_api_keys=(f"web={key_digest(KEY)}",), **overrides)  # type: ignore[arg-type]
        sink = MemorySink()
        client: TestClient[Any, Any] = TestClient(TestServer(create_ingest_app(settings, sink, clock=clock)))
        await client.start_server()
        clients.append(client)
        return client, sink

    yield factory
    for client in clients:
        await client.close()
