"""The notifier's intake limit: no new alert is read while too many deliveries are pending (alerts/intake.py)."""

from __future__ import annotations

import asyncio

import pytest
from faust.types import TP
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from alerts.intake import LEFT_TO_READ_AGAIN, IntakeLimit
from schemas.alert import Alert
from tests.unit.alerts.test_runtime import ALERTS, FEEDBACK, FakeEvent, FakeStream, make_runtime  # noqa: F401


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class Pending:
    """A settable count of pending deliveries."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self) -> int:
        return self.n


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _event(alert: Alert) -> FakeEvent:
    """The alert's record, keyed by its account as the rules worker keys it."""
    return FakeEvent(alert.model_dump_json().encode(), key=alert.account_id.encode())


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1, not 0"):
        IntakeLimit(0, Pending(0))


async def test_under_the_limit_the_record_is_taken_at_once_and_nothing_is_reported() -> None:
    pauses = _sample("preempt_notifier_intake_pauses_total")
    intake = IntakeLimit(10, Pending(9))
    with capture_logs() as logs:
        assert await intake.wait_for_room(lambda: True)
    assert not intake.paused
    assert intake.reason() == ()
    assert logs == []
    assert _sample("preempt_notifier_intake_pauses_total") == pauses


async def test_at_the_limit_it_waits_until_a_tenth_is_settled_and_reports_the_pause() -> None:
    """Paused at the limit of 20, still paused at 19, going on at 18 (a tenth below); the pause is on the gauge,
    /readyz, the counters and two log lines."""
    pending, clock = Pending(20), Clock()
    pauses = _sample("preempt_notifier_intake_pauses_total")
    seconds = _sample("preempt_notifier_intake_paused_seconds_total")
    intake = IntakeLimit(20, pending, lambda: {"pacing_slot": 20}, clock=clock, poll_s=0.001)
    assert intake.resume_at == 18
    with capture_logs() as logs:
        waiter = asyncio.ensure_future(intake.wait_for_room(lambda: True))
        await asyncio.sleep(0.02)
        assert not waiter.done()
        assert intake.paused
        assert _sample("preempt_notifier_intake_paused") == 1
        assert _sample("preempt_notifier_intake_pauses_total") == pauses + 1
        clock.now += 42
        (reason,) = intake.reason()
        assert reason == (
            "not taking new alerts: 20 deliveries pending, the limit PREEMPT_NOTIFIER_MAX_PENDING_DELIVERIES=20, "
            "for 42 s (they wait in preempt.alerts)"
        )
        pending.n = 19  # one settled: not enough to go on
        await asyncio.sleep(0.02)
        assert not waiter.done()
        pending.n = 18
        assert await asyncio.wait_for(waiter, 1)
    assert not intake.paused
    assert intake.reason() == ()
    assert _sample("preempt_notifier_intake_paused") == 0
    assert _sample("preempt_notifier_intake_paused_seconds_total") == pytest.approx(seconds + 42)
    paused, resumed = logs
    assert paused["log_level"] == "warning"
    assert paused["event"].startswith("not taking new alerts")
    assert (paused["pending"], paused["limit"], paused["resume_at"]) == (20, 20, 18)
    assert paused["waiting_for"] == {"pacing_slot": 20}
    assert "PREEMPT_NOTIFIER_MAX_PENDING_DELIVERIES" in paused["remedy"]
    assert resumed["event"] == "taking new alerts again"
    assert (resumed["log_level"], resumed["paused_seconds"], resumed["pending"]) == ("info", 42.0, 18)


async def test_a_wait_ended_by_a_rebalance_or_a_stop_leaves_the_record_and_ends_the_pause() -> None:
    go_on = True
    intake = IntakeLimit(1, Pending(5), poll_s=0.001)
    waiter = asyncio.ensure_future(intake.wait_for_room(lambda: go_on))
    await asyncio.sleep(0.01)
    assert intake.paused
    go_on = False
    with capture_logs() as logs:
        assert await asyncio.wait_for(waiter, 1) is False
    assert logs == []  # not "taking new alerts again": the runtime says the record is left to be read again
    assert not intake.paused
    assert _sample("preempt_notifier_intake_paused") == 0


