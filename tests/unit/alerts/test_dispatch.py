"""The dispatcher: suppressions, grouping into one delivery, acks only after the delivery is recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from alerts.channels.base import DeliveryReceipt, Notification
from alerts.delivery_log import DeliveryLog
from alerts.dispatch import Dispatcher
from alerts.routing.config import RoutingConfig
from schemas.alert import Alert
from streams.runtime.metrics import ALERTS_SUPPRESSED


class RecordingNotifier:
    """Accepts every notification and remembers it."""

    receiver_type = "slack"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> DeliveryReceipt:
        self.sent.append(notification)
        return DeliveryReceipt(receiver=notification.receiver, ref=f"C1:{len(self.sent)}.0")

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


@pytest.fixture
def setup() -> Callable[..., tuple[Dispatcher, RecordingNotifier, Clock, dict[bytes, Any], list[str]]]:
    """Factory: a dispatcher over one Slack receiver (group_wait 1 s) with a dict delivery table."""

    def factory(**config: Any) -> tuple[Dispatcher, RecordingNotifier, Clock, dict[bytes, Any], list[str]]:
        routing = RoutingConfig.model_validate(
            {
                "receivers": [{"name": "csm", "console_configs": [{}]}],
                "route": {"receiver": "csm", "group_wait": "1s"},
                **config,
            }
        )
        notifier, clock, table, flushes = RecordingNotifier(), Clock(), {}, []

        async def dead_letter(*args: Any) -> None:
            raise AssertionError(f"unexpected dead letter {args}")

        async def flush() -> None:
            flushes.append("flush")

        dispatcher = Dispatcher(
            routing, {"csm": [notifier]}, DeliveryLog(table, 3600.0), dead_letter, flush, clock=clock, monotonic=clock
        )
        return dispatcher, notifier, clock, table, flushes

    return factory


async def _run_until_idle(dispatcher: Dispatcher, clock: Clock) -> None:
    clock.now += 1.0
    dispatcher.tick()
    await dispatcher.scheduler.drain()


async def test_grouped_alerts_go_out_once_and_are_acked_after_recording(setup, make_alert) -> None:
    """Five alerts of one account become one notification; each is acked only after the log flush."""
    dispatcher, notifier, clock, table, flushes = setup()
    acks: list[str] = []
    alerts = [make_alert() for _ in range(5)]
    for alert in alerts:
        dispatcher.on_alert(alert, lambda a=alert: acks.append(a.alert_id), partition=0)
    assert acks == []

    await _run_until_idle(dispatcher, clock)

    assert len(notifier.sent) == 1
    assert notifier.sent[0].alerts == tuple(alerts)
    assert flushes == ["flush"]
    assert sorted(acks) == sorted(a.alert_id for a in alerts)
    assert len(table[b"acme"]) == 5


async def test_delivered_alert_is_not_sent_again(setup, make_alert) -> None:
    """An alert consumed again after its delivery was recorded is acked without sending."""
    dispatcher, notifier, clock, _table, _ = setup()
    alert = make_alert()
    dispatcher.on_alert(alert, lambda: None)
    await _run_until_idle(dispatcher, clock)
    acks: list[int] = []

    dispatcher.on_alert(alert, lambda: acks.append(1))
    await _run_until_idle(dispatcher, clock)

    assert len(notifier.sent) == 1
    assert acks == [1]


async def test_silenced_alert_is_acked_at_once_and_not_sent(setup, make_alert) -> None:
    """A silence matching the account suppresses the alert; it is acked immediately."""
    dispatcher, notifier, clock, _table, _ = setup(
        silences=[{"account_id": "acme", "ends_at": "2099-01-01T00:00:00Z", "reason": "migration"}]
    )
    acks: list[int] = []
    dispatcher.on_alert(make_alert(), lambda: acks.append(1))
    await _run_until_idle(dispatcher, clock)

    assert acks == [1]
    assert notifier.sent == []


async def test_revoked_partition_work_is_dropped_unacked(setup, make_alert) -> None:
    """Pending alerts of a revoked partition are forgotten (their new owner re-reads them)."""
    dispatcher, notifier, clock, _table, _ = setup()
    acks: list[int] = []
    dispatcher.on_alert(make_alert(), lambda: acks.append(1), partition=3)

    assert dispatcher.revoke({3}) == 1
    await _run_until_idle(dispatcher, clock)
    assert notifier.sent == []
    assert acks == []


async def test_rebalance_keeps_work_of_partitions_that_stay(setup, make_alert) -> None:
    """During a rebalance nothing is sent; afterwards the work of retained partitions goes out."""
    dispatcher, notifier, clock, _table, _ = setup()
    kept, moved = make_alert(), make_alert(account_id="globex")
    dispatcher.on_alert(kept, lambda: None, partition=1)
    dispatcher.on_alert(moved, lambda: None, partition=2)
    dispatcher.paused = True
    await _run_until_idle(dispatcher, clock)
    assert notifier.sent == []

    assert dispatcher.retain({1}) == 1
    await _run_until_idle(dispatcher, clock)
    assert notifier.sent == []  # not before the delivery log is recovered
    dispatcher.paused = False  # the runtime's on_recovered
    await _run_until_idle(dispatcher, clock)
    assert [n.alerts for n in notifier.sent] == [(kept,)]


async def test_source_arriving_during_group_wait_inhibits_waiting_targets(setup, make_alert) -> None:
    """A composite alert that arrives while its account's component alert waits in group_wait mutes
    it at the flush (Alertmanager applies inhibition when a group is sent); both are acked."""
    dispatcher, notifier, clock, _table, _ = setup(
        inhibit_rules=[
            {"source_matchers": ['kind="composite"'], "target_matchers": ['kind!="composite"'], "equal": ["account_id"]}
        ]
    )
    component, composite = make_alert(kind="threshold"), make_alert(kind="composite", severity="critical")
    other_account = make_alert(kind="threshold", account_id="globex")
    acks: list[str] = []
    for alert in (component, other_account, composite):
        dispatcher.on_alert(alert, lambda a=alert: acks.append(a.alert_id))

    await _run_until_idle(dispatcher, clock)

    assert sorted([a.alert_id for a in n.alerts] for n in notifier.sent) == sorted(
        [[composite.alert_id], [other_account.alert_id]]
    )
    assert sorted(acks) == sorted(a.alert_id for a in (component, other_account, composite))


async def test_a_silenced_source_still_inhibits_its_targets(setup, make_alert) -> None:
    """A composite alert that a silence mutes is still active (it was received): its account's component
    alerts stay inhibited, as in Alertmanager, instead of going out because the source was silenced."""
    dispatcher, notifier, clock, _table, _ = setup(
        inhibit_rules=[
            {"source_matchers": ['kind="composite"'], "target_matchers": ['kind!="composite"'], "equal": ["account_id"]}
        ],
        silences=[{"rule_id": "churn-risk", "reason": "known, CS-12", "ends_at": "2099-01-01T00:00:00Z"}],
    )
    composite = make_alert(kind="composite", rule_id="churn-risk", severity="critical")
    component = make_alert(kind="threshold")
    acks: list[str] = []
    with capture_logs() as logs:
        for alert in (composite, component):
            dispatcher.on_alert(alert, lambda a=alert: acks.append(a.alert_id))
        await _run_until_idle(dispatcher, clock)

    assert notifier.sent == []
    assert sorted(acks) == sorted([composite.alert_id, component.alert_id])
    assert {(r["alert_id"], r["reason"]) for r in logs if r["event"] == "alert suppressed"} == {
        (composite.alert_id, "silenced"),
        (component.alert_id, "inhibited"),
    }


async def test_a_flood_of_alerts_that_inhibit_nothing_does_not_push_a_source_out(setup, make_alert) -> None:
    """More than the remembered 10,000 silenced alerts that match no inhibit rule's source side, received
    after a source: its target is still inhibited (only possible sources are remembered as active)."""
    dispatcher, notifier, clock, _table, _ = setup(
        inhibit_rules=[
            {"source_matchers": ['kind="composite"'], "target_matchers": ['kind!="composite"'], "equal": ["account_id"]}
        ],
        silences=[{"rule_id": "noisy", "reason": "known", "ends_at": "2099-01-01T00:00:00Z"}],
    )
    composite = make_alert(kind="composite", rule_id="churn-risk", severity="critical")
    dispatcher.on_alert(composite, lambda: None)
    for _ in range(10_001):
        dispatcher.on_alert(make_alert(kind="threshold", rule_id="noisy", account_id="other"), lambda: None)
    target = make_alert(kind="threshold")
    dispatcher.on_alert(target, lambda: None)
    await _run_until_idle(dispatcher, clock)
    sent = {a.alert_id for n in notifier.sent for a in n.alerts}
    assert composite.alert_id in sent
    assert target.alert_id not in sent


async def test_silence_starting_during_group_wait_mutes_the_waiting_alert(setup, make_alert) -> None:
    """A silence whose span begins while an alert waits in its group mutes it at the flush."""
    start = "2026-11-23T08:00:00.500000+00:00"  # half a second after the test clock's start
    dispatcher, notifier, clock, _table, _ = setup(
        silences=[{"account_id": "acme", "starts_at": start, "ends_at": "2099-01-01T00:00:00Z", "reason": "call"}]
    )
    acks: list[int] = []
    dispatcher.on_alert(make_alert(), lambda: acks.append(1))

    await _run_until_idle(dispatcher, clock)

    assert notifier.sent == []
    assert acks == [1]


async def test_critical_alert_is_not_held_behind_its_groups_quiet_hours(setup, make_alert) -> None:
    """A critical alert (which bypasses quiet hours) joining a group whose low alert is held until the
    end of quiet hours goes out on the group's own schedule; the low alert stays held."""
    dispatcher, notifier, clock, _table, _ = setup(
        quiet_hours={"start": "00:00:01", "end": "00:00:00", "timezone": "UTC"}  # quiet all day but one second
    )
    low = make_alert(severity="low", account={"timezone": "UTC"})
    critical = make_alert(severity="critical", account={"timezone": "UTC"})
    acks: list[str] = []
    dispatcher.on_alert(low, lambda: acks.append("low"))
    await _run_until_idle(dispatcher, clock)
    assert notifier.sent == []

    clock.now += 60
    dispatcher.on_alert(critical, lambda: acks.append("critical"))
    await _run_until_idle(dispatcher, clock)

    assert [n.alerts for n in notifier.sent] == [(critical,)]
    assert acks == ["critical"]
    assert dispatcher.grouper.pending() == 1  # the low alert, until the quiet hours end


