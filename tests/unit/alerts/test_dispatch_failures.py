"""The notifier's per-alert failure policy: a failing alert is dead-lettered and acked, the others go on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from alerts.delivery_log import DeliveryLog
from alerts.dispatch import Dispatcher
from alerts.routing.config import RoutingConfig
from schemas.alert import Alert
from tests.unit.alerts.test_dispatch import Clock, RecordingNotifier

Letters = list[tuple[str, str, str, str]]


@pytest.fixture
def build() -> Callable[..., tuple[Dispatcher, RecordingNotifier, Clock, Letters]]:
    """Factory: a dispatcher over one receiver that records its dead letters (alert_id, target, type, reason)."""

    def factory(**config: Any) -> tuple[Dispatcher, RecordingNotifier, Clock, Letters]:
        routing = RoutingConfig.model_validate(
            {"receivers": [{"name": "csm", "console_configs": [{}]}], "route": {"receiver": "csm"}, **config}
        )
        notifier, clock, letters = RecordingNotifier(), Clock(), []

        async def dead_letter(alert: Alert, target: str, receiver_type: str, reason: str, detail: str) -> None:
            letters.append((alert.alert_id, target, receiver_type, reason))

        async def flush() -> None:
            """Nothing to flush."""

        dispatcher = Dispatcher(
            routing, {"csm": [notifier]}, DeliveryLog({}, 3600.0), dead_letter, flush, clock=clock, monotonic=clock
        )
        return dispatcher, notifier, clock, letters

    return factory


async def _settle(dispatcher: Dispatcher, clock: Clock, seconds: float = 60.0) -> None:
    clock.now += seconds
    dispatcher.tick()
    await dispatcher.drain()


async def test_a_routing_failure_dead_letters_that_alert_and_acks_it(build, make_alert, monkeypatch) -> None:
    """When routing raises for one alert it is dead-lettered (routing_error) and acked; the next is delivered."""
    dispatcher, notifier, clock, letters = build()
    poison, good = make_alert(rule_id="poison"), make_alert()
    real_match = dispatcher.tree.match

    def match(alert: Alert) -> Any:
        if alert.rule_id == "poison":
            raise RuntimeError("matcher bug")
        return real_match(alert)

    monkeypatch.setattr(dispatcher.tree, "match", match)
    acks: list[str] = []
    dispatcher.on_alert(poison, lambda: acks.append("poison"), partition=0)
    dispatcher.on_alert(good, lambda: acks.append("good"), partition=0)
    await _settle(dispatcher, clock)
    assert letters == [(poison.alert_id, "-", "none", "routing_error")]
    assert sorted(acks) == ["good", "poison"]
    assert [n.alerts for n in notifier.sent] == [(good,)]


async def test_a_group_that_cannot_be_flushed_dead_letters_its_alerts_and_the_loop_goes_on(
    build, make_alert, monkeypatch
) -> None:
    """A failure while flushing one group dead-letters its targets (dispatch_error), settles them, and tick returns."""
    dispatcher, notifier, clock, letters = build()
    poison, good = make_alert(account_id="poison"), make_alert(account_id="good")
    real_flush = dispatcher._flush_batch

    def flush_batch(batch: Any, now: float) -> None:
        if batch.items[0].alert.account_id == "poison":
            raise KeyError("bookkeeping bug")
        real_flush(batch, now)

    monkeypatch.setattr(dispatcher, "_flush_batch", flush_batch)
    acks: list[str] = []
    dispatcher.on_alert(poison, lambda: acks.append("poison"))
    dispatcher.on_alert(good, lambda: acks.append("good"))
    await _settle(dispatcher, clock)
    assert letters == [(poison.alert_id, "csm/slack", "none", "dispatch_error")]
    assert sorted(acks) == ["good", "poison"]
    assert [n.alerts for n in notifier.sent] == [(good,)]


async def test_an_invalid_timezone_uses_the_default_zone_for_quiet_hours_counted(build, make_alert) -> None:
    """An account timezone that is not IANA falls back to quiet_hours.timezone; the alert is still delivered."""
    before = REGISTRY.get_sample_value("preempt_notifier_fallbacks_total", {"reason": "invalid_timezone"}) or 0.0
    dispatcher, notifier, clock, letters = build(
        quiet_hours={"start": "00:00", "end": "00:01", "timezone": "UTC", "bypass_severities": []}
    )
    alert = make_alert(account={"name": "Acme", "timezone": "Mars/Olympus_Mons"})
    acks: list[int] = []
    dispatcher.on_alert(alert, lambda: acks.append(1))
    await _settle(dispatcher, clock)
    assert (letters, acks, len(notifier.sent)) == ([], [1], 1)
    assert REGISTRY.get_sample_value("preempt_notifier_fallbacks_total", {"reason": "invalid_timezone"}) == before + 1


async def test_a_failing_quiet_hours_computation_sends_the_alert_now(build, make_alert, monkeypatch) -> None:
    """If quiet hours cannot be computed at all, the alert is sent at once (counted), not lost or crashed."""
    import alerts.dispatch

    def broken(*args: Any) -> float | None:
        raise OverflowError("date out of range")

    monkeypatch.setattr(alerts.dispatch, "defer_until", broken)
    dispatcher, notifier, clock, letters = build(quiet_hours={"start": "20:00", "end": "08:00"})
    dispatcher.on_alert(make_alert(), lambda: None)
    await _settle(dispatcher, clock)
    assert (letters, len(notifier.sent)) == ([], 1)


async def test_an_email_recipient_that_renders_empty_for_one_account_dead_letters_only_its_alert(
    make_alert, monkeypatch
) -> None:
    """A group spanning accounts (group_by: [rule_id]) where one owner has no email: the others are mailed,
    that account's alert is dead-lettered (no_recipient, "no valid recipient") — not counted as delivered."""
    from alerts.channels.email import EmailNotifier
    from alerts.routing.config import EmailReceiver
    from streams.runtime.settings import Settings

    routing = RoutingConfig.model_validate(
        {
            "receivers": [{"name": "csm", "email_configs": [{"to": "{{ account.owner.email }}"}]}],
            "route": {"receiver": "csm", "group_by": ["rule_id"]},
        }
    )
    email = EmailNotifier(EmailReceiver(to=["{{ account.owner.email }}"]), Settings(smtp_from="p@example.com"))
    mailed: list[list[str]] = []

    async def deliver(message: Any, recipients: list[str]) -> dict[str, tuple[int, str]]:
        mailed.append(recipients)
        return {}  # every recipient took it

    monkeypatch.setattr(email, "_deliver", deliver)
    clock, letters = Clock(), []

    async def dead_letter(alert: Alert, target: str, receiver_type: str, reason: str, detail: str) -> None:
        letters.append((alert.alert_id, receiver_type, reason, detail))

    async def flush() -> None:
        """Nothing to flush."""

    dispatcher = Dispatcher(
        routing, {"csm": [email]}, DeliveryLog({}, 3600.0), dead_letter, flush, clock=clock, monotonic=clock
    )
    good = make_alert(rule_id="r")
    ownerless = make_alert(rule_id="r", account_id="globex", account={"owner": {"email": "n/a"}})
    acks: list[str] = []
    dispatcher.on_alert(good, lambda: acks.append("good"), partition=0)
    dispatcher.on_alert(ownerless, lambda: acks.append("ownerless"), partition=0)
    await _settle(dispatcher, clock, 600.0)
    await _settle(dispatcher, clock, 600.0)
    assert mailed == [["jane@example.com"]]
    assert [(a, t, r) for a, t, r, _ in letters] == [(ownerless.alert_id, "email", "no_recipient")]
    assert "no valid recipient" in letters[0][3]
    assert sorted(acks) == ["good", "ownerless"]
