"""The delivery loop's retries: Retry-After honoured exactly, backoff with jitter, give-up, dead letters."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from alerts.channels.base import DeliveryReceipt, Notification
from alerts.retry import MAX_IN_FLIGHT_PER_DESTINATION, BackoffPolicy, DeliveryJob, RetryScheduler
from schemas.alert import Alert
from schemas.errors import NoRecipientError, PermanentDeliveryError, RetryableDeliveryError


class ScriptedNotifier:
    """A notifier that raises the scripted errors in order, then succeeds."""

    receiver_type = "slack"

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def send(self, notification: Notification) -> DeliveryReceipt:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return DeliveryReceipt(receiver=notification.receiver, ref="C1:1.0")

    async def update(self, ref: str, alerts: tuple[Alert, ...], note: str) -> None:
        """Not used here."""

    async def aclose(self) -> None:
        """Not used here."""


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def harness(make_alert: Callable[..., Alert]) -> Callable[..., tuple[RetryScheduler, DeliveryJob, dict[str, list]]]:
    """Factory: a scheduler with a fake clock and recording callbacks, and a job for ``notifier``."""

    def factory(notifier: ScriptedNotifier, policy: BackoffPolicy | None = None, clock: Clock | None = None):
        outcomes: dict[str, list] = {"delivered": [], "dead": []}

        async def delivered(job: DeliveryJob, receipt: DeliveryReceipt) -> None:
            outcomes["delivered"].append(receipt.ref)

        async def dead(job: DeliveryJob, reason: str, detail: str) -> None:
            outcomes["dead"].append((reason, detail))

        scheduler = RetryScheduler(
            policy or BackoffPolicy(initial=1.0, maximum=8.0, give_up=60.0),
            delivered,
            dead,
            clock=clock or Clock(),
            rng=random.Random(7),
        )
        job = DeliveryJob("csm/slack", notifier, Notification("csm", (make_alert(),), "g"))
        return scheduler, job, outcomes

    return factory


async def test_success_is_reported_once(harness) -> None:
    """A successful send calls on_delivered with the receipt and queues nothing."""
    scheduler, job, outcomes = harness(ScriptedNotifier())
    await scheduler.attempt(job)

    assert outcomes == {"delivered": ["C1:1.0"], "dead": []}
    assert scheduler.next_due() is None


async def test_retry_after_is_honoured_exactly(harness) -> None:
    """A 429 with Retry-After 2 s schedules the next attempt exactly 2 s later, never earlier."""
    clock = Clock()
    scheduler, job, outcomes = harness(ScriptedNotifier(RetryableDeliveryError("429", retry_after=2.0)), clock=clock)
    await scheduler.attempt(job)

    assert scheduler.next_due() == clock.now + 2.0
    clock.now += 1.999
    assert scheduler.start_due() == 0
    clock.now += 0.001
    assert scheduler.start_due() == 1
    await scheduler.drain()
    assert outcomes["delivered"] == ["C1:1.0"]


async def test_backoff_without_hint_grows_with_jitter_and_is_capped() -> None:
    """Retry n waits between half and all of min(max, initial * 2**(n-1))."""
    policy = BackoffPolicy(initial=1.0, maximum=8.0)
    rng = random.Random(1)
    for n, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = [policy.backoff(n, rng) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays)


async def test_server_errors_retry_with_backoff_then_deliver(harness) -> None:
    """Two 5xx failures are retried after a backoff, and the third attempt delivers."""
    clock = Clock()
    notifier = ScriptedNotifier(RetryableDeliveryError("500"), RetryableDeliveryError("503"))
    scheduler, job, outcomes = harness(notifier, clock=clock)
    await scheduler.attempt(job)
    for _ in range(2):
        due = scheduler.next_due()
        assert due is not None
        assert due > clock.now
        clock.now = due
        scheduler.start_due()
        await scheduler.drain()

    assert notifier.calls == 3
    assert outcomes["delivered"] == ["C1:1.0"]


async def test_an_alert_without_a_recipient_is_dead_lettered_as_such_and_the_target_stays_healthy(harness) -> None:
    """A templated recipient that renders empty (an account without an owner) is the alert's data, not the
    channel's fault: dead-lettered ``no_recipient`` at once, and however many such alerts come, the target is
    not reported failing on /readyz (they were ``permanent`` and made an owner-DM receiver look broken)."""
    clock = Clock()
    error = "slack: the channel template rendered empty (no owner Slack id?)"
    notifier = ScriptedNotifier(*[NoRecipientError(error) for _ in range(6)])
    scheduler, job, outcomes = harness(notifier, clock=clock)
    for _ in range(6):
        await scheduler.attempt(job)
        clock.now += 120.0
    assert outcomes["dead"] == [("no_recipient", error)] * 6
    assert scheduler.next_due() is None
    assert scheduler.health.failing() == ()


async def test_permanent_error_is_dead_lettered_without_retry(harness) -> None:
    """channel_not_found goes to the dead letters at once and is never retried."""
    notifier = ScriptedNotifier(PermanentDeliveryError("slack: channel_not_found"))
    scheduler, job, outcomes = harness(notifier)
    await scheduler.attempt(job)

    assert outcomes["dead"] == [("permanent", "slack: channel_not_found")]
    assert scheduler.next_due() is None
    assert notifier.calls == 1


async def test_gives_up_after_the_window(harness) -> None:
    """A retry that would fall past the give-up window dead-letters the job as gave_up."""
    clock = Clock()
    notifier = ScriptedNotifier(
        RetryableDeliveryError("451", retry_after=30.0), RetryableDeliveryError("451", retry_after=40.0)
    )
    scheduler, job, outcomes = harness(notifier, policy=BackoffPolicy(give_up=60.0), clock=clock)
    await scheduler.attempt(job)
    clock.now += 30.0
    scheduler.start_due()
    await scheduler.drain()

    assert outcomes["dead"] == [("gave_up", "451")]
    assert scheduler.next_due() is None


async def test_a_give_up_whose_dead_letter_cannot_be_sent_is_reported_to_on_failure(make_alert) -> None:
    """The gave_up dead letter failing (the broker) leaves the alert unsettled: on_failure hears of it (the
    notifier stops there) instead of the exception vanishing with its task."""
    clock = Clock()
    failures: list[BaseException] = []

    async def delivered(job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        raise AssertionError("not delivered")

    async def dead(job: DeliveryJob, reason: str, detail: str) -> None:
        raise RuntimeError("broker unavailable")

    scheduler = RetryScheduler(BackoffPolicy(give_up=60.0), delivered, dead, clock=clock, rng=random.Random(7))
    scheduler.on_failure = failures.append
    notifier = ScriptedNotifier(
        RetryableDeliveryError("451", retry_after=30.0), RetryableDeliveryError("451", retry_after=40.0)
    )
    job = DeliveryJob("csm/slack", notifier, Notification("csm", (make_alert(),), "g"))
    await scheduler.attempt(job)
    clock.now += 30.0
    scheduler.start_due()
    await scheduler.drain()
    await asyncio.sleep(0)
    assert [str(e) for e in failures] == ["broker unavailable"]


async def test_repeated_unexpected_errors_are_dead_lettered_not_retried_for_an_hour(harness) -> None:
    """A channel that keeps raising a non-delivery error is dead-lettered (unexpected_error) after 3 attempts."""
    clock = Clock()
    scheduler, job, outcomes = harness(ScriptedNotifier(*[KeyError("bug")] * 5), clock=clock)
    for _ in range(3):
        await scheduler.attempt(job)
        clock.now += 100.0
    assert outcomes["delivered"] == []
    assert [reason for reason, _ in outcomes["dead"]] == ["unexpected_error"]
    assert job.attempts == 3


class HangingNotifier(ScriptedNotifier):
    """An email server that takes the connection and does not answer until ``release`` is set."""

    receiver_type = "email"

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def send(self, notification: Notification) -> DeliveryReceipt:
        self.calls += 1
        await self.release.wait()
        return DeliveryReceipt(receiver=notification.receiver, ref="<id@preempt>")


def _recording(**limits: int) -> tuple[RetryScheduler, list[str]]:
    """A scheduler whose deliveries append their target to the returned list (a dead letter fails the test)."""
    delivered: list[str] = []

    async def on_delivered(job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        delivered.append(job.target)

    async def dead(job: DeliveryJob, reason: str, detail: str) -> None:
        raise AssertionError(reason)

    return RetryScheduler(BackoffPolicy(), on_delivered, dead, clock=Clock(), **limits), delivered


async def test_a_hanging_channel_does_not_hold_back_the_other_channels(make_alert) -> None:
    """Email attempts that hang fill the email slots only: a Slack message due after them goes out at once."""
    scheduler, delivered = _recording(max_in_flight=2)
    smtp = HangingNotifier()
    for n in range(3):
        scheduler.submit(DeliveryJob("mail/email", smtp, Notification("mail", (make_alert(),), f"g{n}")))
    scheduler.submit(DeliveryJob("chat/slack", ScriptedNotifier(), Notification("chat", (make_alert(),), "s")))
    scheduler.start_due()
    for _ in range(20):
        await asyncio.sleep(0)

    assert (delivered, smtp.calls) == (["chat/slack"], 2)
    smtp.release.set()
    await scheduler.drain()
    assert sorted(delivered) == ["chat/slack", "mail/email", "mail/email", "mail/email"]


async def test_after_stop_starting_the_attempts_in_flight_finish_and_no_new_one_starts(make_alert) -> None:
    """A graceful stop lets the attempts talking to a channel finish (and be recorded); jobs waiting for a
    slot, and jobs due later, are not attempted: they stay unsettled for the restart."""
    delivered: list[str] = []

    async def on_delivered(job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        delivered.append(job.notification.group_key)

    async def dead(job: DeliveryJob, reason: str, detail: str) -> None:
        raise AssertionError(reason)

    clock = Clock()
    scheduler = RetryScheduler(BackoffPolicy(), on_delivered, dead, clock=clock, max_in_flight=1)
    smtp = HangingNotifier()
    scheduler.submit(DeliveryJob("mail/email", smtp, Notification("mail", (make_alert(),), "in-flight")))
    scheduler.submit(DeliveryJob("mail/email", smtp, Notification("mail", (make_alert(),), "waiting")))
    scheduler.submit(DeliveryJob("mail/email", smtp, Notification("mail", (make_alert(),), "later")), clock.now + 5)
    scheduler.start_due()
    await asyncio.sleep(0)
    assert (smtp.calls, scheduler.in_flight()) == (1, 2)

    scheduler.stop_starting()
    smtp.release.set()
    await scheduler.drain()
    clock.now += 10
    assert scheduler.start_due() == 0
    assert (delivered, smtp.calls, scheduler.in_flight()) == (["in-flight"], 1, 0)


class HangingWebhook(HangingNotifier):
    """A Slack webhook that takes every request and answers none until released."""

    receiver_type = "slack"

    def __init__(self, url_key: str) -> None:
        super().__init__()
        self.url_key = url_key

    def destination(self, notification: Notification) -> str:
        return self.url_key


class Webhook(ScriptedNotifier):
    """A Slack webhook that answers at once."""

    def __init__(self, url_key: str) -> None:
        super().__init__()
        self.url_key = url_key

    def destination(self, notification: Notification) -> str:
        return self.url_key


async def test_a_hanging_webhook_holds_back_its_own_deliveries_only(make_alert) -> None:
    """Slots are per destination, not per channel type: webhook attempts that hang fill that webhook's
    slots, and a message to another Slack webhook due after them goes out at once."""
    scheduler, delivered = _recording(max_in_flight=2)
    hook = HangingWebhook("webhook:aaaa")
    for n in range(3):
        scheduler.submit(DeliveryJob("ops/slack", hook, Notification("ops", (make_alert(),), f"g{n}")))
    scheduler.submit(DeliveryJob("team-b/slack", Webhook("webhook:bbbb"), Notification("team-b", (make_alert(),), "b")))
    scheduler.start_due()
    for _ in range(20):
        await asyncio.sleep(0)

    assert (delivered, hook.calls) == (["team-b/slack"], 2)
    hook.release.set()
    await scheduler.drain()
    assert sorted(delivered) == ["ops/slack", "ops/slack", "ops/slack", "team-b/slack"]


async def test_attempts_in_flight_are_bounded_for_the_whole_process_too(make_alert) -> None:
    """Per-destination slots do not make concurrency unbounded: with many hanging destinations the
    process-wide bound holds, and the slots of destinations no attempt uses any more are forgotten."""
    scheduler, delivered = _recording(max_in_flight=2, max_in_flight_total=3)
    hooks = [HangingWebhook(f"webhook:{n}") for n in range(3)]
    for n, hook in enumerate(hooks):
        for m in range(2):
            scheduler.submit(DeliveryJob(f"r{n}/slack", hook, Notification(f"r{n}", (make_alert(),), f"g{n}{m}")))
    scheduler.start_due()
    for _ in range(20):
        await asyncio.sleep(0)

    assert sum(h.calls for h in hooks) == 3
    for hook in hooks:
        hook.release.set()
    await scheduler.drain()
    assert len(delivered) == 6
    assert scheduler.destinations() == 0


async def test_giving_up_on_recipients_refused_for_now_records_what_the_others_got(
    make_alert: Callable[..., Alert],
) -> None:
    """A message some recipients took and others kept refusing for now (PartlyDeliveredError) is, at the
    give-up, delivered with those alerts refused (dead-lettered ``recipients_refused`` by the caller), not
    dead-lettered ``gave_up``, which a replay would send again to the recipients who have it."""
    from alerts.channels.base import PartlyDeliveredError

    clock = Clock()
    refused = (("a1", "email RCPT: 1 recipient refused for now"),)
    receipt = DeliveryReceipt(receiver="finance", ref="<m@preempt>", refused=refused)
    partly = PartlyDeliveredError("email RCPT: 1 recipient refused for now", receipt=receipt)
    notifier = ScriptedNotifier(*[partly] * 20)
    delivered: list[DeliveryReceipt] = []
    dead: list[str] = []

    async def on_delivered(job: DeliveryJob, got: DeliveryReceipt) -> None:
        delivered.append(got)

    async def on_dead(job: DeliveryJob, reason: str, detail: str) -> None:
        dead.append(reason)

    scheduler = RetryScheduler(
        BackoffPolicy(initial=1.0, maximum=8.0, give_up=30.0), on_delivered, on_dead, clock=clock, rng=random.Random(3)
    )
    job = DeliveryJob("finance/email", notifier, Notification("finance", (make_alert(),), "g"))
    while not delivered and not dead and notifier.calls < 20:
        await scheduler.attempt(job)
        clock.now += 10.0
        await scheduler.drain()

    assert (delivered, dead) == ([receipt], [])
    assert notifier.calls < 20


async def test_a_destination_refusing_every_message_is_retried_and_logged_once_per_episode(
    harness, make_alert: Callable[..., Alert]
) -> None:
    """SMTP 535 (a rotated password) is the destination's failure, not the alert's: each alert is retried with
    backoff, not dead-lettered; one ERROR for the episode (naming the server and what to fix), however many
    attempts and alerts fail; the first delivery after it is one INFO, and the alerts are delivered."""
    from structlog.testing import capture_logs

    from alerts.channels.email import classify_smtp

    def auth_failed() -> Exception:
        return classify_smtp(535, "Authentication", "5.7.8 Authentication credentials invalid", "smtp.example.com:587")

    clock = Clock()
    notifier = ScriptedNotifier(auth_failed(), auth_failed(), auth_failed())
    scheduler, job, outcomes = harness(notifier, clock=clock)
    other = DeliveryJob("csm/slack", notifier, Notification("csm", (make_alert(),), "g2"))
    with capture_logs() as logs:
        await scheduler.attempt(job)
        await scheduler.attempt(other)
        assert scheduler.outages.failing() == ("SMTP server smtp.example.com:587",)
        clock.now += 10.0
        scheduler.start_due()
        await scheduler.drain()
        assert scheduler.held() == 1  # ``other`` waits for ``job``, the breaker's probe
        clock.now += 20.0
        scheduler.start_due()
        await scheduler.drain()
        scheduler.start_due()  # the probe's success released ``other``: due now
        await scheduler.drain()

    assert outcomes["dead"] == []
    assert len(outcomes["delivered"]) == 2
    assert notifier.calls == 5
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["destination"] == "SMTP server smtp.example.com:587"
    assert "authentication failed" in errors[0]["fix"]
    assert "PREEMPT_SMTP_PASSWORD" in errors[0]["fix"]
    assert "SMTP 535" in errors[0]["error"]
    back = [e for e in logs if e["event"] == "delivery destination takes messages again"]
    assert [(e["destination"], e["failed_attempts"]) for e in back] == [("SMTP server smtp.example.com:587", 3)]
    assert scheduler.outages.failing() == ()


async def test_a_destination_failing_until_the_give_up_window_is_dead_lettered_gave_up(harness) -> None:
    """A revoked Slack token that is never fixed: retried until the give-up window, then ``gave_up`` (replayable
    once fixed), its error saying what to fix."""
    from alerts.channels.slack import classify

    clock = Clock()
    notifier = ScriptedNotifier(*[classify("slack chat.postMessage", 200, "token_revoked", None) for _ in range(20)])
    scheduler, job, outcomes = harness(
        notifier, policy=BackoffPolicy(initial=1.0, maximum=8.0, give_up=20.0), clock=clock
    )
    await scheduler.attempt(job)
    for _ in range(10):
        clock.now += 8.0
        scheduler.start_due()
        await scheduler.drain()
    [(reason, detail)] = outcomes["dead"]
    assert reason == "gave_up"
    assert "token_revoked" in detail
    assert "PREEMPT_SLACK_BOT_TOKEN" in detail
    assert notifier.calls > 2


class FailingDestination(ScriptedNotifier):
    """An SMTP server refusing the login (535) to ``failures`` attempts, then taking every message; it counts
    the attempts that reached it (a real server would count these failed logins against the account)."""

    receiver_type = "email"

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def send(self, notification: Notification) -> DeliveryReceipt:
        from alerts.channels.email import classify_smtp

        self.calls += 1
        await asyncio.sleep(0)  # the network: the other deliveries due start meanwhile
        if self.calls <= self.failures:
            raise classify_smtp(535, "Authentication", "5.7.8 Authentication credentials invalid", "smtp:587")
        return DeliveryReceipt(receiver=notification.receiver, ref=f"<{self.calls}@preempt>")

    def destination(self, notification: Notification) -> str:
        return "smtp:587"


def _jobs(notifier: ScriptedNotifier, make_alert: Callable[..., Alert], count: int) -> list[DeliveryJob]:
    return [
        DeliveryJob(f"csm{n}/email", notifier, Notification(f"csm{n}", (make_alert(),), f"g{n}")) for n in range(count)
    ]


async def _run_for(scheduler: RetryScheduler, clock: Clock, seconds: float, step: float = 0.25) -> None:
    """Advance the fake clock by ``step`` up to ``seconds``, starting what is due and letting it finish."""
    end = clock.now + seconds
    while clock.now < end:
        scheduler.start_due()
        await scheduler.drain()
        clock.now += step
    scheduler.start_due()
    await scheduler.drain()


async def test_a_failing_destination_is_probed_by_one_delivery_and_the_held_ones_go_out_once_after(
    harness, make_alert: Callable[..., Alert]
) -> None:
    """30 deliveries to an SMTP server refusing the login: after the first wave (those in flight together) only
    one delivery at a time tries it, at the backoff; none is dead-lettered; once the probe gets through, every
    held delivery goes out at once, each once, and the breaker is closed."""
    clock = Clock()
    notifier = FailingDestination(failures=10**6)
    scheduler, _job, outcomes = harness(notifier, BackoffPolicy(initial=1.0, maximum=8.0, give_up=600.0), clock)
    for job in _jobs(notifier, make_alert, 30):
        scheduler.submit(job)
    scheduler.start_due()
    await scheduler.drain()
    first_wave = notifier.calls
    # 30 due at once: 16 (the destination's slots) try it before the first failure is known; the other 14
    # find the breaker open when they get a slot, and wait without trying.
    assert first_wave == MAX_IN_FLIGHT_PER_DESTINATION
    assert scheduler.breakers() == ("SMTP server smtp:587",)
    assert scheduler.held() == 29

    await _run_for(scheduler, clock, 60.0)
    probes = notifier.calls - first_wave
    # Backoff 1, 2, 4, 8, 8, … s (jitter: at least half): one probe at a time, about 9-15 in a minute.
    assert 5 <= probes <= 20, probes
    assert outcomes == {"delivered": [], "dead": []}
    assert scheduler.held() == 29

    notifier.failures = notifier.calls  # the password works again
    await _run_for(scheduler, clock, 10.0)
    assert len(outcomes["delivered"]) == 30
    assert notifier.calls - first_wave - probes == 30  # the probe once more, and each held delivery once
    assert outcomes["dead"] == []
    assert scheduler.breakers() == ()
    assert scheduler.held() == 0
    assert scheduler.pending() == 0


async def test_held_deliveries_are_dead_lettered_at_their_give_up_window_not_before(
    harness, make_alert: Callable[..., Alert]
) -> None:
    """A destination that never works again: the held deliveries are dead-lettered ``gave_up`` when their own
    give-up window ends (not tried), never before; the probe's own give-up hands the role on."""
    clock = Clock()
    notifier = FailingDestination(failures=10**6)
    scheduler, _job, outcomes = harness(notifier, BackoffPolicy(initial=1.0, maximum=8.0, give_up=60.0), clock)
    for job in _jobs(notifier, make_alert, 3):
        scheduler.submit(job)
    scheduler.start_due()
    await scheduler.drain()
    await _run_for(scheduler, clock, 50.0)
    assert outcomes["dead"] == []
    await _run_for(scheduler, clock, 20.0)
    assert [reason for reason, _ in outcomes["dead"]] == ["gave_up"] * 3
    assert all("SMTP 535" in detail for _, detail in outcomes["dead"])
    assert scheduler.pending() == 0


