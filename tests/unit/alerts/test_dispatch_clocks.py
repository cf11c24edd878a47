"""The dispatcher's two clocks: waits and intervals on the monotonic clock, so a step of the wall clock (NTP)
neither stalls nor bursts deliveries; wall times only where they are persisted or compared with wall times."""

from __future__ import annotations

from typing import Any

from alerts.channels.base import DeliveryReceipt, Notification
from alerts.delivery_log import DeliveryLog
from alerts.dispatch import Dispatcher
from alerts.routing.config import RoutingConfig
from schemas.alert import Alert
from schemas.errors import RetryableDeliveryError

WALL = 1_795_420_800.0


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyNotifier:
    """Refuses the first ``failures`` notifications (retryable), then accepts and remembers each."""

    receiver_type = "slack"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> DeliveryReceipt:
        if self.failures:
            self.failures -= 1
            raise RetryableDeliveryError("slack answered 500")
        self.sent.append(notification)
        return DeliveryReceipt(receiver=notification.receiver, ref=f"C1:{len(self.sent)}.0")

    async def update(self, ref: str, alerts: tuple[Alert, ...], note: str) -> None:
        """Not used here."""

    async def aclose(self) -> None:
        """Not used here."""


def _dispatcher(notifier: FlakyNotifier, table: dict[bytes, Any]) -> tuple[Dispatcher, Clock, Clock]:
    routing = RoutingConfig.model_validate(
        {"receivers": [{"name": "csm", "console_configs": [{}]}], "route": {"receiver": "csm", "group_wait": "30s"}}
    )

    async def dead_letter(*args: Any) -> None:
        raise AssertionError(f"unexpected dead letter {args}")

    async def flush() -> None:
        pass

    wall, ticks = Clock(WALL), Clock(500.0)
    dispatcher = Dispatcher(
        routing, {"csm": [notifier]}, DeliveryLog(table, 3600.0), dead_letter, flush, clock=wall, monotonic=ticks
    )
    return dispatcher, wall, ticks


async def test_a_wall_clock_step_back_does_not_stall_the_group_wait(make_alert) -> None:
    """The wall clock steps back an hour during a 30 s group_wait: the alert goes out 30 s later all the same
    (on one wall clock it waited an hour more), and the delivery is logged at the wall time it happened."""
    notifier, table = FlakyNotifier(), {}
    dispatcher, wall, ticks = _dispatcher(notifier, table)
    dispatcher.on_alert(make_alert(), lambda: None)
    wall.now -= 3600.0
    ticks.now += 29.0
    assert dispatcher.tick() == 530.0  # the next wake-up, on the monotonic clock
    await dispatcher.scheduler.drain()
    assert notifier.sent == []
    ticks.now += 1.0
    dispatcher.tick()
    await dispatcher.scheduler.drain()
    assert len(notifier.sent) == 1
    alert = notifier.sent[0].alerts[0]
    record = dispatcher.delivery_log.delivered(alert.account_id, alert.alert_id, "csm/slack")
    assert record is not None
    assert record.delivered_at == WALL - 3600.0


async def test_a_wall_clock_step_forward_does_not_flush_early(make_alert) -> None:
    """The wall clock jumps a day ahead 1 s into a 30 s group_wait: nothing is sent before the wait is over."""
    notifier = FlakyNotifier()
    dispatcher, wall, ticks = _dispatcher(notifier, {})
    dispatcher.on_alert(make_alert(), lambda: None)
    wall.now += 86_400.0
    ticks.now += 1.0
    dispatcher.tick()
    await dispatcher.scheduler.drain()
    assert notifier.sent == []


async def test_a_retry_is_due_after_its_backoff_whatever_the_wall_clock_does(make_alert) -> None:
    """A retryable failure, then the wall clock steps back an hour: the retry comes after its backoff (seconds
    on the monotonic clock), not an hour later."""
    notifier = FlakyNotifier(failures=1)
    dispatcher, wall, ticks = _dispatcher(notifier, {})
    dispatcher.on_alert(make_alert(), lambda: None)
    ticks.now += 30.0
    dispatcher.tick()
    await dispatcher.scheduler.drain()
    assert notifier.sent == []
    retry_at = dispatcher.scheduler.next_due()
    assert retry_at is not None
    assert ticks.now < retry_at <= ticks.now + 60.0
    wall.now -= 3600.0
    ticks.now = retry_at
    dispatcher.tick()
    await dispatcher.scheduler.drain()
    assert len(notifier.sent) == 1