async def test_the_quiet_hours_log_line_gives_its_release_time_in_the_accounts_zone(setup, make_alert) -> None:
    """``alert deferred by quiet hours`` says ``until`` as RFC 3339 in the zone quiet hours follow — the account's,
    else the file's (an unknown zone counted once, as before) — not as epoch seconds (1795503600.0 before)."""
    from datetime import datetime

    from prometheus_client import REGISTRY
    from structlog.testing import capture_logs

    dispatcher, notifier, clock, _table, _ = setup(
        quiet_hours={"start": "20:00", "end": "08:00", "timezone": "America/New_York", "bypass_severities": []}
    )
    clock.now = datetime.fromisoformat("2026-11-24T03:00:00+00:00").timestamp()  # 04:00 in Paris, 22:00 in New York
    fallbacks = REGISTRY.get_sample_value("preempt_notifier_fallbacks_total", {"reason": "invalid_timezone"}) or 0.0
    paris = make_alert(account_id="paris", account={"timezone": "Europe/Paris"})
    unknown = make_alert(account_id="mars", account={"timezone": "Mars/Olympus_Mons"})
    with capture_logs() as logs:
        dispatcher.on_alert(paris, lambda: None)
        dispatcher.on_alert(unknown, lambda: None)
        await _run_until_idle(dispatcher, clock)
    deferred = {e["alert_id"]: e["until"] for e in logs if e["event"] == "alert deferred by quiet hours"}
    assert deferred == {paris.alert_id: "2026-11-24T08:00:00+01:00", unknown.alert_id: "2026-11-24T08:00:00-05:00"}
    assert notifier.sent == []
    after = REGISTRY.get_sample_value("preempt_notifier_fallbacks_total", {"reason": "invalid_timezone"})
    assert after == fallbacks + 1