async def test_a_probe_dead_lettered_for_its_own_message_hands_the_role_to_a_held_delivery(
    harness, make_alert: Callable[..., Alert]
) -> None:
    """The probe's own message is refused for good (one bad address): it is dead-lettered and a held delivery
    probes at once (it is not left waiting for its give-up window); it gets through and releases the rest."""
    from alerts.channels.email import classify_smtp

    clock = Clock()
    notifier = FailingDestination(failures=3)
    scheduler, _job, outcomes = harness(notifier, BackoffPolicy(initial=1.0, maximum=8.0, give_up=600.0), clock)
    jobs = _jobs(notifier, make_alert, 3)
    for job in jobs:
        scheduler.submit(job)
    scheduler.start_due()
    await scheduler.drain()
    assert scheduler.held() == 2
    original = notifier.send

    async def refuse_probe(notification: Notification) -> DeliveryReceipt:
        if notification is jobs[0].notification:
            notifier.calls += 1
            raise classify_smtp(550, "DATA", "5.1.1 No such user")
        return await original(notification)

    notifier.send = refuse_probe  # type: ignore[method-assign]
    await _run_for(scheduler, clock, 5.0)
    assert outcomes["dead"] == [("permanent", "email DATA: SMTP 550 5.1.1 No such user")]
    assert len(outcomes["delivered"]) == 2
    assert scheduler.breakers() == ()


