"""A replayed alert (``preempt alerts dead-letters --replay``): only its dead-lettered targets, the delivery log
still refuses duplicates, never an inhibition source, no latency observation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from alerts.channels.base import DeliveryReceipt, Notification
from alerts.delivery_log import DeliveryLog
from alerts.dispatch import UNKNOWN_TARGET, Dispatcher
from alerts.routing.config import RoutingConfig
from schemas.alert import Alert
from streams.runtime.metrics import ALERTS_SUPPRESSED


class RecordingNotifier:
    """Accepts every notification and remembers it."""

    def __init__(self, receiver_type: str) -> None:
        self.receiver_type = receiver_type
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> DeliveryReceipt:
        self.sent.append(notification)
        return DeliveryReceipt(receiver=notification.receiver, ref=f"{self.receiver_type}:{len(self.sent)}")

    async def update(self, ref: str, alerts: tuple[Alert, ...], note: str) -> None:
        """Not used here."""

    async def aclose(self) -> None:
        """Not used here."""


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1_795_420_800.0

    def __call__(self) -> float:
        return self.now


ROUTING: dict[str, Any] = {
    "receivers": [
        {"name": "csm", "console_configs": [{}]},
        {"name": "audit", "console_configs": [{}]},
    ],
    "route": {
        "receiver": "csm",
        "group_wait": "1s",
        "routes": [
            {"matchers": ['account_id=~".+"'], "receiver": "csm", "continue": True},
            {"matchers": ['account_id=~".+"'], "receiver": "audit"},
        ],
    },
    "inhibit_rules": [
        {"source_matchers": ['kind="composite"'], "target_matchers": ['kind!="composite"'], "equal": ["account_id"]}
    ],
}


class Harness:
    """A dispatcher whose receiver ``csm`` has a Slack and an email channel and ``audit`` one Slack channel
    (every alert reaches both receivers), with a dict delivery table and the dead letters it sent."""

    def __init__(self, **config: Any) -> None:
        self.slack, self.email, self.audit = (RecordingNotifier(t) for t in ("slack", "email", "slack"))
        self.clock = Clock()
        self.table: dict[bytes, Any] = {}
        self.dead: list[tuple[str, str, str]] = []
        self.log = DeliveryLog(self.table, 7 * 24 * 3600.0)

        async def dead_letter(alert: Alert, target: str, _type: str, reason: str, _detail: str) -> None:
            self.dead.append((alert.alert_id, target, reason))

        async def flush() -> None:
            return None

        self.dispatcher = Dispatcher(
            RoutingConfig.model_validate({**ROUTING, **config}),
            {"csm": [self.slack, self.email], "audit": [self.audit]},
            self.log,
            dead_letter,
            flush,
            clock=self.clock,
            monotonic=self.clock,
        )

    async def run(self) -> None:
        self.clock.now += 1.0
        self.dispatcher.tick()
        await self.dispatcher.drain()

    def sent(self) -> dict[str, list[str]]:
        return {
            name: [a.alert_id for n in notifier.sent for a in n.alerts]
            for name, notifier in (("slack", self.slack), ("email", self.email), ("audit", self.audit))
        }


@pytest.fixture
def harness() -> Callable[..., Harness]:
    """Factory: ``harness(silences=[…])``."""
    return Harness


async def test_a_replay_goes_only_to_the_targets_it_was_dead_lettered_for(harness, make_alert) -> None:
    """Replayed for csm/slack, long after the delivery log forgot that email and audit had it: only Slack
    gets it (the other targets are not routed to again), at once, and the record is acked after."""
    h = harness()
    alert = make_alert()
    acks: list[int] = []
    h.dispatcher.on_alert(alert, lambda: acks.append(1), replay=("csm/slack",))
    await h.run()
    assert h.sent() == {"slack": [alert.alert_id], "email": [], "audit": []}
    assert h.log.delivered("acme", alert.alert_id, "csm/slack") is not None
    assert acks == [1]


async def test_a_replay_still_honours_the_delivery_log(harness, make_alert) -> None:
    """A replayed target the delivery log already has (the letter was replayed before) is not sent twice:
    counted as a duplicate and acked."""
    h = harness()
    alert = make_alert()
    h.log.record("acme", [(alert.alert_id, "csm/slack", "C1:1.0")], h.clock.now)
    before = REGISTRY.get_sample_value("preempt_alerts_suppressed_total", {"reason": "duplicate"}) or 0.0
    acks: list[int] = []
    h.dispatcher.on_alert(alert, lambda: acks.append(1), replay=("csm/slack", "csm/email"))
    await h.run()
    assert h.sent() == {"slack": [], "email": [alert.alert_id], "audit": []}
    assert ALERTS_SUPPRESSED.labels(reason="duplicate")._value.get() == before + 1
    assert acks == [1]


async def test_a_replayed_target_that_is_no_longer_configured_is_dead_lettered(harness, make_alert) -> None:
    """A target the routing file no longer has (receiver renamed) is dead-lettered again as unknown_target,
    never sent elsewhere nor dropped; the record is acked once that dead letter is written."""
    h = harness()
    alert = make_alert()
    acks: list[int] = []
    h.dispatcher.on_alert(alert, lambda: acks.append(1), replay=("old-csm/slack", "csm/email"))
    await h.run()
    assert h.sent() == {"slack": [], "email": [alert.alert_id], "audit": []}
    assert h.dead == [(alert.alert_id, "old-csm/slack", UNKNOWN_TARGET)]
    assert acks == [1]


async def test_a_replay_that_names_no_target_is_routed_as_new(harness, make_alert) -> None:
    """A letter that failed before routing (routing_error: no target) is routed as new, the delivery log
    keeping a target that had it from a second copy."""
    h = harness()
    alert = make_alert()
    h.log.record("acme", [(alert.alert_id, "audit/slack", "C1:1.0")], h.clock.now)
    h.dispatcher.on_alert(alert, lambda: None, replay=())
    await h.run()
    assert h.sent() == {"slack": [alert.alert_id], "email": [alert.alert_id], "audit": []}


async def test_a_replayed_alert_is_not_an_inhibition_source(harness, make_alert) -> None:
    """A replayed composite does not mute the account's alerts of now (it fired when first emitted); the
    same composite consumed as new does."""
    h = harness()
    replayed, component = make_alert(kind="composite", severity="critical"), make_alert(kind="threshold")
    h.dispatcher.on_alert(replayed, lambda: None, replay=("csm/slack",))
    h.dispatcher.on_alert(component, lambda: None)
    await h.run()
    assert component.alert_id in h.sent()["email"]

    fresh, later = make_alert(kind="composite", severity="critical"), make_alert(kind="threshold")
    h.dispatcher.on_alert(fresh, lambda: None)
    h.dispatcher.on_alert(later, lambda: None)
    await h.run()
    assert later.alert_id not in h.sent()["email"]


async def test_a_silence_active_now_mutes_a_replay(harness, make_alert) -> None:
    """Silences of now apply to a replay as to any alert: suppressed, acked, not sent."""
    h = harness(silences=[{"account_id": "acme", "ends_at": "2099-01-01T00:00:00Z", "reason": "churned"}])
    acks: list[int] = []
    h.dispatcher.on_alert(make_alert(), lambda: acks.append(1), replay=("csm/slack",))
    await h.run()
    assert h.sent() == {"slack": [], "email": [], "audit": []}
    assert acks == [1]


async def test_a_replay_is_not_observed_as_notification_latency(harness, make_alert) -> None:
    """A replayed alert's emitted_at is days old: its delivery adds no latency observation (the log line says
    replay=true); a fresh alert's does."""
    h = harness()

    def observations() -> float:
        return (
            REGISTRY.get_sample_value("preempt_notification_latency_seconds_count", {"receiver_type": "slack"}) or 0.0
        )

    before = observations()
    old = make_alert(emitted_at="2026-11-20T06:10:00Z")
    with capture_logs() as logs:
        h.dispatcher.on_alert(old, lambda: None, replay=("csm/slack",))
        await h.run()
    assert observations() == before
    [delivered] = [e for e in logs if e["event"] == "alert delivered"]
    assert delivered["replay"] is True

    h.dispatcher.on_alert(make_alert(), lambda: None)
    await h.run()
    assert observations() == before + 2  # csm/slack and audit/slack
