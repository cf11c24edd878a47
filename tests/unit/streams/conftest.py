"""Fixtures for the rules-worker unit tests: a fake engine and processor factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schemas.account import Account
from streams.runtime.settings import Settings
from streams.worker.clock import PartitionClocks
from streams.worker.processor import RulesProcessor
from streams.worker.state_cache import StateCache
from streams.worker.wakeups import WakeupIndex
from tests.unit.streams.fake_engine import FakeEngine


@pytest.fixture
def make_processor() -> Callable[..., tuple[RulesProcessor, dict[bytes, bytes]]]:
    """Factory: ``make_processor(event_time_only=True, wall=…, accounts={…})`` → (processor, table dict)."""

    def factory(
        event_time_only: bool = True,
        wall: float = 2_000_000_000.0,
        accounts: dict[str, Account] | None = None,
        **settings: Any,
    ) -> tuple[RulesProcessor, dict[bytes, bytes]]:
        engine = FakeEngine()
        table: dict[bytes, bytes] = {}
        # One partition unless a test says otherwise: every account's home partition is then 0
        # (events read on another partition are forwarded, not evaluated).
        settings.setdefault("topic_partitions", 1)
        cfg = Settings(event_time_only=event_time_only, allowed_lateness_seconds=5.0, **settings)
        clocks = PartitionClocks(5.0, event_time_only, wall_clock=lambda: wall)
        cache = StateCache(table, engine.new_state, engine.loads, engine.dumps)
        known = accounts or {}
        processor = RulesProcessor(
            engine, cfg, cache, clocks, WakeupIndex(), known.get, ["three-errors", "quiet"], wall_clock=lambda: wall
        )
        return processor, table

    return factory