class LoginThenSenderRefused(FailingDestination):
    """An SMTP server refusing the login (535) to the first ``failures`` attempts, then the sender (550 5.7.1
    sender not authorised: another episode, ``SMTP server smtp:587, sender cs@x``) to the next ``sender_failures``,
    then taking every message."""

    def __init__(self, failures: int, sender_failures: int) -> None:
        super().__init__(failures)
        self.sender_failures = sender_failures

    async def send(self, notification: Notification) -> DeliveryReceipt:
        from alerts.channels.email import classify_smtp

        if self.failures < self.calls + 1 <= self.failures + self.sender_failures:
            self.calls += 1
            await asyncio.sleep(0)
            raise classify_smtp(550, "SenderRefused", "5.7.1 Sender address rejected", "smtp:587", "cs@x")
        return await super().send(notification)


async def test_a_destination_whose_refusal_changes_episode_closes_the_old_breaker_and_moves_its_held_deliveries(
    harness, make_alert: Callable[..., Alert]
) -> None:
    """The probe of a server refusing the login then fails on the sender (the password was fixed, the sender is
    not allowed: another episode): the login's breaker closes (nothing fails that way any more) and its held
    deliveries wait for the sender's; once the sender is accepted they all go out at once, not at the end of
    their give-up window, and no breaker stays open."""
    clock = Clock()
    notifier = LoginThenSenderRefused(failures=1, sender_failures=1)
    scheduler, _job, outcomes = harness(notifier, BackoffPolicy(initial=1.0, maximum=8.0, give_up=600.0), clock)
    first, *others = _jobs(notifier, make_alert, 3)
    scheduler.submit(first)
    scheduler.start_due()
    await scheduler.drain()
    for job in others:
        scheduler.submit(job)
    scheduler.start_due()
    await scheduler.drain()
    assert scheduler.breakers() == ("SMTP server smtp:587",)
    assert scheduler.held() == 2
    await _run_for(scheduler, clock, 30.0)
    assert len(outcomes["delivered"]) == 3, outcomes
    assert notifier.calls == 5  # the probe thrice (login, sender, through), each held delivery once
    assert scheduler.breakers() == ()
    assert scheduler.outages.failing() == ()
    assert scheduler.held() == 0


