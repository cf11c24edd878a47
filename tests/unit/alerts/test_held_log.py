"""Deliveries a channel holds back (Slack's pacing, a 429): DEBUG per message, a throttled INFO summary."""

from __future__ import annotations

import random
from collections.abc import Callable

from structlog.testing import capture_logs

from alerts.channels.base import Notification
from alerts.held_log import HELD_SUMMARY
from alerts.retry import BackoffPolicy, DeliveryJob, RetryScheduler
from schemas.alert import Alert
from schemas.errors import RetryableDeliveryError
from tests.unit.alerts.test_retry import Clock, ScriptedNotifier

# What a paced Slack channel answers for a message it keeps back (nothing sent).
HELD = RetryableDeliveryError("slack: channel paced", retry_after=1.0, throttled=True, held=True)


def _scheduler(policy: BackoffPolicy) -> tuple[Clock, RetryScheduler]:
    """A scheduler on a test clock whose deliveries are never expected to settle."""

    async def never(*args: object) -> None:
        raise AssertionError(f"unexpected outcome {args}")

    clock = Clock()
    return clock, RetryScheduler(policy, never, never, clock=clock, rng=random.Random(7))


async def test_a_burst_of_held_messages_logs_debug_each_and_one_info_per_interval(
    make_alert: Callable[..., Alert],
) -> None:
    """Thirty messages held within 10 s: one INFO summary (at the first), the rest DEBUG; held again after 10 s:
    one more INFO counting every hold since the last summary. Before, an INFO "delivery retry scheduled" each."""

    clock, scheduler = _scheduler(BackoffPolicy(give_up=600.0))
    notifier = ScriptedNotifier(*[HELD] * 31)  # the channel holds back every message: nothing is sent
    with capture_logs() as logs:
        for i in range(30):
            await scheduler.attempt(DeliveryJob("csm/slack", notifier, Notification("csm", (make_alert(),), f"g{i}")))
            clock.now += 0.2
        clock.now += 10.0
        await scheduler.attempt(DeliveryJob("csm/slack", notifier, Notification("csm", (make_alert(),), "late")))
    # Every line at INFO and above: the two summaries (the DEBUG lines pass only when the level is DEBUG).
    info = [e for e in logs if e["log_level"] != "debug"]
    assert [(e["event"], e["held"], e["by_receiver_type"]) for e in info] == [
        (HELD_SUMMARY, 1, {"slack": 1}),
        (HELD_SUMMARY, 30, {"slack": 30}),
    ]


async def test_holds_after_the_summary_are_logged_when_the_interval_ends_even_if_the_burst_is_over(
    make_alert: Callable[..., Alert],
) -> None:
    """A burst of 18 held messages within 6 s, then nothing: the first hold logs INFO held=1 at once, and the
    other 17 are counted in an INFO summary when the 10 s interval ends — the delivery loop wakes for it.
    Before, they waited in the count for the next hold (hours later, or never before a shutdown): a live
    burst of 18 deliveries logged one INFO 'held: 1'."""

    clock, scheduler = _scheduler(BackoffPolicy(give_up=600.0))
    notifier = ScriptedNotifier(*[HELD] * 18)
    start = clock.now
    with capture_logs() as logs:
        for i in range(18):
            await scheduler.attempt(DeliveryJob("csm/slack", notifier, Notification("csm", (make_alert(),), f"g{i}")))
            clock.now += 0.33
        scheduler.discard(lambda job: None)  # the burst is over: nothing left in the queue
        assert scheduler.next_due() is None
        assert scheduler.next_wakeup() == start + 10.0  # the delivery loop wakes up for the summary
        clock.now = start + 9.9
        scheduler.start_due()
        clock.now = start + 10.0
        scheduler.start_due()
        assert scheduler.next_wakeup() is None  # nothing more to tell
    info = [(e["event"], e["held"]) for e in logs if e["log_level"] != "debug"]
    assert info == [(HELD_SUMMARY, 1), (HELD_SUMMARY, 17)]


async def test_holds_counted_since_the_last_summary_are_told_as_a_graceful_stop_begins(
    make_alert: Callable[..., Alert],
) -> None:
    """Five messages held within 2 s, then SIGTERM (``stop_starting``): the four holds after the first summary
    are logged at once, inside the interval. Before, a stop within the interval never told them; nothing
    else is told at a stop with nothing held."""

    clock, scheduler = _scheduler(BackoffPolicy(give_up=600.0))
    notifier = ScriptedNotifier(*[HELD] * 5)
    with capture_logs() as logs:
        for i in range(5):
            await scheduler.attempt(DeliveryJob("csm/slack", notifier, Notification("csm", (make_alert(),), f"g{i}")))
            clock.now += 0.4
        scheduler.stop_starting()
        scheduler.stop_starting()  # a second call: nothing more to tell
    info = [(e["event"], e["held"]) for e in logs if e["log_level"] != "debug"]
    assert info == [(HELD_SUMMARY, 1), (HELD_SUMMARY, 4)]
    assert scheduler.held_log.due() is None


async def test_a_held_message_is_not_counted_as_an_attempt(make_alert: Callable[..., Alert]) -> None:
    """Held back four times by its channel's pacing, then refused once by Slack (a 503): its first real failure
    is retried after the first backoff, and the lines say attempt 1. Before, each hold counted as an attempt:
    attempt=5, backed off as the fifth retry."""

    policy = BackoffPolicy(give_up=600.0)
    clock, scheduler = _scheduler(policy)
    notifier = ScriptedNotifier(*[HELD] * 4, RetryableDeliveryError("slack: HTTP 503"))
    job = DeliveryJob("csm/slack", notifier, Notification("csm", (make_alert(),), "g"))
    with capture_logs() as logs:
        for _ in range(5):
            await scheduler.attempt(job)
            clock.now += 1.0
    assert job.attempts == 1
    [retry] = [e for e in logs if e["event"] == "delivery retry scheduled"]
    assert retry["attempt"] == 1
    assert retry["retry_in"] <= policy.initial
