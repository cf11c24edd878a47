"""The delivery loop and a paced Slack channel: a wait for the channel's slot is neither a failure nor a second hold."""

from __future__ import annotations

import random
from collections.abc import Callable

from structlog.testing import capture_logs

from alerts.channels.base import DeliveryReceipt, Notification
from alerts.channels.slack import PACED_INTERVAL_SECONDS, ChannelRateLimiter
from alerts.held_log import HELD_SUMMARY
from alerts.retry import BackoffPolicy, DeliveryJob, RetryScheduler
from schemas.alert import Alert
from schemas.errors import RetryableDeliveryError
from tests.unit.alerts.test_retry import Clock, ScriptedNotifier


class PacedChannel(ScriptedNotifier):
    """One Slack channel behind the notifier's real pacing (``ChannelRateLimiter``), then the scripted errors."""

    def __init__(self, clock: Clock, *errors: Exception) -> None:
        super().__init__(*errors)
        self.limiter = ChannelRateLimiter(PACED_INTERVAL_SECONDS, clock=clock)
        self.clock = clock
        self.posted: list[float] = []
        self.attempts = 0

    async def send(self, notification: Notification) -> DeliveryReceipt:
        self.attempts += 1
        self.limiter.acquire("bot:C1", (notification.group_key, tuple(a.alert_id for a in notification.alerts)))
        self.posted.append(self.clock.now)
        return await super().send(notification)