class TwoSenders(FailingDestination):
    """One SMTP server, two receivers with their own ``from`` (csm-a… sends as a@x, csm-b… as b@x): the slots'
    and breakers' keys differ by sender, the login's episode (``SMTP server smtp:587``) is shared. ``script``:
    what each notification's attempts get until ``fixed`` ("login": 535, "sender": 550 5.7.1), then delivered."""

    def __init__(self, script: dict[str, str]) -> None:
        super().__init__(failures=0)
        self.script = script
        self.fixed = False

    async def send(self, notification: Notification) -> DeliveryReceipt:
        from alerts.channels.email import classify_smtp

        self.calls += 1
        await asyncio.sleep(0)
        mode = "ok" if self.fixed else self.script[notification.group_key]
        sender = f"{notification.receiver[-1]}@x"
        if mode == "login":
            raise classify_smtp(535, "Authentication", "5.7.8 Authentication credentials invalid", "smtp:587", sender)
        if mode == "sender":
            raise classify_smtp(550, "SenderRefused", "5.7.1 Sender address rejected", "smtp:587", sender)
        return DeliveryReceipt(receiver=notification.receiver, ref=f"<{notification.group_key}@preempt>")

    def destination(self, notification: Notification) -> str:
        return f"smtp:587 from {notification.receiver[-1]}@x"


