"""``preempt simulate`` publishing to the real broker: accounts and events, keyed by account."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest
from click.testing import CliRunner

from schemas.account import Account
from schemas.event import UsageEvent
from streams.cli.simulate import simulate
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from streams.simulate.generator import Simulation, SimulationConfig
from tests.integration.conftest import consume_records

START = "2026-11-02T00:00:00Z"
START_MS = 1_793_577_600_000


@pytest.fixture
def simulate_env(settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> TopicNames:
    """PREEMPT_* variables pointing the command at this test's topics on the test broker."""
    settings = settings_factory()
    monkeypatch.setenv("PREEMPT_BROKER", settings.broker)
    monkeypatch.setenv("PREEMPT_TOPIC_PREFIX", settings.topic_prefix)
    return TopicNames.from_settings(settings)


def test_backfill_publishes_every_account_and_event(simulate_env: TopicNames, kafka_bootstrap: str) -> None:
    """--backfill sends each account to the accounts topic and each event to the events topic, keyed by account."""
    args = ["--accounts", "3", "--days", "1", "--seed", "4", "--start", START, "--backfill"]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    sim = Simulation(SimulationConfig(seed=4, accounts=3, start_ms=START_MS, days=1))
    expected = {e.event_id: e.account_id for e in sim.events()}

    accounts = consume_records(kafka_bootstrap, simulate_env.accounts, 3, timeout_s=30)
    assert sorted(Account.model_validate_json(r.value).account_id for r in accounts) == [
        "acc-0001",
        "acc-0002",
        "acc-0003",
    ]
    assert all(r.key.decode() == Account.model_validate_json(r.value).account_id for r in accounts)

    events = consume_records(kafka_bootstrap, simulate_env.events, len(expected), timeout_s=30, idle_s=1.0)
    parsed = [(r.key.decode(), UsageEvent.model_validate_json(r.value)) for r in events]
    assert {e.event_id: e.account_id for _, e in parsed} == expected
    assert len(parsed) == len(expected)
    assert all(key == e.account_id for key, e in parsed)
    assert all(dict(r.headers)["content-type"] == b"application/json" for r in events)


def test_live_mode_stamps_events_with_the_current_time(simulate_env: TopicNames, kafka_bootstrap: str) -> None:
    """Live mode publishes at the rate for the duration, every event stamped with the current time."""
    before = time.time()
    result = CliRunner().invoke(simulate, ["--accounts", "2", "--seed", "5", "--rate", "40", "--duration", "1.5"])
    after = time.time()
    assert result.exit_code == 0, result.output
    # 40/s for 1.5 s is at most 60 events; a busy machine may send fewer, never more.
    events = consume_records(kafka_bootstrap, simulate_env.events, 60, timeout_s=30, idle_s=1.0)
    assert 0 < len(events) <= 60
    stamps = [UsageEvent.model_validate_json(r.value).timestamp.timestamp() for r in events]
    assert all(before - 1 <= ts <= after + 1 for ts in stamps)
    assert all(orjson.loads(r.value)["account_id"] in ("acc-0001", "acc-0002") for r in events)
