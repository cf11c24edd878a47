"""NotifierRuntime (alerts/runtime.py): decode → dispatch → ack, dead letters, rebalance, recovery, feedback."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from prometheus_client import REGISTRY
from pydantic import SecretStr
from structlog.testing import capture_logs

import alerts.runtime as runtime_module
from alerts.channels.base import DeliveryReceipt, Notification
from alerts.feedback import MAX_ACTION_BODY_BYTES, SlackAction
from alerts.intake import LEFT_TO_READ_AGAIN
from alerts.replay import replay_header
from alerts.routing.config import RoutingConfig
from alerts.routing.inhibit import Inhibitor
from alerts.runtime import (
    NotifierRuntime,
    NotifierTopics,
    RecentAlerts,
    SlackReply,
    secret_values,
)
from schemas.alert import Alert
from schemas.feedback import Feedback
from streams.runtime.settings import Settings
from tests.unit.alerts.test_feedback import SECRET, make_body, signed
from tests.unit.alerts.test_retry import HangingNotifier

ALERTS = "ut.alerts"
FEEDBACK = "ut.feedback"


class FakeTopic:
    """A Faust topic that records what is sent to it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[dict[str, Any]] = []
        self.refuse: Exception | None = None  # the broker's answer to every record from now on (None: taken)

    def get_topic_name(self) -> str:
        return self.name

    async def send(
        self, *, key: bytes | None, value: bytes | None, headers: Any = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        """Records the send; returns the delivery future (a Faust topic's ``FutureMessage``), already taken."""
        return await self.publish_message(
            self.as_future_message(key=key, value=value, headers=headers, partition=partition)
        )

    def as_future_message(
        self, *, key: bytes | None, value: bytes | None, headers: Any = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        """The record's delivery future (Faust's ``FutureMessage``), the record kept on it until published."""
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        record = {"key": key, "value": value, "headers": headers}
        delivered.record = record if partition is None else {**record, "partition": partition}  # type: ignore[attr-defined]
        return delivered

    async def publish_message(self, message: asyncio.Future[None]) -> asyncio.Future[None]:
        """Records the message and takes it at once."""
        if self.refuse is not None:
            message.set_exception(self.refuse)
            return message
        self.sent.append(message.record)  # type: ignore[attr-defined]
        message.set_result(None)
        return message


class FakeApp:
    """The parts of a Faust app the runtime uses: producer flush, stop flag, crash, consumer, conf."""

    def __init__(self, assignment: set[TP] | None = None) -> None:
        self.flushes = 0
        self.should_stop = False
        self.crashed: list[BaseException] = []
        self.producer = SimpleNamespace(flush=self._flush)
        self.paused: set[TP] = set()  # partitions paused with the consumer's pause_partitions
        self.consumer = SimpleNamespace(
            assignment=lambda: assignment or set(),
            pause_partitions=self.paused.update,
            resume_partitions=self.paused.difference_update,
            _buffered_partitions=set(),
        )
        self.conf = SimpleNamespace(id="ut-notify", name="ut-notify")
        self.consumer_generation_id = 1
        self.rebalancing = False
        self.rebalancing_count = 0

    async def _flush(self) -> None:
        self.flushes += 1

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)
        self.should_stop = True


class RecordingNotifier:
    """A Slack bot channel that accepts every notification and records sends, updates and closes."""

    receiver_type = "slack"
    mode = "bot"

    def __init__(self, fail_close: bool = False) -> None:
        self.sent: list[Notification] = []
        self.updates: list[tuple[str, tuple[Alert, ...], dict[str, str]]] = []  # notes as the lines shown
        self.closed = False
        self._fail_close = fail_close

    async def send(self, notification: Notification) -> DeliveryReceipt:
        self.sent.append(notification)
        return DeliveryReceipt(receiver=notification.receiver, ref=f"C1:{len(self.sent)}.0")

    async def update(
        self, ref: str | None, alerts: tuple[Alert, ...], notes: Mapping[str, object], response_url: str | None = None
    ) -> None:
        self.updates.append((ref or f"response_url:{response_url}", alerts, {k: str(v) for k, v in notes.items()}))

    async def aclose(self) -> None:
        self.closed = True
        if self._fail_close:
            raise ConnectionError("already gone")


OFFSETS = itertools.count(7)  # each record read has its own offset, in the order read


class FakeEvent:
    """A Faust event of ``preempt.alerts``: value, message (key, partition, offset) and an ack counter."""

    def __init__(
        self, value: bytes, partition: int = 0, key: bytes = b"acme", headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        self.value = value
        self.message = SimpleNamespace(
            key=key, partition=partition, offset=next(OFFSETS), topic=ALERTS, headers=headers or []
        )
        self.acks = 0
        self.acked = asyncio.Event()

    def ack(self) -> None:
        self.acks += 1
        self.acked.set()


class FakeStream:
    """A Faust stream over fixed events; remembers whether acking was switched off."""

    def __init__(self, events: list[Any]) -> None:
        self._events = events
        self.noack_called = False

    def noack(self) -> FakeStream:
        self.noack_called = True
        return self

    async def events(self) -> AsyncIterator[Any]:
        for event in self._events:
            yield event


class FakeRangeReader:
    """The side reader of ``preempt.alerts``: ``records`` (aiokafka-like) by offset; the rest of any range
    read holds transaction markers (``complete``), or could not be read (not ``complete``)."""

    def __init__(self, records: list[Any] | None = None, complete: bool = True) -> None:
        self.records = records or []
        self.complete = complete
        self.reads: list[tuple[int, int, int]] = []

    async def read_range(
        self, partition: int, start: int, end: int, *, first_only: bool = False
    ) -> tuple[list[Any], bool]:
        self.reads.append((partition, start, end))
        got = [r for r in self.records if r.partition == partition and start <= r.offset < end]
        return got, self.complete


Runtime = tuple[NotifierRuntime, FakeApp, RecordingNotifier, dict[str, FakeTopic]]


@pytest.fixture
def make_runtime(tmp_path: Path) -> Callable[..., Runtime]:
    """Factory: a runtime over one Slack-bot receiver ``csm`` (no grouping wait), fake app and topics; its side
    reader finds transaction markers only in any range unless ``reader`` says otherwise."""

    def factory(
        assignment: set[TP] | None = None,
        extra: tuple[RecordingNotifier, ...] = (),
        reader: FakeRangeReader | None = None,
        **settings: Any,
    ) -> Runtime:
        routing = RoutingConfig.model_validate(
            {"receivers": [{"name": "csm", "console_configs": [{}]}], "route": {"receiver": "csm", "group_wait": "0s"}}
        )
        app, notifier = FakeApp(assignment), RecordingNotifier()
        topics = {
            "alerts": FakeTopic(ALERTS),
            "dead_letters": FakeTopic("ut.alerts.dlq"),
            "feedback": FakeTopic(FEEDBACK),
        }
        runtime = NotifierRuntime(
            app,  # type: ignore[arg-type]
            Settings(topic_prefix="ut", store="memory://", data_dir=tmp_path, **settings),
            routing,
            {"csm": [notifier, *extra]},  # type: ignore[list-item]
            NotifierTopics(**topics),  # type: ignore[arg-type]
            {},
            {},
            skipped_reader=reader or FakeRangeReader(),
        )
        return runtime, app, notifier, topics

    return factory


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_invalid_alert_is_dead_lettered_flushed_counted_and_acked(make_runtime) -> None:
    """An undecodable record is dead-lettered as consumed (reason, error), flushed, counted, then acked."""
    runtime, app, _, topics = make_runtime()
    before = _sample("preempt_notifications_dead_lettered_total", receiver_type="none", reason="invalid_alert")
    suppressed = _sample("preempt_alerts_suppressed_total", reason="invalid")
    event = FakeEvent(b'{"alert_id": 1}', key=b"acme")
    with capture_logs() as logs:
        await runtime.handle_alert(event)
    [letter] = topics["dead_letters"].sent
    assert letter["key"] == b"acme"
    assert letter["value"] == b'{"alert_id": 1}'
    names = [name for name, _ in letter["headers"]]
    assert names == ["reason", "error"]
    assert letter["headers"][0] == ("reason", b"invalid_alert")
    assert b"alert_id: expected text, not 1" in letter["headers"][1][1]
    assert app.flushes == 1
    assert event.acks == 1
    assert (
        _sample("preempt_notifications_dead_lettered_total", receiver_type="none", reason="invalid_alert") == before + 1
    )
    assert _sample("preempt_alerts_suppressed_total", reason="invalid") == suppressed + 1
    [line] = [e for e in logs if e["log_level"] != "debug"]
    assert line["event"] == "undecodable alert dead-lettered"
    assert (line["partition"], line["offset"]) == (event.message.partition, event.message.offset)  # where to look


async def test_invalid_alert_error_header_is_cut_to_500_characters(make_runtime, make_alert) -> None:
    """The error header of a record with long invalid field paths is cut to 500 characters; the log has it all."""
    runtime, _, _, topics = make_runtime()
    record = make_alert().model_dump(mode="json") | {"labels": {f"label_{'x' * 200}_{i}": i for i in range(6)}}
    with capture_logs() as logs:
        await runtime.handle_alert(FakeEvent(json.dumps(record).encode()))
    [letter] = topics["dead_letters"].sent
    error = dict(letter["headers"])["error"]
    assert len(error) == 500
    [line] = [e for e in logs if e["log_level"] != "debug"]
    assert line["error"].encode().startswith(error)
    assert len(line["error"]) > 1000


async def test_valid_alert_is_acked_only_after_its_delivery_is_settled(make_runtime, make_alert) -> None:
    """A decoded alert is dispatched with the event's ack, and acked once the delivery loop delivered it."""
    runtime, _, notifier, topics = make_runtime()
    alert = make_alert()
    event = FakeEvent(alert.model_dump_json().encode(), partition=2)
    await runtime.consume_alerts(FakeStream([event]))
    assert event.acks == 0
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert [a.alert_id for n in notifier.sent for a in n.alerts] == [alert.alert_id]
    assert event.acks == 1
    assert topics["dead_letters"].sent == []


async def test_a_replayed_alert_reaches_the_dispatcher_with_its_targets(make_runtime, make_alert) -> None:
    """A record with the preempt-replay header is dispatched as a replay of the targets it names; one whose
    header is not a JSON array of targets is dead-lettered (invalid_alert) and acked, not sent to anyone."""
    runtime, _, notifier, topics = make_runtime()
    seen: list[tuple[str, ...] | None] = []
    dispatch = runtime.dispatcher.on_alert

    def spy(alert: Alert, ack: Callable[[], object], partition: int | None = None, replay: Any = None) -> None:
        seen.append(replay)
        dispatch(alert, ack, partition, replay=replay)

    runtime.dispatcher.on_alert = spy  # type: ignore[method-assign]
    alert = make_alert()
    replayed = FakeEvent(alert.model_dump_json().encode(), headers=[replay_header(["csm/slack"])])
    plain = FakeEvent(make_alert().model_dump_json().encode())
    broken = FakeEvent(make_alert().model_dump_json().encode(), headers=[("preempt-replay", b"csm/slack")])
    await runtime.consume_alerts(FakeStream([replayed, plain, broken]))
    assert seen == [("csm/slack",), None]
    [letter] = topics["dead_letters"].sent
    assert dict(letter["headers"])["reason"] == b"invalid_alert"
    assert b"preempt-replay header is not JSON" in dict(letter["headers"])["error"]
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert len([a for n in notifier.sent for a in n.alerts]) == 2  # the broken one was sent nowhere
    assert (replayed.acks, plain.acks, broken.acks) == (1, 1, 1)


@pytest.mark.parametrize(
    "targets",
    [["x" * 340_000], [f"csm/c{i}" for i in range(65)]],
    ids=["a 340 KB target", "65 targets"],
)
async def test_a_replay_header_past_its_bounds_is_one_small_dead_letter(make_runtime, make_alert, targets) -> None:
    """A preempt-replay header naming one 340 KB target made a dead letter over Kafka's record size (the
    target repeated in three headers): the send failed and crashed the notifier, at every restart; one
    naming thousands of targets fanned out into a dead letter each. Both are one invalid_alert letter."""
    runtime, _, notifier, topics = make_runtime()
    event = FakeEvent(make_alert().model_dump_json().encode(), headers=[replay_header(targets)])
    await runtime.consume_alerts(FakeStream([event]))
    [letter] = topics["dead_letters"].sent
    headers = dict(letter["headers"])
    assert headers["reason"] == b"invalid_alert"
    assert sum(len(v or b"") for _, v in letter["headers"]) < 10_000
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert notifier.sent == []
    assert event.acks == 1


async def test_an_alert_settled_early_is_acked_to_faust_after_the_earlier_one_waiting(make_runtime, make_alert) -> None:
    """A record dead-lettered at once waits, for its ack, for the alert before it in the partition that is
    still being delivered: Faust must not commit past that alert (a restart would never read it again)."""
    runtime, _, notifier, topics = make_runtime()
    waiting = FakeEvent(make_alert().model_dump_json().encode(), partition=1)
    broken = FakeEvent(b"not an alert", partition=1)
    elsewhere = FakeEvent(b"not an alert either", partition=2)
    await runtime.consume_alerts(FakeStream([waiting, broken, elsewhere]))
    assert len(topics["dead_letters"].sent) == 2
    assert (waiting.acks, broken.acks, elsewhere.acks) == (0, 0, 1)
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert len(notifier.sent) == 1
    assert (waiting.acks, broken.acks) == (1, 1)


async def test_offsets_skipped_between_two_alerts_read_are_known_to_hold_no_record(make_runtime, make_alert) -> None:
    """Offsets the agent was never given between two alerts of a partition (the commit marker of each
    transaction) are written down for the lag gauge; offsets of another partition, or read again, are not."""
    runtime, *_ = make_runtime()
    first, second, third = (FakeEvent(make_alert().model_dump_json().encode(), partition=4) for _ in range(3))
    first.message.offset, second.message.offset, third.message.offset = 100, 102, 105
    again = FakeEvent(make_alert().model_dump_json().encode(), partition=4)
    again.message.offset = 101
    other = FakeEvent(make_alert().model_dump_json().encode(), partition=5)
    other.message.offset = 50
    await runtime.consume_alerts(FakeStream([first, second, third, other]))
    assert runtime.recordless.count(4, 100, 106) == 3  # 101, 103, 104
    assert runtime.recordless.count(5, 0, 51) == 0
    await runtime.consume_alerts(FakeStream([again]))
    assert runtime.recordless.count(4, 100, 106) == 3


async def test_a_delivery_record_that_cannot_be_written_stops_the_notifier(make_runtime, make_alert) -> None:
    """The broker refusing a delivery's record leaves the alert unsettled, which would hold its partition's
    commits for good: the notifier stops (the alert is re-read after the restart, the log refuses re-sends)."""
    runtime, app, notifier, _ = make_runtime()

    async def refuse() -> None:
        raise RuntimeError("broker unavailable")

    app.producer.flush = refuse
    event = FakeEvent(make_alert().model_dump_json().encode())
    with capture_logs() as logs:
        await runtime.handle_alert(event)
        runtime.dispatcher.tick()
        await runtime.dispatcher.scheduler.drain()
        await asyncio.sleep(0)  # the crash is scheduled from the failing task's callback
    assert len(notifier.sent) == 1
    assert event.acks == 0
    assert [type(e) for e in app.crashed] == [RuntimeError]
    assert "delivery bookkeeping failed; stopping the notifier" in [r["event"] for r in logs]


async def test_consume_alerts_switches_the_stream_to_manual_acks(make_runtime) -> None:
    """The alerts agent body iterates the stream with Faust's automatic acks off."""
    runtime, _, _, _ = make_runtime()
    stream = FakeStream([])
    await runtime.consume_alerts(stream)
    assert stream.noack_called


def test_delivery_dead_letter_headers_name_target_receiver_and_type() -> None:
    """A delivery's dead letter carries target, receiver, receiver_type, reason and error, in that order."""
    headers = NotifierRuntime.dead_letter_headers(
        "permanent", "channel_not_found", target="csm/slack-0", receiver_type="slack"
    )
    assert headers == [
        ("target", b"csm/slack-0"),
        ("receiver", b"csm"),
        ("receiver_type", b"slack"),
        ("reason", b"permanent"),
        ("error", b"channel_not_found"),
    ]


async def test_delivery_dead_letter_is_keyed_by_account_and_flushed(make_runtime, make_alert) -> None:
    """The dispatcher's dead-letter callback sends the alert JSON keyed by account_id, then flushes."""
    runtime, app, _, topics = make_runtime()
    alert = make_alert(account_id="globex")
    await runtime.dead_letter_delivery(alert, "csm/email-0", "email", "gave_up", "timed out")
    [letter] = topics["dead_letters"].sent
    assert letter["key"] == b"globex"
    assert Alert.model_validate_json(letter["value"]) == alert
    assert dict(letter["headers"])["reason"] == b"gave_up"
    assert app.flushes == 1


def test_revocation_pauses_deliveries_and_clears_readiness(make_runtime) -> None:
    """On revocation the notifier is not ready and the dispatcher sends nothing."""
    runtime, _, _, _ = make_runtime()
    runtime.on_partitions_revoked({TP(ALERTS, 0)})
    assert runtime.dispatcher.paused
    assert runtime.dispatcher.tick() is None
    assert _sample("preempt_ready", app="ut-notify") == 0


async def test_assignment_keeps_work_of_partitions_that_stayed_and_resumes_once_recovered(
    make_runtime, make_alert
) -> None:
    """After an assignment only pending alerts of still-owned alerts partitions are kept, and deliveries resume;
    Faust reads the kept partition again from its committed offset, and the copy read again carries the ack."""
    runtime, _, notifier, _ = make_runtime()
    stays, moves = (
        FakeEvent(make_alert().model_dump_json().encode(), 0),
        FakeEvent(make_alert().model_dump_json().encode(), 1),
    )
    await runtime.handle_alert(stays)
    await runtime.handle_alert(moves)
    runtime.on_partitions_revoked({TP(ALERTS, 0), TP(ALERTS, 1)})
    with capture_logs() as logs:
        dropped = runtime.on_partitions_assigned({TP(ALERTS, 0), TP(FEEDBACK, 1)})
    assert dropped == 1
    assert runtime.dispatcher.paused  # until the delivery log is recovered
    [line] = logs
    assert line["event"] == "pending deliveries handed over on rebalance"
    assert line["kept_partitions"] == [0]
    again = FakeEvent(stays.value, 0)  # the same record, read again after the rebalance
    await runtime.handle_alert(again)
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert notifier.sent == []  # the tables are not recovered yet: a delivery could be lost to the replay
    runtime.on_recovered()
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert len(notifier.sent) == 1
    assert (again.acks, stays.acks, moves.acks) == (1, 0, 0)


async def test_the_watchdog_measure_is_the_offset_after_each_alert_handled(make_runtime, make_alert) -> None:
    """Each alert handled (dispatched or dead-lettered) moves its partition's read offset, which the liveness
    watchdog compares with the partition's end; a revocation forgets them (every partition is read again)."""
    runtime, _, _, _ = make_runtime()
    good, bad = FakeEvent(make_alert().model_dump_json().encode(), 2), FakeEvent(b"{oops", 3)
    await runtime.handle_alert(good)
    await runtime.handle_alert(bad)
    assert runtime.read_offsets == {2: good.message.offset + 1, 3: bad.message.offset + 1}
    runtime.on_partitions_revoked({TP(ALERTS, 2)})
    assert runtime.read_offsets == {}
    assert runtime.recovered is False


def test_recovery_marks_ready_and_logs_the_alerts_partitions(make_runtime) -> None:
    """Once the tables are recovered the notifier is ready and logs the alerts partitions it owns."""
    runtime, _, _, _ = make_runtime(assignment={TP(ALERTS, 3), TP(ALERTS, 1), TP(FEEDBACK, 0)})
    with capture_logs() as logs:
        runtime.on_recovered()
    assert _sample("preempt_ready", app="ut-notify") == 1
    assert logs == [
        {
            "event": "notifier ready",
            "partitions": [1, 3],
            "app_id": "ut-notify",
            "module": "alerts.runtime",
            "log_level": "info",
        }
    ]


async def test_delivery_loop_crashes_the_app_on_a_bug_in_tick(make_runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure of the delivery loop itself is logged as critical, crashes the app and is raised."""
    runtime, app, _, _ = make_runtime()

    def broken() -> float | None:
        raise RuntimeError("bug")

    monkeypatch.setattr(runtime.dispatcher, "tick", broken)
    with capture_logs() as logs, pytest.raises(RuntimeError, match="bug"):
        await asyncio.wait_for(runtime.run_delivery_loop(), 10)
    assert [type(e) for e in app.crashed] == [RuntimeError]
    assert logs[0]["event"] == "delivery loop failed; stopping the notifier"
    assert logs[0]["log_level"] == "critical"


async def test_a_delivery_dead_letter_being_written_is_pending_for_the_watchdog(make_runtime, make_alert) -> None:
    """While the broker has not taken a delivery's dead letter it counts as pending (alerts/liveness.py reports it
    past the stall time); once written it is not, and a send that raises is not left pending either."""
    runtime, _, _, topics = make_runtime()
    taken = asyncio.Event()
    sent = topics["dead_letters"].publish_message

    async def slow(message: asyncio.Future[None]) -> asyncio.Future[None]:
        await taken.wait()
        return await sent(message)

    topics["dead_letters"].publish_message = slow  # type: ignore[method-assign]
    task = asyncio.ensure_future(runtime.dead_letter_delivery(make_alert(), "csm/slack-0", "slack", "permanent", "x"))
    await asyncio.sleep(0)
    assert len(runtime.dead_letters_pending) == 1
    taken.set()
    await task
    assert len(runtime.dead_letters_pending) == 0

    async def refuse(message: asyncio.Future[None]) -> None:
        raise RuntimeError("broker unavailable")

    topics["dead_letters"].publish_message = refuse  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await runtime.dead_letter_delivery(make_alert(), "csm/slack-0", "slack", "permanent", "x")
    assert len(runtime.dead_letters_pending) == 0


async def test_a_dead_letter_that_cannot_be_written_stops_the_notifier(make_runtime) -> None:
    """When the dead-letter topic refuses a record, the alerts agent logs critical, crashes the app and raises."""
    runtime, app, _, topics = make_runtime()

    async def refuse(message: asyncio.Future[None]) -> None:
        raise RuntimeError("broker unavailable")

    topics["dead_letters"].publish_message = refuse  # type: ignore[method-assign]
    event = FakeEvent(b"not an alert")
    with capture_logs() as logs, pytest.raises(RuntimeError, match="broker unavailable"):
        await runtime.consume_alerts(FakeStream([event]))
    assert [type(e) for e in app.crashed] == [RuntimeError]
    assert event.acks == 0  # re-read after the restart
    assert logs[-1]["event"] == "alert handling failed; stopping the notifier"
    assert logs[-1]["log_level"] == "critical"


async def test_delivery_loop_delivers_and_stops_when_the_app_stops(make_runtime, make_alert) -> None:
    """The delivery loop delivers a dispatched alert and returns once the app is stopping."""
    runtime, app, notifier, _ = make_runtime()
    event = FakeEvent(make_alert().model_dump_json().encode())
    await runtime.handle_alert(event)
    loop = asyncio.ensure_future(runtime.run_delivery_loop())
    await asyncio.wait_for(event.acked.wait(), 10)
    app.should_stop = True
    await asyncio.wait_for(loop, 10)
    assert len(notifier.sent) == 1
    assert event.acks == 1


def test_snooze_feedback_is_recorded_and_invalid_feedback_logged(make_runtime) -> None:
    """A snooze record suppresses the rule for the account; an invalid record (a snooze end that is not a
    time included) is skipped, logged with its offset and counted."""
    runtime, _, _, _ = make_runtime()
    until = time.time() + 3600
    feedback = Feedback(
        action="snooze",
        alert_id="a1",
        rule_id="error-spike",
        account_id="acme",
        at="2026-11-23T06:00:00Z",
        snooze_until=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until)),
    )
    not_a_time = feedback.model_dump() | {"account_id": "other", "snooze_until": "tomorrow"}
    before = REGISTRY.get_sample_value("preempt_feedback_invalid_total") or 0.0
    with capture_logs() as logs:
        runtime.apply_feedback(feedback.model_dump_json().encode(), 1)
        runtime.apply_feedback(b"not json", 2)
        runtime.apply_feedback(json.dumps(not_a_time).encode(), 3)
    assert runtime.snoozes.snoozed_until("acme", "error-spike", time.time()) == pytest.approx(until, abs=1)
    assert runtime.snoozes.snoozed_until("other", "error-spike", time.time()) is None
    assert [(e["event"], e.get("offset")) for e in logs] == [
        ("snooze recorded", None),
        ("invalid feedback record ignored", 2),
        ("invalid feedback record ignored", 3),
    ]
    # what is wrong, in one line each (was pydantic's message over several lines, with its URL)
    errors = [e["error"] for e in logs if e["event"] == "invalid feedback record ignored"]
    assert all("\n" not in error and "pydantic" not in error for error in errors), errors
    assert errors[1].startswith("snooze_until: "), errors
    assert REGISTRY.get_sample_value("preempt_feedback_invalid_total") == before + 2


def test_feedback_that_would_outgrow_the_snooze_table_record_is_skipped_and_counted(make_runtime) -> None:
    """A rule id longer than an alert's (256 characters) is invalid feedback, and so is a snooze of one rule
    more than MAX_SNOOZED_RULES for one account: skipped, logged, counted; the account's entry keeps what it
    had. Before, twelve snoozes with 100 KB rule ids made the entry 1.2 MB: its changelog write failed with
    MessageSizeTooLargeError and the notifier stopped."""
    from alerts.feedback import MAX_SNOOZED_RULES

    runtime, _, _, _ = make_runtime()
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))

    def snooze(rule_id: str) -> bytes:
        body = {"action": "snooze", "alert_id": "a1", "rule_id": rule_id, "account_id": "acme", "at": until}
        return json.dumps(body | {"snooze_until": until}).encode()

    before = REGISTRY.get_sample_value("preempt_feedback_invalid_total") or 0.0
    runtime.apply_feedback(snooze("r-" + "y" * 100_000), 1)
    for i in range(MAX_SNOOZED_RULES):
        runtime.apply_feedback(snooze(f"rule-{i}"), 2 + i)
    with capture_logs() as logs:
        runtime.apply_feedback(snooze("one-rule-too-many"), 5000)
        runtime.apply_feedback(snooze("rule-0"), 5001)  # a rule already snoozed: its snooze is still extended
    assert [(e["event"], e.get("offset")) for e in logs] == [
        ("invalid feedback record ignored", 5000),
        ("snooze recorded", None),
    ]
    assert REGISTRY.get_sample_value("preempt_feedback_invalid_total") == before + 2
    assert runtime.snoozes.snoozed_until("acme", "one-rule-too-many", time.time()) is None
    assert len(runtime.snoozes._table[b"acme"]) == MAX_SNOOZED_RULES


async def test_published_feedback_is_keyed_by_account_and_flushed(make_runtime) -> None:
    """A Slack button's feedback goes to the feedback topic keyed by account_id, then the producer is flushed."""
    runtime, app, _, topics = make_runtime()
    feedback = Feedback(action="acknowledge", alert_id="a1", rule_id="r", account_id="acme", at="2026-11-23T06:00:00Z")
    await runtime.publish_feedback(feedback)
    assert topics["feedback"].sent == [{"key": b"acme", "value": feedback.model_dump_json().encode(), "headers": None}]
    assert app.flushes == 1


async def test_message_update_needs_a_recent_alert_and_a_message_ref(make_runtime, make_alert) -> None:
    """A button on a recently delivered alert re-renders its message; an unknown alert is only logged."""
    runtime, _, notifier, _ = make_runtime()
    alert = make_alert()
    runtime.recent.add(alert)
    feedback = Feedback(
        action="acknowledge", alert_id=alert.alert_id, rule_id="r", account_id="acme", at="x", user="U024BE7LH"
    )
    with capture_logs() as logs:
        unknown = SlackAction("acknowledge", "unknown", "r", "acme", "U1", "C1:1.0")
        assert await runtime.update_message(unknown, feedback) is False  # counted as skipped by the handler
        no_ref = SlackAction("acknowledge", alert.alert_id, "r", "acme", "U1", None)
        assert await runtime.update_message(no_ref, feedback) is False
    assert notifier.updates == []
    assert [e["event"] for e in logs] == ["slack message not updated (message or alert unknown here)"] * 2
    assert [(e["alert_id"], e["rule_id"], e["account_id"]) for e in logs] == [
        ("unknown", "r", "acme"),
        (alert.alert_id, "r", "acme"),
    ]
    assert await runtime.update_message(
        SlackAction("acknowledge", alert.alert_id, "r", "acme", "U1", "C1:1.0"), feedback
    )
    assert notifier.updates == [("C1:1.0", (alert,), {alert.alert_id: "Acknowledged by <@U024BE7LH>"})]
    # Without channel:ts but with the press's response_url (the way to edit a webhook's message): edited too.
    url = "https://hooks.slack.test/actions/T1/1/x"
    await runtime.update_message(
        SlackAction("acknowledge", alert.alert_id, "r", "acme", "U1", None, None, url), feedback
    )
    assert notifier.updates[1] == (f"response_url:{url}", (alert,), {alert.alert_id: "Acknowledged by <@U024BE7LH>"})


async def test_a_message_update_by_response_url_skips_chat_update_but_keeps_the_digest(
    make_runtime, make_alert
) -> None:
    """With ``by_response_url`` (the handler's chat.update retries are spent) the message a press's channel:ts
    names is re-rendered whole, digest and notes, and replaced through the press's response_url."""
    runtime, _, notifier, _ = make_runtime()
    alerts = (make_alert(), make_alert())
    runtime.dispatcher.on_delivered_message("C1:7.0", alerts)
    ack = Feedback(
        action="acknowledge", alert_id=alerts[0].alert_id, rule_id="r", account_id="acme", at="x", user="U024BE7LH"
    )
    url = "https://hooks.slack.test/actions/T1/1/x"
    action = SlackAction("acknowledge", alerts[0].alert_id, "r", "acme", "U024BE7LH", "C1:7.0", None, url)
    await runtime.update_message(action, ack, by_response_url=True)
    assert notifier.updates == [
        (f"response_url:{url}", alerts, {alerts[0].alert_id: "Acknowledged by <@U024BE7LH>"}),
    ]


async def test_button_on_a_digest_keeps_its_other_alerts(make_runtime, make_alert) -> None:
    """A button pressed on one alert of a digest re-renders the whole digest: that alert gets its note,
    the others stay with their buttons; a second press adds its note to the first; a snooze's end is
    shown in the account owner's timezone."""
    runtime, _, notifier, _ = make_runtime()
    alerts = tuple(make_alert(account={"name": "Acme", "timezone": "America/New_York"}) for _ in range(3))
    runtime.dispatcher.on_delivered_message("C1:7.0", alerts)  # as the dispatcher does after the post
    ack = Feedback(
        action="acknowledge", alert_id=alerts[0].alert_id, rule_id="r", account_id="acme", at="x", user="U024BE7LH"
    )
    snooze = Feedback(
        action="snooze",
        alert_id=alerts[2].alert_id,
        rule_id="r",
        account_id="acme",
        at="2026-11-23T06:00:00Z",
        snooze_until="2026-11-30T06:00:00Z",
        user="U0JANE01",
    )
    await runtime.update_message(
        SlackAction("acknowledge", alerts[0].alert_id, "r", "acme", "U024BE7LH", "C1:7.0"), ack
    )
    await runtime.update_message(SlackAction("snooze", alerts[2].alert_id, "r", "acme", "U0JANE01", "C1:7.0"), snooze)

    assert [(ref, got) for ref, got, _ in notifier.updates] == [("C1:7.0", alerts), ("C1:7.0", alerts)]
    assert notifier.updates[1][2] == {
        alerts[0].alert_id: "Acknowledged by <@U024BE7LH>",
        alerts[2].alert_id: "Snoozed until Mon 30 Nov 2026, 01:00 EST by <@U0JANE01>",
    }


class FakeRequest:
    """An aiohttp request with a declared length, a chunked body and headers."""

    def __init__(self, body: bytes, content_length: int | None) -> None:
        self.content_length = content_length
        self.headers: dict[str, str] = {}
        self.content = SimpleNamespace(iter_chunked=lambda size: self._chunks(body, size))

    @staticmethod
    async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]


async def test_slack_action_over_the_limit_is_refused_and_its_connection_closed(make_runtime) -> None:
    """A body over the limit is answered 413 and the connection is closed rather than read on."""
    runtime, _, _, topics = make_runtime(slack_signing_secret=SecretStr("s3cret"))
    reply = await runtime.handle_slack_action(FakeRequest(b"x" * (MAX_ACTION_BODY_BYTES + 1), None))  # type: ignore[arg-type]
    assert reply == SlackReply(413, "request body too large", close=True)
    assert topics["feedback"].sent == []


async def test_slack_action_without_a_signing_secret_is_refused(make_runtime) -> None:
    """Without a signing secret the Slack endpoint answers 503 and keeps the connection."""
    runtime, _, _, _ = make_runtime()
    reply = await runtime.handle_slack_action(FakeRequest(b"payload=%7B%7D", 14))  # type: ignore[arg-type]
    assert reply == SlackReply(503, "interactivity is not configured")


async def test_signed_slack_action_is_published_and_answered(make_runtime) -> None:
    """A signed button press within the limit is published on the feedback topic, flushed and answered 200."""
    runtime, app, _, topics = make_runtime(slack_signing_secret=SecretStr(SECRET))
    body = make_body("preempt_ack")
    request = FakeRequest(body, len(body))
    request.headers = signed(body, at=time.time())
    reply = await runtime.handle_slack_action(request)  # type: ignore[arg-type]
    await runtime.slack_actions.drain()
    assert reply.status == 200
    assert not reply.close
    [record] = topics["feedback"].sent
    assert record["key"] == b"acme"
    assert Feedback.model_validate_json(record["value"]).action == "acknowledge"
    assert app.flushes == 1


async def test_feedback_agent_applies_each_record(make_runtime) -> None:
    """The feedback agent body records the snooze of every record of its stream."""
    runtime, _, _, _ = make_runtime()
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    records = [
        Feedback(action="snooze", alert_id="a", rule_id=rule, account_id="acme", at="x", snooze_until=until)
        for rule in ("r1", "r2")
    ]
    events = [
        SimpleNamespace(value=f.model_dump_json().encode(), message=SimpleNamespace(offset=i))
        for i, f in enumerate(records)
    ]
    await runtime.consume_feedback(FakeStream(events))
    now = time.time()
    assert runtime.snoozes.snoozed_until("acme", "r1", now) is not None
    assert runtime.snoozes.snoozed_until("acme", "r2", now) is not None


async def test_close_channels_closes_every_channel_despite_errors(make_runtime) -> None:
    """Shutdown closes every channel, even after one of them fails to close."""
    failing = RecordingNotifier(fail_close=True)
    runtime, _, notifier, _ = make_runtime(extra=(failing,))
    await runtime.close_channels()
    assert failing.closed
    assert notifier.closed


def test_recent_alerts_forget_the_oldest_past_the_bound(make_alert) -> None:
    """The recent-alerts memory keeps the newest ``size`` alerts."""
    recent = RecentAlerts(size=2)
    first, second, third = make_alert(), make_alert(), make_alert()
    for alert in (first, second, third):
        recent.add(alert)
    assert recent.get(first.alert_id) is None
    assert recent.get(third.alert_id) == third


def test_secret_values_collects_every_configured_secret(tmp_path: Path) -> None:
    """Configured tokens, passwords and receivers' webhook URLs are all scrubbed; unset secrets are not."""
    routing = RoutingConfig.model_validate(
        {
            "receivers": [
                {"name": "csm", "slack_configs": [{"webhook_url": "https://hooks.example/T1", "channel": "#x"}]}
            ],
            "route": {"receiver": "csm"},
        }
    )
    settings = Settings(
        topic_prefix="ut",
        data_dir=tmp_path,
        slack_bot_token=SecretStr("xoxb-1"),
        smtp_username="preempt",
        smtp_password=SecretStr("pw"),
        smtp_starttls=True,
    )
    assert sorted(secret_values(settings, routing)) == sorted(["xoxb-1", "pw", "https://hooks.example/T1"])


def test_inhibit_horizon_is_a_setting(make_runtime, make_alert) -> None:
    """PREEMPT_INHIBIT_HORIZON_SECONDS decides how long a received alert can inhibit others (the docs'
    "active"): a source older than the horizon no longer mutes its targets."""
    runtime, *_ = make_runtime(inhibit_horizon_seconds=60.0)
    routing = RoutingConfig.model_validate(
        {
            "receivers": [{"name": "csm"}],
            "route": {"receiver": "csm"},
            "inhibit_rules": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="low"']}],
        }
    )
    runtime.dispatcher.inhibitor = Inhibitor(routing.inhibit_rules)
    source = make_alert(severity="critical")
    runtime.dispatcher._recent.append((1000.0, source))  # received at 1000 on the monotonic clock
    target = make_alert(severity="low")
    runtime.dispatcher._monotonic = lambda: 1059.0
    assert runtime.dispatcher._suppressed(target, time.time()) == ("inhibited", "inhibit rule")
    runtime.dispatcher._monotonic = lambda: 1061.0
    assert runtime.dispatcher._suppressed(target, time.time()) is None


async def test_a_press_on_a_message_not_known_here_edits_the_blocks_slack_sent(
    make_runtime, make_alert, monkeypatch
) -> None:
    """An alert delivered here recently but whose message is not known here (another replica posted the
    digest, or it was forgotten) is updated from the blocks Slack sent with the press, not re-rendered as a
    message of that one alert (which would drop the digest's other alerts and its receiver's templates)."""
    runtime, _, notifier, _ = make_runtime()
    alert = make_alert()
    runtime.recent.add(alert)
    edited: list[tuple[str, str]] = []

    async def update_posted(action: SlackAction, feedback: Feedback, timezone: str | None = None) -> None:
        edited.append((str(action.ref), action.alert_id))

    monkeypatch.setattr(runtime, "_update_posted", update_posted)
    feedback = Feedback(action="acknowledge", alert_id=alert.alert_id, rule_id="r", account_id="acme", at="x")
    posted = {"blocks": [{"type": "section"}], "text": "3 alerts"}
    await runtime.update_message(
        SlackAction("acknowledge", alert.alert_id, "r", "acme", "U1", "C1:9.0", posted), feedback
    )
    assert edited == [("C1:9.0", alert.alert_id)]
    assert notifier.updates == []


async def test_a_button_updates_the_message_through_the_destination_that_posted_it(make_runtime, make_alert) -> None:
    """With two Slack destinations (e.g. a receiver with its own title template), a press re-renders the
    message through the one that posted it, not whichever Slack destination comes first."""
    support = RecordingNotifier()
    runtime, _, first, _ = make_runtime(extra=(support,))
    alert = make_alert()
    runtime.dispatcher.on_delivered_message("C9:1.0", (alert,), support)  # as the dispatcher does after support's post
    ack = Feedback(action="acknowledge", alert_id=alert.alert_id, rule_id="r", account_id="acme", at="x", user="U0X1")
    await runtime.update_message(SlackAction("acknowledge", alert.alert_id, "r", "acme", "U0X1", "C9:1.0"), ack)
    assert first.updates == []
    assert [(ref, got) for ref, got, _ in support.updates] == [("C9:1.0", (alert,))]


async def test_a_press_edited_from_slacks_blocks_shows_the_snooze_in_the_accounts_zone(
    make_runtime, make_alert, monkeypatch
) -> None:
    """A webhook's message (never known here by channel:ts) is edited from the blocks Slack sent: the snooze's
    end is still in the account's zone (its owner's here) when the alert is known, not UTC."""
    runtime, _, _, _ = make_runtime()
    alert = make_alert(account={"name": "Acme", "timezone": None, "owner": {"timezone": "America/Chicago"}})
    runtime.recent.add(alert)
    zones: list[str | None] = []
    real_update_note = runtime_module.update_note

    def update_note(feedback: Feedback, timezone: str | None = None) -> object:
        zones.append(timezone)
        return real_update_note(feedback, timezone)

    monkeypatch.setattr(runtime_module, "update_note", update_note)
    feedback = Feedback(
        action="snooze",
        alert_id=alert.alert_id,
        rule_id="r",
        account_id="acme",
        at="x",
        snooze_until="2026-12-08T00:00:00Z",
    )
    posted = {"blocks": [{"type": "section"}], "text": "1 alert"}
    action = SlackAction("snooze", alert.alert_id, "r", "acme", "U1", "C1:9.0", posted, "https://hooks.slack.com/a/1")
    await runtime.update_message(action, feedback)
    assert zones == ["America/Chicago"]


async def test_a_graceful_stop_waits_for_the_delivery_in_flight_and_starts_no_other(make_runtime, make_alert) -> None:
    """finish_deliveries (before Faust stops the consumer) lets an email being sent finish and be acked, and
    starts no attempt of an alert read meanwhile: that one stays unacked, for the restart to read again."""
    email = HangingNotifier()
    runtime, _, _, _ = make_runtime(extra=(email,))
    first = FakeEvent(make_alert().model_dump_json().encode())
    await runtime.consume_alerts(FakeStream([first]))
    runtime.dispatcher.tick()
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(runtime.finish_deliveries())
    later = FakeEvent(make_alert().model_dump_json().encode())
    await runtime.consume_alerts(FakeStream([later]))
    runtime.dispatcher.tick()
    email.release.set()
    await stopping
    assert (first.acks, later.acks, email.calls) == (1, 0, 1)


async def test_a_graceful_stop_waits_for_a_channel_that_does_not_answer_no_longer_than_its_bound(
    make_runtime, make_alert, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An email server that never answers holds the stop for STOP_DELIVERY_TIMEOUT_SECONDS only, and says so."""
    monkeypatch.setattr(runtime_module, "STOP_DELIVERY_TIMEOUT_SECONDS", 0.2)
    runtime, _, _, _ = make_runtime(extra=(HangingNotifier(),))
    event = FakeEvent(make_alert().model_dump_json().encode())
    await runtime.consume_alerts(FakeStream([event]))
    runtime.dispatcher.tick()
    with capture_logs() as logs:
        await asyncio.wait_for(runtime.finish_deliveries(), 5)
    assert event.acks == 0
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "deliveries still in flight at stop; a restart may send them again"
    ]


async def test_an_alert_not_keyed_by_its_account_is_produced_again_keyed_by_it_and_acked(
    make_runtime, make_alert
) -> None:
    """A third-party producer's alert keyed by something else is not delivered from there (its delivery records
    would live on another partition): produced again keyed by account_id, with its headers and where it came
    from, flushed, then acked, logged and counted; the copy keyed by account_id is delivered."""
    from structlog.testing import capture_logs

    runtime, app, notifier, topics = make_runtime()
    alert = make_alert()
    value = alert.model_dump_json().encode()
    event = FakeEvent(value, partition=3, key=b"crm-export-17", headers=[("source", b"crm")])
    before = _sample("preempt_notifier_alerts_rekeyed_total")
    with capture_logs() as logs:
        await runtime.consume_alerts(FakeStream([event]))
    [copy] = topics["alerts"].sent
    assert (copy["key"], copy["value"], copy.get("partition")) == (alert.account_id.encode(), value, None)
    assert copy["headers"] == [("source", b"crm"), ("preempt-rekeyed-from", f"3:{event.message.offset}".encode())]
    assert event.acks == 1
    assert app.flushes >= 1
    assert _sample("preempt_notifier_alerts_rekeyed_total") == before + 1
    [line] = [e for e in logs if e["log_level"] == "warning"]
    assert (line["alert_id"], line["key"], line["partition"]) == (alert.alert_id, "b'crm-export-17'", 3)
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert notifier.sent == []

    rekeyed = FakeEvent(value, partition=1, key=alert.account_id.encode(), headers=copy["headers"])
    await runtime.consume_alerts(FakeStream([rekeyed]))
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert [a.alert_id for n in notifier.sent for a in n.alerts] == [alert.alert_id]
    assert len(topics["alerts"].sent) == 1


@pytest.mark.parametrize("refused_by", ["broker", "producer"])
async def test_a_mis_keyed_alert_whose_copy_is_refused_is_dead_lettered_not_lost(
    make_runtime, make_alert, refused_by: str
) -> None:
    """The copy keyed by account_id refused (too large with its header, no WRITE ACL): before, the flush returned
    all the same and the original was acked — the alert lost with a 'produced again' line. Now the original is
    dead-lettered (rekey_failed, with the broker's error) before the ack, logged and counted, never delivered.

    ``producer``: refused before any broker — aiokafka raises MessageSizeTooLargeError out of the send when the
    record with its ``preempt-rekeyed-from`` header is over max_request_size (1,000,000 bytes, below the broker's
    default max.message.bytes, so a record the broker took from another producer). That raise left rekey() before
    its dead letter: the agent stopped the notifier, and every restart read the same record and stopped again."""
    from kafka.errors import MessageSizeTooLargeError
    from structlog.testing import capture_logs

    runtime, app, notifier, topics = make_runtime()
    alert = make_alert()
    value = alert.model_dump_json().encode()
    event = FakeEvent(value, partition=3, key=b"crm-export-17")
    if refused_by == "broker":
        topics["alerts"].refuse = MessageSizeTooLargeError("the record is too large")
    else:

        async def too_large(message: asyncio.Future[None]) -> asyncio.Future[None]:
            raise MessageSizeTooLargeError("The message is 1000120 bytes when serialized")

        topics["alerts"].publish_message = too_large  # type: ignore[method-assign]
    before = _sample("preempt_notifications_dead_lettered_total", receiver_type="none", reason="rekey_failed")
    with capture_logs() as logs:
        await runtime.consume_alerts(FakeStream([event]))
    assert app.crashed == []
    [letter] = topics["dead_letters"].sent
    headers = dict(letter["headers"])
    assert (letter["key"], letter["value"], headers["reason"]) == (b"crm-export-17", value, b"rekey_failed")
    assert b"MessageSizeTooLargeError" in headers["error"]
    assert event.acks == 1
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "mis-keyed alert not produced again; dead-lettered"
    ]
    assert (
        _sample("preempt_notifications_dead_lettered_total", receiver_type="none", reason="rekey_failed") == before + 1
    )
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert notifier.sent == []


async def test_an_alert_on_another_partition_than_its_key_is_produced_again_on_that_partition(
    make_runtime, make_alert
) -> None:
    """Keyed by account_id but on another partition (a producer with a partitioner of its own): produced again
    on the partition of its key, the delivery log's; the copy there is not produced again."""
    runtime, _, notifier, topics = make_runtime()
    runtime.partition_for = lambda key: 2
    alert = make_alert()
    value = alert.model_dump_json().encode()
    await runtime.consume_alerts(FakeStream([FakeEvent(value, partition=0, key=alert.account_id.encode())]))
    assert [(c["key"], c.get("partition")) for c in topics["alerts"].sent] == [(alert.account_id.encode(), 2)]
    await runtime.consume_alerts(FakeStream([FakeEvent(value, partition=2, key=alert.account_id.encode())]))
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert len(topics["alerts"].sent) == 1
    assert [a.alert_id for n in notifier.sent for a in n.alerts] == [alert.alert_id]


def _dropped_by_group(app: FakeApp) -> None:
    """The consumer group dropped the process (paused past its session): aiokafka's coordinator reset its generation
    and member id, as ``streams.runtime.faust_compat.group_membership_lost`` reads them."""
    coordinator = SimpleNamespace(generation=-1, member_id="")
    app.consumer._thread = SimpleNamespace(_consumer=SimpleNamespace(_coordinator=coordinator))  # type: ignore[attr-defined]


def _rejoined(app: FakeApp) -> None:
    """The process joined the group again (as before the loss: the fake consumer has no coordinator to read)."""
    del app.consumer._thread  # type: ignore[attr-defined]


async def test_a_delivery_in_flight_when_the_group_drops_the_notifier_is_neither_recorded_nor_acked(
    make_runtime, make_alert
) -> None:
    """An email in flight as the group drops the notifier: every partition's work is dropped, said once (WARN); the
    server's late answer is not recorded in the delivery log — its changelog partition is another notifier's now,
    and this process's older view of the account would overwrite the new owner's — nor acked, but logged (WARN), and
    nothing is sent until the next assignment is recovered."""
    email = HangingNotifier()
    runtime, app, _, _ = make_runtime(extra=(email,))
    runtime.on_partitions_assigned({TP(ALERTS, 0)})
    runtime.on_recovered()
    alert = make_alert()
    event = FakeEvent(alert.model_dump_json().encode(), 0)
    await runtime.handle_alert(event)
    runtime.dispatcher.tick()
    await asyncio.sleep(0.01)  # Slack delivered and recorded; the email waits for its server
    assert email.calls == 1
    with capture_logs() as logs:
        _dropped_by_group(app)
        assert not await runtime.membership.owns_partitions()
        email.release.set()
        await runtime.dispatcher.scheduler.drain()
    log = runtime.dispatcher.delivery_log
    assert log.delivered(alert.account_id, alert.alert_id, "csm/slack") is not None
    assert log.delivered(alert.account_id, alert.alert_id, "csm/email") is None
    assert event.acks == 0
    assert runtime.dispatcher.pending_deliveries() == 0
    assert runtime.dispatcher.tick() is None  # paused until the next assignment is recovered
    events = [(line["event"], line["log_level"]) for line in logs]
    assert events.count((runtime_module.MEMBERSHIP_LOST, "warning")) == 1
    late = [line for line in logs if line["event"].startswith("alert delivered after the consumer group dropped")]
    assert [(line["alert_id"], line["target"], line["log_level"]) for line in late] == [
        (alert.alert_id, "csm/email", "warning")
    ]
    assert _sample("preempt_ready", app="ut-notify") == 0


async def test_an_alert_read_again_on_a_partition_the_dropped_notifier_got_back_is_sent_at_once(
    make_runtime, make_alert
) -> None:
    """After the group dropped the notifier and it rejoined with the partition back, the alert read again is sent at
    once: its group's earlier flush, whose delivery was dropped, does not hold it back for group_interval (before:
    5 minutes, its partition's commit held all the while; found by tests/integration/test_notifier_paused.py)."""
    email = HangingNotifier()
    runtime, app, _, _ = make_runtime(extra=(email,))
    runtime.on_partitions_assigned({TP(ALERTS, 0)})
    runtime.on_recovered()
    event = FakeEvent(make_alert().model_dump_json().encode(), 0)
    await runtime.handle_alert(event)
    runtime.dispatcher.tick()
    await asyncio.sleep(0.01)
    _dropped_by_group(app)
    assert not await runtime.membership.owns_partitions()
    email.release.set()
    await runtime.dispatcher.scheduler.drain()
    _rejoined(app)
    runtime.on_partitions_revoked({TP(ALERTS, 0)})
    runtime.on_partitions_assigned({TP(ALERTS, 0)})
    runtime.on_recovered()
    again = FakeEvent(event.value, 0)  # read again from the committed offset
    await runtime.handle_alert(again)
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert (email.calls, again.acks, event.acks) == (2, 1, 0)


async def test_an_alert_read_while_the_group_has_dropped_the_notifier_is_left_to_be_read_again(
    make_runtime, make_alert
) -> None:
    """A record the agent hands over after the group dropped the notifier is not dispatched nor acked: its partition's
    new owner reads it from the committed offset."""
    runtime, app, notifier, _ = make_runtime()
    runtime.on_partitions_assigned({TP(ALERTS, 0)})
    runtime.on_recovered()
    _dropped_by_group(app)
    event = FakeEvent(make_alert().model_dump_json().encode(), 0)
    with capture_logs() as logs:
        await runtime.consume_alerts(FakeStream([event]))
    assert (event.acks, runtime.dispatcher.pending_deliveries(), notifier.sent) == (0, 0, [])
    assert [line.get("cause") for line in logs if line["event"] == LEFT_TO_READ_AGAIN] == [
        "the consumer group dropped it"
    ]