async def test_a_probe_whose_destination_moved_to_another_episode_does_not_keep_the_old_breaker_closed_to_others(
    harness, make_alert: Callable[..., Alert]
) -> None:
    """In flight together: a@x's first delivery fails the login (it probes the login's breaker), b@x's too (held),
    a@x's second fails on the sender (a@x moves to the sender's episode, and its first delivery with it). The
    login's breaker is then probed by b@x's delivery at once — not by a@x's, which tries the sender's episode
    now, nor by nobody until b@x's give-up window dead-letters it untried; once the server takes them, all go."""
    clock = Clock()
    notifier = TwoSenders({"a0": "login", "b0": "login", "a1": "sender"})
    scheduler, _job, outcomes = harness(notifier, BackoffPolicy(initial=1.0, maximum=8.0, give_up=600.0), clock)
    for receiver, group in (("csm-a", "a0"), ("csm-b", "b0"), ("csm-a", "a1")):
        scheduler.submit(DeliveryJob(f"{receiver}/email", notifier, Notification(receiver, (make_alert(),), group)))
    scheduler.start_due()
    await scheduler.drain()
    assert scheduler.breakers() == ("SMTP server smtp:587", "SMTP server smtp:587, sender a@x")
    await _run_for(scheduler, clock, 3.0)
    notifier.fixed = True
    await _run_for(scheduler, clock, 30.0)
    assert sorted(outcomes["delivered"]) == ["<a0@preempt>", "<a1@preempt>", "<b0@preempt>"], outcomes
    assert outcomes["dead"] == []
    assert scheduler.breakers() == ()
    assert scheduler.held() == 0


