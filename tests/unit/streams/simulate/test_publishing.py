"""Publishing simulated traffic: keys, topics, headers, and live pacing with the current time."""

from __future__ import annotations

import orjson
import pytest

from streams.runtime.settings import Settings
from streams.simulate import publishing
from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.publishing import KafkaSink, paced_now
from tests.unit.streams.fake_producer import FakeProducer


@pytest.fixture
def sim() -> Simulation:
    """Twelve accounts, two days."""
    return Simulation(SimulationConfig(seed=3, accounts=12, start_ms=1_795_420_800_000, days=2))


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> KafkaSink:
    """A sink on a fake producer (topic creation stubbed out)."""
    monkeypatch.setattr(publishing, "ensure_topics", lambda settings: None)
    return KafkaSink(Settings(topic_prefix="t"), producer=FakeProducer())


def test_accounts_go_to_the_accounts_topic_keyed_by_account(sim: Simulation, sink: KafkaSink) -> None:
    """Each account record is sent to <prefix>.accounts with its id as key and JSON value."""
    assert sink.publish_accounts(sim.accounts) == 12
    sent = sink.producer.sent[0]
    assert sent["topic"] == "t.accounts"
    assert sent["key"] == sim.accounts[0].account_id.encode()
    assert orjson.loads(sent["value"])["account_id"] == sim.accounts[0].account_id
    assert ("content-type", b"application/json") in sent["headers"]


def test_events_go_to_the_events_topic_keyed_by_account(sim: Simulation, sink: KafkaSink) -> None:
    """Events are sent to <prefix>.events keyed by account_id, one JSON object without newline."""
    event = next(sim.events())
    size = sink.publish_event(event)
    sent = sink.producer.sent[0]
    assert (sent["topic"], sent["key"]) == ("t.events", event.account_id.encode())
    assert orjson.loads(sent["value"])["event_id"] == event.event_id
    assert size == len(sent["value"]) + 1


def test_failed_sends_are_counted(sim: Simulation, monkeypatch: pytest.MonkeyPatch) -> None:
    """A send the broker rejects is counted in the tally's ``failed``, not lost silently."""
    monkeypatch.setattr(publishing, "ensure_topics", lambda settings: None)
    failing = KafkaSink(Settings(), producer=FakeProducer(fail_with=RuntimeError("broker said no")))
    failing.publish_event(next(sim.events()))
    failing.close()
    assert failing.tally.failed == 1
    assert failing.producer.flushed == 1


class FakeClock:
    """A monotonic clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now


def test_live_pacing_keeps_the_rate_and_stamps_the_current_time(sim: Simulation) -> None:
    """At 10 events/s for 2 s, 20 events go out, each stamped with the wall clock when sent."""
    clock = FakeClock()
    out = list(paced_now(sim.events(), 10.0, 2.0, clock.wall, clock.monotonic, clock.sleep))
    assert len(out) == 20
    assert clock.slept == pytest.approx(1.9)
    assert out[0].ts == pytest.approx(1_800_000_100.0)
    assert out[-1].ts == pytest.approx(1_800_000_101.9)


def test_live_pacing_keeps_the_deterministic_ids(sim: Simulation) -> None:
    """Only the timestamps change in live mode; ids and content follow the seeded sequence."""
    clock = FakeClock()
    expected = [e.event_id for _, e in zip(range(5), sim.events(), strict=False)]
    fresh = Simulation(sim.config)
    paced = paced_now(fresh.events(), 100.0, 0.045, clock.wall, clock.monotonic, clock.sleep)
    assert [e.event_id for e in paced] == expected
