"""``preempt alerts dead-letters --replay`` without a broker: the replay header, the retention guard, and one
line (exit 1) when Kafka fails."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import orjson
import pytest
from click.testing import CliRunner
from kafka.errors import KafkaTimeoutError

import alerts.cli.dead_letters as command
import streams.runtime.broker_probe as broker_probe
import streams.runtime.dead_letter_reader as reader
from alerts.replay import REPLAY_HEADER, replay_targets
from alerts.testing.factories import build_alert
from schemas.alert import Alert
from streams.cli.main import main
from streams.runtime.dead_letter_reader import StoredDeadLetter
from streams.runtime.dead_letters import alert_dead_letter_headers, alert_dead_letter_verdict

DAY_MS = 86_400_000


def letter(alert: Alert, reason: str, target: str | None, age_days: float = 0.0) -> StoredDeadLetter:
    """A letter as the reader returns it, dead-lettered ``age_days`` ago."""
    kind = None if target is None else target.rsplit("/", 1)[-1]
    headers = alert_dead_letter_headers(reason, "boom", target=target, receiver_type=kind)
    stamp = int(time.time() * 1000 - age_days * DAY_MS)
    return StoredDeadLetter(
        alert.account_id, alert.model_dump_json().encode(), alert_dead_letter_verdict(headers), stamp
    )


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
    monkeypatch.delenv("PREEMPT_DELIVERY_LOG_RETENTION_SECONDS", raising=False)
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
    assert "replayed 2 alerts to preempt.alerts" in result.stderr


def test_letters_older_than_the_delivery_log_retention_are_refused_without_force(cli) -> None:
    """A letter older than the delivery log's retention (7 days): nothing is replayed, one line says why and
    what to do, exit 1; --force replays it."""
    cli += [
        letter(build_alert(), "permanent", "csm/slack", age_days=8),
        letter(build_alert(), "permanent", "csm/slack"),
    ]
    refused = run("--replay")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[-1] == (
        "Error: not replayed: 1 of the dead letters shown are older than the delivery log's retention "
        "(7d, PREEMPT_DELIVERY_LOG_RETENTION_SECONDS), so the notifier cannot tell whether their targets had "
        "them since; narrow the selection (--account, --reason, --limit) or add --force to replay them anyway"
    )
    assert FakeProducer.instances == []

    forced = run("--replay", "--force")
    assert forced.exit_code == 0, forced.output
    assert len(sent_targets()) == 2


def test_the_retention_setting_moves_the_limit(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PREEMPT_DELIVERY_LOG_RETENTION_SECONDS at 30 days, an 8-day-old letter is replayed."""
    monkeypatch.setenv("PREEMPT_DELIVERY_LOG_RETENTION_SECONDS", str(30 * 86400))
    cli.append(letter(build_alert(), "permanent", "csm/slack", age_days=8))
    result = run("--replay")
    assert result.exit_code == 0, result.output


def test_force_without_replay_is_a_usage_error(cli) -> None:
    """--force alone says it goes with --replay."""
    result = run("--force")
    assert result.exit_code == 2
    assert "--force only goes with --replay" in result.stderr


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("flush", "Error: replay failed: 1 of 1 alert not confirmed by Kafka at 127.0.0.1:9092 (KafkaTimeoutError)"),
        ("send", "Error: replay failed: 1 of 1 alert not confirmed by Kafka at 127.0.0.1:9092 (KafkaTimeoutError)"),
        ("connect", "Error: cannot replay: Kafka at 127.0.0.1:9092 did not answer (KafkaTimeoutError)"),
    ],
)
def test_a_broker_failure_during_replay_is_one_line_and_exit_1(
    cli, monkeypatch: pytest.MonkeyPatch, script: str, expected: str
) -> None:
    """A flush that times out, a record the broker never confirmed, a bootstrap that does not answer: one
    Error line that says to run it again, exit 1, no traceback."""
    cli.append(letter(build_alert(), "permanent", "csm/slack"))
    if script == "flush":
        FakeProducer.flush_error = KafkaTimeoutError("Timeout after waiting for 30 secs.")
    elif script == "send":
        FakeProducer.send_error = KafkaTimeoutError("Batch expired")
    else:

        def unreachable(**config: Any) -> None:
            raise KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:9092']")

        monkeypatch.setattr(command, "KafkaProducer", unreachable)
    result = run("--replay")
    assert result.exit_code == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith(expected), last
    assert "again once the broker is back" in last
    assert "Traceback" not in result.output


def test_a_letter_the_notifier_refused_as_invalid_is_not_replayed(cli) -> None:
    """An alert refused as invalid_alert (a garbled preempt-replay header) holds a valid alert, but not the
    targets it was meant for: replayed, it would go to every receiver as new. It is skipped and counted."""
    good, garbled = build_alert(), build_alert(account_id="globex")
    cli += [letter(good, "permanent", "csm/slack"), letter(garbled, "invalid_alert", None)]
    result = run("--replay")
    assert result.exit_code == 0, result.output
    assert sent_targets() == {good.alert_id: ("csm/slack",)}
    assert "1 skipped" in result.stderr


def test_a_dead_letter_fits_in_a_record_whatever_its_target_and_error_hold() -> None:
    """Target, receiver and error are clipped: a dead letter's headers stay small for any input."""
    headers = alert_dead_letter_headers("unknown_target", "e" * 500_000, target="r" * 400_000, receiver_type="x")
    assert sum(len(value) for _, value in headers) < 10_000
    verdict = alert_dead_letter_verdict(headers)
    assert verdict["target"] == "r" * 1999 + "…"


def test_replay_targets_are_bounded_and_named_once() -> None:
    """More than MAX_REPLAY_TARGETS targets, or one longer than MAX_TARGET_CHARS, is an invalid header;
    a target named twice is one target."""
    from alerts.replay import MAX_REPLAY_TARGETS, MAX_TARGET_CHARS, InvalidReplayHeaderError

    pair = (REPLAY_HEADER, orjson.dumps(["csm/slack", "csm/email", "csm/slack"]))
    assert replay_targets([pair]) == ("csm/slack", "csm/email")
    many = (REPLAY_HEADER, orjson.dumps([f"r/{i}" for i in range(MAX_REPLAY_TARGETS + 1)]))
    with pytest.raises(InvalidReplayHeaderError, match="targets, more than"):
        replay_targets([many])
    long = (REPLAY_HEADER, orjson.dumps(["r/" + "x" * MAX_TARGET_CHARS]))
    with pytest.raises(InvalidReplayHeaderError, match="longer than"):
        replay_targets([long])


def test_the_listing_shows_control_characters_of_a_letter_as_escapes_not_raw() -> None:
    """A delivery error text (Slack's, an SMTP server's), a key or a value may hold terminal control sequences: the
    listing shows them as \\xNN, so a letter cannot retitle or clear the operator's terminal or forge a line."""
    headers = alert_dead_letter_headers("target_failed", "smtp said \x1b]0;pwned\x07\nfake line", target="email/x")
    stored = StoredDeadLetter("acme\x1b[2J", b'{"title": "t\x1b[31m"}', alert_dead_letter_verdict(headers), 0)
    text = command.describe(stored)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\\x1b]0;pwned\\x07" in text
    assert "acme\\x1b[2J" in text
    assert text.count("\n") == 1  # the two lines of a letter, none forged