class BotChannels(ScriptedNotifier):
    """Slack with a bot token: a channel per notification (its group key); the channels in ``refusing`` answer
    ``token_revoked`` (the token's episode), the others take the message. It names the token's episode as
    shared by every channel, as ``SlackNotifier`` does."""

    def __init__(self, *refusing: str) -> None:
        super().__init__()
        self.refusing = set(refusing)
        self.posted: list[str] = []

    async def send(self, notification: Notification) -> DeliveryReceipt:
        from alerts.channels.slack import classify

        self.calls += 1
        await asyncio.sleep(0)
        if notification.group_key in self.refusing:
            raise classify("slack chat.postMessage", 200, "token_revoked", None)
        self.posted.append(notification.group_key)
        return DeliveryReceipt(receiver=notification.receiver, ref=f"{notification.group_key}:1.0")

    def destination(self, notification: Notification) -> str:
        return f"bot:{notification.group_key}"

    def episodes(self, notification: Notification) -> tuple[str, ...]:
        from alerts.channels.slack import BOT_TOKEN_EPISODE

        return (BOT_TOKEN_EPISODE,)


async def test_a_delivery_to_a_channel_never_seen_failing_closes_the_tokens_breaker_and_releases_the_held(
    harness, make_alert: Callable[..., Alert]
) -> None:
    """The token's breaker opened on channel C1's failure (one probe, one held); the token is fixed and a delivery
    to channel C2 (never seen failing, so not held) goes through first: that proves the token, so the breaker
    closes and the held delivery is due at once, not at the probe's next backoff (before: it waited for it)."""
    clock = Clock()
    notifier = BotChannels("C1")
    scheduler, _job, outcomes = harness(notifier, BackoffPolicy(initial=60.0, maximum=300.0, give_up=3600.0), clock)
    held = [DeliveryJob(f"csm{n}/slack", notifier, Notification(f"csm{n}", (make_alert(),), "C1")) for n in range(2)]
    for job in held:
        scheduler.submit(job)
    scheduler.start_due()
    await scheduler.drain()
    assert scheduler.breakers() == ("Slack Web API (PREEMPT_SLACK_BOT_TOKEN)",)
    assert scheduler.held() == 1

    notifier.refusing.clear()  # the token works again
    scheduler.submit(DeliveryJob("other/slack", notifier, Notification("other", (make_alert(),), "C2")))
    await _run_for(scheduler, clock, 1.0)
    assert scheduler.breakers() == ()
    # The held one and the probe at once (the probe's backoff, 30 s or more, was the token's failure's).
    assert notifier.posted == ["C2", "C1", "C1"]
    assert len(outcomes["delivered"]) == 3
    assert scheduler.held() == 0
    assert scheduler.outages.failing() == ()


class RelinkedDestination(ScriptedNotifier):
    """An SMTP server that first refuses the sender (its own episode), then the login (the server's episode), then
    takes every message: the same destination key moves from one episode to the other."""

    receiver_type = "email"

    def __init__(self) -> None:
        super().__init__()
        self.script: list[int] = [553, 553, 535]

    async def send(self, notification: Notification) -> DeliveryReceipt:
        from alerts.channels.email import classify_smtp

        self.calls += 1
        await asyncio.sleep(0)
        if self.script:
            code = self.script.pop(0)
            if code == 553:
                raise classify_smtp(553, "MAIL", "5.7.1 Sender address rejected", "smtp:587", "alerts@example.com")
            raise classify_smtp(535, "Authentication", "5.7.8 Authentication credentials invalid", "smtp:587")
        return DeliveryReceipt(receiver=notification.receiver, ref=f"<{self.calls}@preempt>")

    def destination(self, notification: Notification) -> str:
        return "smtp:587 from alerts@example.com"


async def test_a_probe_that_gets_through_closes_every_breaker_it_probes(
    harness, make_alert: Callable[..., Alert]
) -> None:
    """The probe's destination moved to another episode (the sender refused, then the login): its success closes
    both breakers, so the delivery held by the first one goes out at once (before: it stayed held until its
    give-up window, an hour, and the first breaker stayed open)."""
    clock = Clock()
    notifier = RelinkedDestination()
    scheduler, _job, outcomes = harness(notifier, BackoffPolicy(initial=1.0, maximum=2.0, give_up=3600.0), clock)
    for job in _jobs(notifier, make_alert, 2):
        scheduler.submit(job)
    scheduler.start_due()
    await scheduler.drain()
    assert scheduler.breakers() == ("SMTP server smtp:587, sender alerts@example.com",)
    assert scheduler.held() == 1
    await _run_for(scheduler, clock, 10.0)
    assert notifier.script == []
    assert len(outcomes["delivered"]) == 2
    assert scheduler.breakers() == ()
    assert scheduler.held() == 0
    assert scheduler.outages.failing() == ()