async def test_alert_routed_only_to_a_null_receiver_is_counted_and_acked(make_alert) -> None:
    """An alert whose only receiver has no destinations is acked, logged and counted as no_destination."""
    routing = RoutingConfig.model_validate(
        {"receivers": [{"name": "csm", "console_configs": [{}]}, {"name": "void"}], "route": {"receiver": "void"}}
    )

    async def never(*args: Any) -> None:
        raise AssertionError(f"unexpected call {args}")

    dispatcher = Dispatcher(routing, {"csm": [RecordingNotifier()], "void": []}, DeliveryLog({}, 3600.0), never, never)
    before = ALERTS_SUPPRESSED.labels(reason="no_destination")._value.get()
    acks: list[int] = []
    with capture_logs() as logs:
        dispatcher.on_alert(make_alert(), lambda: acks.append(1))

    assert acks == [1]
    assert ALERTS_SUPPRESSED.labels(reason="no_destination")._value.get() == before + 1
    assert [e["receivers"] for e in logs if e["event"].startswith("alert not sent")] == [["void"]]


class ProbedSMTP:
    """An SMTP server refusing the login (535, the destination failing) until ``works``; an attempt for an account
    in ``hang`` waits there until it is let go, then answers ``answer`` (default: the 535)."""

    receiver_type = "email"

    def __init__(self) -> None:
        import asyncio

        self.works = False
        self.hang: dict[str, asyncio.Event] = {}
        self.answer: Exception | None = None
        self.sent: list[str] = []
        self.calls: list[str] = []

    async def send(self, notification: Notification) -> DeliveryReceipt:
        from alerts.channels.email import classify_smtp

        account = notification.alerts[0].account_id
        self.calls.append(account)
        if account in self.hang:
            await self.hang.pop(account).wait()
            if self.answer is not None:
                raise self.answer
        if not self.works:
            raise classify_smtp(535, "Authentication", "5.7.8 Authentication credentials invalid", "smtp:587")
        self.sent.append(account)
        return DeliveryReceipt(receiver=notification.receiver, ref=f"<{len(self.sent)}@preempt>")

    def destination(self, notification: Notification) -> str:
        return "smtp:587 from p@example.com"

    async def update(self, ref: str, alerts: tuple[Alert, ...], note: str) -> None:
        """Not used here."""

    async def aclose(self) -> None:
        """Not used here."""


