"""Which delivery targets keep failing: /readyz's ``deliveries failing`` reason, its log lines and gauge."""

from __future__ import annotations

import random
from collections.abc import Callable

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from alerts.channels.base import DeliveryReceipt, Notification
from alerts.delivery_health import DeliveryHealth
from alerts.retry import BackoffPolicy, DeliveryJob, RetryScheduler
from schemas.alert import Alert
from schemas.errors import PermanentDeliveryError, RetryableDeliveryError


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _failing_gauge(receiver_type: str) -> float:
    return REGISTRY.get_sample_value("preempt_notifier_targets_failing", {"receiver_type": receiver_type}) or 0.0


def test_a_target_whose_every_attempt_fails_for_the_window_is_reported_with_its_last_error() -> None:
    """Three failures or more over the window, none delivered: one reason naming target, count, time and error."""
    clock = Clock()
    health = DeliveryHealth(300.0, clock)
    for _ in range(4):
        health.failed("cs-leads/email", "email", "email RCPT: every recipient refused (SMTP 554)")
        clock.now += 100.0
    with capture_logs() as logs:
        reasons = health.failing()
    assert reasons == (
        "deliveries failing: cs-leads/email: 4 attempts failed in a row, none delivered for 400 s "
        "(last: email RCPT: every recipient refused (SMTP 554))",
    )
    assert [entry["log_level"] for entry in logs] == ["error"]
    assert logs[0]["target"] == "cs-leads/email"
    assert _failing_gauge("email") == 1.0
    with capture_logs() as again:
        health.failing()
    assert again == []  # logged once per episode


def test_one_failed_message_does_not_make_the_notifier_unready() -> None:
    """A single failure (or two) however old, or many failures within less than the window, are no report."""
    clock = Clock()
    health = DeliveryHealth(300.0, clock)
    health.failed("support/slack", "slack", "slack chat.postMessage: HTTP 200 channel_not_found")
    clock.now += 290.0
    health.failed("support/slack", "slack", "slack chat.postMessage: HTTP 200 channel_not_found")
    assert health.failing() == ()
    for _ in range(10):
        health.failed("billing/email", "email", "email: SMTPServerDisconnected")
    assert health.failing() == ()


def _reported_failing(clock: Clock) -> DeliveryHealth:
    """A tracker (60 s window) whose ``ops/slack`` failed three times over 90 s: reported."""
    health = DeliveryHealth(60.0, clock)
    for _ in range(3):
        health.failed("ops/slack", "slack", "slack webhook: HTTP 500")
        clock.now += 30.0
    assert health.failing()
    return health


def test_a_success_clears_the_report_and_says_so() -> None:
    """The first delivery of a failing target ends its report: the reason goes, INFO line, gauge back to 0."""
    clock = Clock()
    health = _reported_failing(clock)
    with capture_logs() as logs:
        health.succeeded("ops/slack")
    assert health.failing() == ()
    assert [(e["log_level"], e["event"]) for e in logs] == [("info", "deliveries succeeding again")]
    assert _failing_gauge("slack") == 0.0


def test_a_target_not_tried_for_twice_the_window_is_no_longer_reported() -> None:
    """Failures long past, with nothing tried since, no longer say the target fails (nobody knows)."""
    clock = Clock()
    health = _reported_failing(clock)
    clock.now += 121.0
    assert health.failing() == ()
    assert _failing_gauge("slack") == 0.0


class Answers:
    """A Slack channel that answers the scripted errors in order, then delivers."""

    receiver_type = "slack"

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)

    async def send(self, notification: Notification) -> DeliveryReceipt:
        if self.errors:
            raise self.errors.pop(0)
        return DeliveryReceipt(receiver=notification.receiver, ref="C1:1.0")

    async def update(self, *args: object) -> None:
        """Not used here."""

    async def aclose(self) -> None:
        """Not used here."""


async def test_the_scheduler_reports_failures_but_not_rate_limits(make_alert: Callable[..., Alert]) -> None:
    """Attempts that fail (5xx, invalid_auth) count against the target; a 429 or the channel's own pacing
    (throttled) does not; a delivery clears it."""
    clock = Clock()

    async def delivered(job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        pass

    async def dead(job: DeliveryJob, reason: str, detail: str) -> None:
        pass

    health = DeliveryHealth(60.0, clock)
    scheduler = RetryScheduler(
        BackoffPolicy(give_up=10_000.0), delivered, dead, clock=clock, rng=random.Random(1), health=health
    )
    limited = Answers(*[RetryableDeliveryError("slack: HTTP 429", retry_after=30.0, throttled=True)] * 5)
    broken = Answers(
        RetryableDeliveryError("slack chat.postMessage: HTTP 500"),
        PermanentDeliveryError("slack chat.postMessage: HTTP 200 invalid_auth"),
        RetryableDeliveryError("slack chat.postMessage: HTTP 503"),
    )

    for _ in range(3):
        await scheduler.attempt(DeliveryJob("limited/slack", limited, Notification("limited", (make_alert(),), "l")))
        await scheduler.attempt(DeliveryJob("broken/slack", broken, Notification("broken", (make_alert(),), "b")))
        clock.now += 30.0
    await scheduler.drain()
    assert [r.split(":")[1].strip() for r in health.failing()] == ["broken/slack"]
    await scheduler.attempt(DeliveryJob("broken/slack", broken, Notification("broken", (make_alert(),), "b")))
    assert health.failing() == ()