async def test_a_bug_before_an_attempt_stops_the_process_instead_of_losing_the_delivery(
    make_alert: Callable[..., Alert],
) -> None:
    """A failure in the loop's own checks before an attempt (here the ownership check raising) is reported to
    ``on_failure`` (the notifier stops; the unsettled alert is re-read after the restart). Before, the task
    died with the exception unread: the delivery was never attempted nor settled, its partition's commits
    waited for it for good, and nothing said so."""
    failures: list[BaseException] = []

    async def delivered(job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        pass

    async def dead(job: DeliveryJob, reason: str, detail: str) -> None:
        pass

    def owned(job: DeliveryJob) -> DeliveryJob | None:
        raise RuntimeError("bug in the ownership check")

    scheduler = RetryScheduler(BackoffPolicy(), delivered, dead, clock=Clock(), owned=owned)
    scheduler.on_failure = failures.append
    scheduler.submit(DeliveryJob("csm/slack", ScriptedNotifier(), Notification("csm", (make_alert(),), "g")))
    scheduler.start_due()
    await scheduler.drain()
    assert [str(exc) for exc in failures] == ["bug in the ownership check"]


async def test_a_retry_after_that_is_not_a_number_backs_off_and_does_not_stop_the_queue(
    make_alert: Callable[..., Alert],
) -> None:
    """A channel answering ``retry_after=nan`` (a hint it could not read) is retried at the backoff, and the
    other destinations' deliveries go out as they come due. Before, the NaN due time sat at the head of the
    queue, never due and never overtaken: no delivery to any destination started again."""
    clock = Clock()
    sent: list[str] = []

    async def delivered(job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        sent.append(job.target)

    async def dead(job: DeliveryJob, reason: str, detail: str) -> None:
        sent.append(f"dead {job.target}")

    scheduler = RetryScheduler(
        BackoffPolicy(initial=1.0, maximum=4.0, give_up=600.0), delivered, dead, clock=clock, rng=random.Random(3)
    )
    odd = ScriptedNotifier(RetryableDeliveryError("slack: HTTP 503", retry_after=float("nan")))
    scheduler.submit(DeliveryJob("odd/slack", odd, Notification("odd", (make_alert(),), "g1")))
    await _run_for(scheduler, clock, 0.5)
    scheduler.submit(DeliveryJob("other/slack", ScriptedNotifier(), Notification("other", (make_alert(),), "g2")))
    await _run_for(scheduler, clock, 5.0)
    assert sorted(sent) == ["odd/slack", "other/slack"]
    assert odd.calls == 2
    assert scheduler.pending() == 0


def _b1_revoked_in_flight(clock: Clock) -> tuple[RetryScheduler, list[str]]:
    """A scheduler (give-up 600 s) whose delivery ``b1`` is revoked by a rebalance during its attempt, and the
    outcomes it records in order: a receipt's ref, or ``<reason> <group key>`` for a dead letter."""
    outcomes: list[str] = []

    async def on_delivered(job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        outcomes.append(receipt.ref)

    async def on_dead(job: DeliveryJob, reason: str, detail: str) -> None:
        outcomes.append(f"{reason} {job.notification.group_key}")

    def owned(job: DeliveryJob) -> DeliveryJob | None:
        return None if job.notification.group_key == "b1" and job.attempts else job

    policy = BackoffPolicy(initial=1.0, maximum=8.0, give_up=600.0)
    scheduler = RetryScheduler(policy, on_delivered, on_dead, clock=clock, rng=random.Random(7), owned=owned)
    return scheduler, outcomes


async def test_a_delivery_failing_a_breaker_whose_probe_moved_to_another_episode_probes_it_not_waits(
    make_alert: Callable[..., Alert],
) -> None:
    """In flight together: a@x's first delivery fails the login (it probes the login's breaker), b@x's first too
    (its partition revoked meanwhile: dropped), a@x's second fails on the sender (a@x moves to the sender's
    episode, and its first delivery with it; b@x keeps the login's breaker open), then b@x's second fails the
    login. That one probes the login's breaker — a@x's delivery probes the sender's episode now — so once the
    login is fixed it goes out at the next backoff, though a@x's sender stays refused. Before, it was held by
    the stale probe for its whole give-up window (600 s here, an hour by default)."""
    clock = Clock()
    scheduler, delivered = _b1_revoked_in_flight(clock)
    notifier = TwoSenders({"a0": "login", "b1": "login", "a1": "sender", "b0": "login"})
    for receiver, group in (("csm-a", "a0"), ("csm-b", "b1"), ("csm-a", "a1"), ("csm-b", "b0")):
        scheduler.submit(DeliveryJob(f"{receiver}/email", notifier, Notification(receiver, (make_alert(),), group)))
    scheduler.start_due()
    await scheduler.drain()
    assert scheduler.breakers() == ("SMTP server smtp:587", "SMTP server smtp:587, sender a@x")
    notifier.script = {"a0": "sender", "a1": "sender", "b0": "ok"}  # the login fixed; a@x still refused
    await _run_for(scheduler, clock, 30.0)
    assert delivered == ["<b0@preempt>"]
    assert scheduler.breakers() == ("SMTP server smtp:587, sender a@x",)


class SendersWithBadRecipients(TwoSenders):
    """``TwoSenders`` whose script may also say "permanent": the recipient refused for good (550 5.1.1)."""

    async def send(self, notification: Notification) -> DeliveryReceipt:
        from alerts.channels.email import classify_smtp

        if self.script.get(notification.group_key) == "permanent":
            self.calls += 1
            await asyncio.sleep(0)
            raise classify_smtp(550, "RCPT", "5.1.1 User unknown", "smtp:587", f"{notification.receiver[-1]}@x")
        return await super().send(notification)


async def test_a_delivery_dead_lettered_while_it_probes_two_breakers_passes_both_roles_on(
    make_alert: Callable[..., Alert],
) -> None:
    """a@x's first delivery probes the login's breaker, then (a@x moved to the sender's episode by its second
    delivery, b@x's revoked one keeping the login's open) the sender's too once that second one is dead-lettered;
    then it is dead-lettered itself. A later delivery to a@x probes the sender's breaker at once and, the sender
    accepted now, goes out. Before, only the login's breaker lost its dead probe: the sender's kept it, and every
    later a@x delivery was held for its whole give-up window, then dead-lettered untried."""
    clock = Clock()
    scheduler, outcomes = _b1_revoked_in_flight(clock)
    notifier = SendersWithBadRecipients({"a0": "login", "b1": "login", "a1": "sender"})
    for receiver, group in (("csm-a", "a0"), ("csm-b", "b1"), ("csm-a", "a1")):
        scheduler.submit(DeliveryJob(f"{receiver}/email", notifier, Notification(receiver, (make_alert(),), group)))
    scheduler.start_due()
    await scheduler.drain()
    notifier.script = {"a0": "permanent", "a1": "permanent", "a2": "ok"}
    await _run_for(scheduler, clock, 5.0)
    assert sorted(outcomes) == ["permanent a0", "permanent a1"]
    scheduler.submit(DeliveryJob("csm-a/email", notifier, Notification("csm-a", (make_alert(),), "a2")))
    await _run_for(scheduler, clock, 5.0)
    assert outcomes[2:] == ["<a2@preempt>"]
    assert scheduler.held() == 0


async def test_a_job_retried_a_thousand_times_on_hints_still_backs_off_without_a_hint(harness) -> None:
    """A delivery retried 1,100 times on short Retry-After hints (a long 429 spell: each attempt counts) that then
    fails without a hint waits the capped backoff. Before, 2.0 ** 1100 overflowed: the OverflowError came out of
    the attempt as a failed bookkeeping and stopped the notifier."""
    clock = Clock()
    notifier = ScriptedNotifier(*[RetryableDeliveryError("429", retry_after=0.0)] * 1100, RetryableDeliveryError("503"))
    scheduler, job, outcomes = harness(notifier, BackoffPolicy(initial=1.0, maximum=8.0, give_up=600.0), clock)
    failures: list[BaseException] = []
    scheduler.on_failure = failures.append
    scheduler.submit(job)
    for _ in range(1101):
        scheduler.start_due()
        await scheduler.drain()
    assert failures == []
    due = scheduler.next_due()
    assert due is not None
    assert 4.0 <= due - clock.now <= 8.0
    assert job.attempts == 1101
    assert outcomes == {"delivered": [], "dead": []}


async def test_delivery_lines_name_the_alert_rule_and_account_they_are_about(make_alert) -> None:
    """Every line of a delivery's retries, give-up or permanent failure carries the alert_id, rule_id and
    account_id of its alert (DESIGN.md §9: bound where known), so an operator can follow one alert through
    the notifier's log; a digest of several alerts of one account and rule lists their ids."""
    from structlog.testing import capture_logs

    clock = Clock()
    single = make_alert(alert_id="a-tenant-7", rule_id="seats-idle", account_id="tenant-7")
    notifier = ScriptedNotifier(RetryableDeliveryError("slack: HTTP 500"), PermanentDeliveryError("slack: HTTP 404"))

    async def nothing(*_: object) -> None:
        return None

    scheduler = RetryScheduler(BackoffPolicy(initial=1.0, maximum=8.0, give_up=60.0), nothing, nothing, clock=clock)
    with capture_logs() as logs:
        await scheduler.attempt(DeliveryJob("csm/slack", notifier, Notification("csm", (single,), "g")))
        clock.now = scheduler.next_due() or clock.now
        scheduler.start_due()
        await scheduler.drain()
    lines = [line for line in logs if line["event"] in ("delivery retry scheduled", "delivery failed permanently")]
    assert [line["event"] for line in lines] == ["delivery retry scheduled", "delivery failed permanently"]
    for line in lines:
        assert (line.get("alert_id"), line.get("rule_id"), line.get("account_id")) == (
            "a-tenant-7",
            "seats-idle",
            "tenant-7",
        ), line

    from alerts.retry import job_log

    digest = (single, make_alert(alert_id="a-tenant-7b", rule_id="seats-idle", account_id="tenant-7"))
    with capture_logs() as logs:
        job_log(DeliveryJob("csm/slack", notifier, Notification("csm", digest, "g"))).warning("delivery given up")
    assert logs[0]["rule_id"] == "seats-idle"
    assert logs[0]["account_id"] == "tenant-7"
    assert logs[0]["alert_ids"] == ["a-tenant-7", "a-tenant-7b"]
    assert "alert_id" not in logs[0]