async def _probe_in_flight_at_a_rebalance(
    make_alert: Callable[..., Alert], answer: Exception | None
) -> tuple[Dispatcher, ProbedSMTP, Clock, list[tuple[str, str]], list[str]]:
    """The probe (an alert of partition 1) of the SMTP server's breaker is in flight, a delivery of partition 2 is
    held; a rebalance revokes partition 1 and keeps 2; then the probe's attempt answers ``answer`` (None: 535)."""
    import asyncio

    routing = RoutingConfig.model_validate(
        {
            "receivers": [{"name": "csm", "email_configs": [{"to": "csm@example.com"}]}],
            "route": {"receiver": "csm", "group_wait": "0s"},
        }
    )
    notifier, clock, dead, acks = ProbedSMTP(), Clock(), [], []

    async def dead_letter(alert: Alert, target: str, receiver_type: str, reason: str, detail: str) -> None:
        dead.append((alert.account_id, reason))

    async def flush() -> None:
        pass

    dispatcher = Dispatcher(
        routing, {"csm": [notifier]}, DeliveryLog({}, 3600.0), dead_letter, flush, clock=clock, monotonic=clock
    )
    dispatcher.on_alert(make_alert(account_id="moved"), lambda: acks.append("moved"), partition=1)
    await _run_until_idle(dispatcher, clock)  # group_wait, then the 535: the breaker opens, "moved" probes
    dispatcher.on_alert(make_alert(account_id="stays"), lambda: acks.append("stays"), partition=2)
    await _run_until_idle(dispatcher, clock)
    assert dispatcher.scheduler.breakers() == ("SMTP server smtp:587",)
    assert dispatcher.scheduler.held() == 1  # "stays" waits for the probe

    release = notifier.hang["moved"] = asyncio.Event()
    notifier.answer = answer
    clock.now += 5.0  # the probe's backoff (1-2 s) is over: its attempt starts and hangs
    dispatcher.tick()
    await asyncio.sleep(0)
    assert notifier.calls[-1] == "moved"
    dispatcher.paused = True  # the revocation
    assert dispatcher.retain({2}) == 1  # the assignment: partition 1 moved away
    dispatcher.paused = False  # the recovery
    release.set()
    await dispatcher.drain()
    return dispatcher, notifier, clock, dead, acks


async def test_a_probe_in_flight_at_a_rebalance_is_dropped_for_its_revoked_partition(make_alert) -> None:
    """The probe's attempt fails after its partition moved away: its alert is not retried here (the new owner
    re-reads it) and the held delivery of the partition that stayed takes the probe's role at once; once the
    server takes messages, only that one is sent (before: the moved alert kept probing and was sent here too)."""
    dispatcher, notifier, clock, dead, acks = await _probe_in_flight_at_a_rebalance(make_alert, None)
    notifier.works = True
    await _run_until_idle(dispatcher, clock)  # 1 s later: well before the moved probe's next backoff (2-4 s)
    assert notifier.sent == ["stays"]
    assert acks == ["stays"]
    for _ in range(20):
        await _run_until_idle(dispatcher, clock)
    assert notifier.sent == ["stays"]
    assert "moved" not in notifier.calls[notifier.calls.index("stays") :]
    assert dead == []
    assert dispatcher.scheduler.pending() == 0
    assert dispatcher.scheduler.breakers() == ()


async def test_a_probe_dead_lettered_after_its_partition_moved_writes_no_dead_letter(make_alert) -> None:
    """The probe's own message is refused for good after its partition moved away: no dead letter here (the new
    owner re-reads the alert and decides), and the held delivery that stayed probes at once."""
    from alerts.channels.email import classify_smtp

    refused = classify_smtp(550, "DATA", "5.1.1 No such user")
    dispatcher, notifier, clock, dead, acks = await _probe_in_flight_at_a_rebalance(make_alert, refused)
    assert dead == []
    notifier.works = True
    await _run_until_idle(dispatcher, clock)
    assert notifier.sent == ["stays"]
    assert acks == ["stays"]
    assert dead == []
    assert dispatcher.scheduler.pending() == 0