async def test_the_notifier_reads_no_alert_past_the_limit_until_deliveries_are_settled(
    make_runtime,  # noqa: F811 - the fixture
    make_alert,
) -> None:
    """Limit 2: two alerts are handled, the third waits in the stream until the delivery loop has delivered
    them; then it is handled too, and every alert is delivered and acked once."""
    alerts_tps = {TP(ALERTS, 0), TP(ALERTS, 1)}
    runtime, app, notifier, _ = make_runtime(alerts_tps | {TP(FEEDBACK, 0)}, notifier_max_pending_deliveries=2)
    events = [_event(make_alert(account_id=f"acct-{i}")) for i in range(3)]
    agent = asyncio.ensure_future(runtime.consume_alerts(FakeStream(events)))
    await asyncio.sleep(0.3)
    assert not agent.done()
    assert runtime.dispatcher.pending_deliveries() == 2  # the third is not read
    assert runtime.intake.paused
    assert app.paused == alerts_tps  # not fetched meanwhile; the feedback topic is
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    await asyncio.wait_for(agent, 2)
    assert not runtime.intake.paused
    assert app.paused == set()
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()
    assert sorted(a.account_id for n in notifier.sent for a in n.alerts) == ["acct-0", "acct-1", "acct-2"]
    assert [e.acks for e in events] == [1, 1, 1]


@pytest.mark.parametrize("counter", ["rebalancing_count", "consumer_generation_id"])  # revocation, assignment
async def test_a_rebalance_during_the_pause_leaves_the_record_unhandled_and_unacked(
    make_runtime,  # noqa: F811 - the fixture
    make_alert,
    counter: str,
) -> None:
    """The record taken before the rebalance is not handled after it: its partition is read again from the
    committed offset (by this notifier or its new owner), so handling it too would deliver a stale copy."""
    runtime, app, notifier, _ = make_runtime({TP(ALERTS, 0)}, notifier_max_pending_deliveries=1)
    events = [_event(make_alert(account_id=f"acct-{i}")) for i in range(2)]
    with capture_logs() as logs:
        agent = asyncio.ensure_future(runtime.consume_alerts(FakeStream(events)))
        await asyncio.sleep(0.3)
        assert runtime.intake.paused
        assert app.paused == {TP(ALERTS, 0)}
        setattr(app, counter, getattr(app, counter) + 1)  # a rebalance begins (or its assignment comes)
        await asyncio.wait_for(agent, 2)
    assert app.paused == {TP(ALERTS, 0)}  # Faust resumes the new assignment's partitions once it is recovered
    assert runtime.dispatcher.pending_deliveries() == 1  # the first alert's; the second was never handled
    assert events[1].acks == 0
    assert any(entry["event"].startswith("alert record left to be read again") for entry in logs)
    assert notifier.sent == []


async def test_a_stop_that_cancels_the_wait_says_the_record_is_left_to_be_read_again(
    make_runtime,  # noqa: F811 - the fixture
    make_alert,
) -> None:
    """SIGTERM cancels the agent while it waits for room: the record taken is not handled, not acked, and the
    log says so (before, the cancellation ended the wait without a line)."""
    runtime, _app, notifier, _ = make_runtime({TP(ALERTS, 0)}, notifier_max_pending_deliveries=1)
    events = [_event(make_alert(account_id=f"acct-{i}")) for i in range(2)]
    with capture_logs() as logs:
        agent = asyncio.ensure_future(runtime.consume_alerts(FakeStream(events)))
        await asyncio.sleep(0.3)
        assert runtime.intake.paused
        agent.cancel()
        with pytest.raises(asyncio.CancelledError):
            await agent
    assert not runtime.intake.paused
    assert events[1].acks == 0
    left = [entry for entry in logs if entry["event"] == LEFT_TO_READ_AGAIN]
    assert [entry["cause"] for entry in left] == ["the notifier stopped (its agent was cancelled)"]
    assert notifier.sent == []
