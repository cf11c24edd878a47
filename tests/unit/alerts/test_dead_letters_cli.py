"""``preempt alerts dead-letters --replay`` without a broker: the replay header, the retention guard, and one
line (exit 1) when Kafka fails."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
import pytest
from click.testing import CliRunner

import alerts.cli.dead_letters as command
import streams.runtime.broker_probe as broker_probe
import streams.runtime.dead_letter_reader as reader
from alerts.replay import REPLAY_HEADER, replay_targets
from alerts.testing.factories import build_alert
from schemas.alert import Alert
from streams.cli.main import main
from streams.runtime.dead_letter_reader import StoredDeadLetter
from streams.runtime.dead_letters import alert_dead_letter_headers, alert_dead_letter_verdict


def letter(alert: Alert, reason: str, target: str | None) -> StoredDeadLetter:
    """A letter as the reader returns it."""
    kind = None if target is None else target.rsplit("/", 1)[-1]
    headers = alert_dead_letter_headers(reason, "boom", target=target, receiver_type=kind)
    return StoredDeadLetter(alert.account_id, alert.model_dump_json().encode(), alert_dead_letter_verdict(headers))


class FakeFuture:
    """A produce future: done, and failed with ``error`` when given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.is_done = True
        self.exception = error

    def failed(self) -> bool:
        return self.exception is not None


class FakeProducer:
    """kafka-python's producer as the replay uses it; ``flush_error``/``send_error`` script a broker failure."""

    instances: ClassVar[list[FakeProducer]] = []
    flush_error: Exception | None = None
    send_error: Exception | None = None

    def __init__(self, **config: Any) -> None:
        self.sent: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
        FakeProducer.instances.append(self)

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> FakeFuture:
        self.sent.append((topic, key, value, headers))
        return FakeFuture(self.send_error)

    def flush(self, timeout: float) -> None:
        if self.flush_error is not None:
            raise self.flush_error

    def close(self, timeout: float) -> None:
        return None


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> list[StoredDeadLetter]:
    """The command over the letters the test puts in the returned list, producing with ``FakeProducer``."""
    letters: list[StoredDeadLetter] = []
    FakeProducer.instances, FakeProducer.flush_error, FakeProducer.send_error = [], None, None
    monkeypatch.setattr(broker_probe, "probe_broker", lambda settings: None)
    monkeypatch.setattr(reader, "read_dead_letters", lambda settings, **kw: list(letters))
    monkeypatch.setattr(command, "KafkaProducer", FakeProducer)
    return letters


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["alerts", "dead-letters", *args])


def sent_targets() -> dict[str, tuple[str, ...] | None]:
    (producer,) = FakeProducer.instances
    return {orjson.loads(value)["alert_id"]: replay_targets(headers) for _t, _k, value, headers in producer.sent}


def test_a_replay_names_the_targets_each_alert_was_dead_lettered_for(cli) -> None:
    """One record per alert, its preempt-replay header naming every target it failed for; an alert with a
    letter that names no target (routing_error) gets an empty list: the notifier routes it as new."""
    both, unrouted = build_alert(), build_alert(account_id="globex")
    cli += [
        letter(both, "permanent", "csm/slack"),
        letter(both, "gave_up", "csm/email"),
        letter(unrouted, "routing_error", "-"),
    ]
    result = run("--replay")
    assert result.exit_code == 0, result.output
    assert sent_targets() == {both.alert_id: ("csm/email", "csm/slack"), unrouted.alert_id: ()}
    (producer,) = FakeProducer.instances
    assert all(REPLAY_HEADER in dict(h) for *_, h in producer.sent)
    assert "replayed 2 alert(s) to preempt.alerts" in result.stderr