def scheduler_for(clock: Clock, give_up: float) -> tuple[RetryScheduler, list[str], list[tuple[str, str, float]]]:
    """A scheduler on ``clock`` with the give-up window ``give_up``, recording deliveries and dead letters."""
    delivered: list[str] = []
    dead: list[tuple[str, str, float]] = []

    async def on_delivered(job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        delivered.append(job.notification.group_key)

    async def on_dead(job: DeliveryJob, reason: str, detail: str) -> None:
        dead.append((job.notification.group_key, reason, clock.now))

    policy = BackoffPolicy(initial=1.0, maximum=8.0, give_up=give_up)
    return RetryScheduler(policy, on_delivered, on_dead, clock=clock, rng=random.Random(7)), delivered, dead


async def run_until_idle(scheduler: RetryScheduler, clock: Clock, late: Callable[[], float] = lambda: 0.0) -> None:
    """The delivery loop: wake at each due time (``late()`` seconds after it, as a busy event loop does)."""
    while (due := scheduler.next_due()) is not None:
        clock.now = max(clock.now, due + late())
        scheduler.start_due()
        await scheduler.drain()


async def test_a_burst_longer_than_the_give_up_window_waits_for_its_slots_and_is_delivered_in_full(
    make_alert: Callable[..., Alert],
) -> None:
    """200 messages to one channel, 1.05 s apart, with a 60 s give-up window: all 200 are delivered (the last after
    about 209 s), none dead-lettered — waiting for the channel's slot is not failing. Before, the give-up window
    counted the wait from the first attempt: 142 of them (from the 59th on) were dead-lettered gave_up untried.
    The line is visible meanwhile: counted, and a /readyz reason (once) while its oldest is older than the window."""
    clock = Clock()
    scheduler, delivered, dead = scheduler_for(clock, give_up=60.0)
    channel = PacedChannel(clock)
    for i in range(200):
        scheduler.submit(DeliveryJob("csm/slack", channel, Notification("csm", (make_alert(),), f"g{i}")))
    scheduler.start_due()
    await scheduler.drain()
    assert scheduler.paced() == 199
    assert scheduler.paced_backlog() == ()  # a line of 199 that just began: not a problem yet

    clock.now += 61.0
    with capture_logs() as logs:
        reasons = scheduler.paced_backlog()
        assert scheduler.paced_backlog() == reasons  # the ERROR once, not at each /readyz
        await run_until_idle(scheduler, clock)
        assert scheduler.paced_backlog() == ()
    assert reasons == (
        "deliveries waiting for a pacing slot: 199 queued, the oldest waiting for 61 s "
        "(longer than the give-up window, 60 s)",
    )
    assert [e["log_level"] for e in logs if "pacing slot" in e["event"]] == ["error", "info"]
    assert dead == []
    assert delivered == [f"g{i}" for i in range(200)]  # in arrival order
    assert channel.posted[-1] - channel.posted[0] >= 199 * PACED_INTERVAL_SECONDS
    assert scheduler.paced() == 0
    assert scheduler.paced_oldest_seconds() == 0.0


async def test_a_message_that_fails_after_waiting_in_line_gives_up_a_window_after_its_first_failure(
    make_alert: Callable[..., Alert],
) -> None:
    """A message that waits 100 s for its slot (longer than the 60 s window) and then gets a 500 at every attempt
    is dead-lettered gave_up within the window after that first failure, not at once and not never: the window
    measures the time spent failing. Before, it was dead-lettered at its first hold, Slack never asked."""
    clock = Clock()
    scheduler, delivered, dead = scheduler_for(clock, give_up=60.0)
    paced = RetryableDeliveryError("slack: channel paced", retry_after=100.0, throttled=True, held=True)
    failing = ScriptedNotifier(paced, *[RetryableDeliveryError("slack chat.postMessage: HTTP 500")] * 100)
    start = clock.now
    scheduler.submit(DeliveryJob("csm/slack", failing, Notification("csm", (make_alert(),), "g")))
    await run_until_idle(scheduler, clock)

    assert delivered == []
    ((group, reason, at),) = dead
    assert (group, reason) == ("g", "gave_up")
    first_failure = start + 100.0
    assert first_failure + 50.0 < at <= first_failure + 60.0
    assert failing.calls > 2  # retried with backoff meanwhile


async def test_a_message_turned_back_again_at_its_slot_is_one_hold(make_alert: Callable[..., Alert]) -> None:
    """A burst of 50 to one channel, each attempt starting up to 4 ms after it was due (a busy event loop): the one
    before a message took its slot late, so the message is turned back again by a few ms — still one wait, so
    49 holds counted in the INFO summaries (and as many DEBUG lines, where the level lets them through).
    Before, 97 holds for 49 messages held."""
    clock = Clock()
    scheduler, delivered, dead = scheduler_for(clock, give_up=600.0)
    channel = PacedChannel(clock)
    rng = random.Random(1)
    with capture_logs() as logs:
        for i in range(50):
            scheduler.submit(DeliveryJob("csm/slack", channel, Notification("csm", (make_alert(),), f"g{i}")))
        await run_until_idle(scheduler, clock, late=lambda: rng.uniform(0.0, 0.004))
        clock.now += 10.0
        scheduler.start_due()  # the last summary
    assert (len(delivered), dead) == (50, [])
    assert channel.attempts > 2 * 49 + 1  # turned back at their slots too: the case this test is about
    assert sum(e["held"] for e in logs if e["event"] == HELD_SUMMARY) == 49


class RateLimitedChannel(PacedChannel):
    """A channel whose every post that gets through the pacing is answered 429 (Retry-After 1 s): a proxy or a
    workspace limit refusing everything. As the Slack notifier does, a 429 closes the channel for its Retry-After."""

    async def send(self, notification: Notification) -> DeliveryReceipt:
        self.attempts += 1
        self.limiter.acquire("bot:C1", (notification.group_key, tuple(a.alert_id for a in notification.alerts)))
        self.posted.append(self.clock.now)
        self.limiter.hold("bot:C1", 1.0)
        raise RetryableDeliveryError("slack chat.postMessage: HTTP 429", retry_after=1.0, throttled=True)


async def test_a_line_behind_a_channel_that_answers_every_post_429_is_reported_within_the_give_up_window(
    make_alert: Callable[..., Alert],
) -> None:
    """100 messages to a channel that answers every post 429 (Retry-After 1 s): each message gets its 429, then
    waits behind the other 99 (its wait for the slot is not failing time), so its give-up window, 1 s of it a round,
    would take 100 windows to run out. Such a line is a /readyz reason once a message has not got through for the
    give-up window. Before, its 429 began a new wait each round, the oldest wait stayed about 100 s, below the
    200 s window: nothing delivered, nothing given up, /readyz ready, after 5 windows."""
    clock = Clock()
    scheduler, delivered, dead = scheduler_for(clock, give_up=200.0)
    channel = RateLimitedChannel(clock)
    for i in range(100):
        scheduler.submit(DeliveryJob("csm/slack", channel, Notification("csm", (make_alert(),), f"g{i}")))
    start = clock.now
    reasons: tuple[str, ...] = ()
    while not reasons and (due := scheduler.next_due()) is not None and clock.now < start + 1000.0:
        clock.now = max(clock.now, due)
        scheduler.start_due()
        await scheduler.drain()
        reasons = scheduler.paced_backlog()
    assert channel.posted  # Slack (the proxy) was asked, and refused
    assert (delivered, dead) == ([], [])
    assert reasons, "a line that gets nothing through for 5 give-up windows is not reported"
    assert clock.now <= start + 200.0 + 105.0  # at the latest a round after the window
