"""From a consumed alert to deliveries: silences, inhibition, routing, grouping, quiet hours, retries.

``Dispatcher.on_alert`` is called by the Faust agent for every decoded alert with an ``ack`` callback
(the Faust event's ack; the agent's stream does not ack by itself). The alert's record is acked only
when every delivery target it routes to is settled — delivered and recorded in the delivery log (and
the changelog flushed), dead-lettered, or suppressed — so its offset never moves on past an alert that
could still be lost. ``Dispatcher.tick`` (the app's delivery loop) flushes due groups and starts due
delivery attempts.

Failure policy (docs/notifier-operations.md): nothing one alert does stops the notifier. An alert
whose routing fails (a matcher, silence, inhibition or grouping error) is dead-lettered at once with
``reason=routing_error`` and acked; one whose group cannot be flushed is dead-lettered with
``reason=dispatch_error``; a quiet-hours computation that fails sends the alert now (counted); each
target's own delivery failures are the retry scheduler's (``permanent``, ``gave_up``,
``unexpected_error``).

A replayed alert (``preempt alerts dead-letters --replay``, header ``preempt-replay``: ``alerts/replay.py``)
goes only to the targets it was dead-lettered for, each still checked against the delivery log; a
named target this routing file no longer has is dead-lettered again (``unknown_target``). It is never
an active source for ``inhibit_rules`` (it fired days ago, perhaps) and its delivery is not observed
in ``preempt_notification_latency_seconds`` (its ``emitted_at`` is the first emission's: the log line
``alert delivered`` says ``replay=true`` instead). Silences, snoozes and inhibitions active now mute
it as they mute any alert.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from alerts.channels.base import DeliveryReceipt, Notification, Notifier, PartitionedNotifier
from alerts.delivery_health import DeliveryHealth
from alerts.delivery_log import DeliveryLog, TargetLedger
from alerts.feedback import SnoozeBook
from alerts.grouping import Batch, Grouper, GroupTiming
from alerts.retry import DEFAULT_FAILING_AFTER_SECONDS, BackoffPolicy, DeliveryJob, RetryScheduler
from alerts.routing.config import QuietHours, RoutingConfig
from alerts.routing.inhibit import Inhibitor
from alerts.routing.quiet_hours import defer_until, local_time
from alerts.routing.silences import SilenceSet
from alerts.routing.tree import DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL, RouteMatch, RoutingTree
from schemas.alert import Alert
from schemas.formatting import plural
from streams.runtime.logs import get_logger
from streams.runtime.metrics import (
    ALERTS_SUPPRESSED,
    NOTIFICATION_LATENCY,
    NOTIFICATIONS,
    NOTIFICATIONS_DEAD_LETTERED,
    NOTIFIER_FALLBACKS,
)

log = get_logger(__name__)

DeadLetterSink = Callable[[Alert, str, str, str, str], Awaitable[None]]  # alert, target, receiver_type, reason, detail
ROUTING_ERROR = "routing_error"  # deciding where the alert goes failed: dead-lettered, acked
DISPATCH_ERROR = "dispatch_error"  # flushing the alert's group into deliveries failed: dead-lettered, settled
RECIPIENTS_REFUSED = "recipients_refused"  # delivered, but some recipients refused it: dead-lettered for them
UNKNOWN_TARGET = "unknown_target"  # a replay names a target this routing file does not have: dead-lettered
NO_RECEIVER = "none"  # receiver_type label of an alert dead-lettered before it reached a receiver
Flush = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Ticket:
    """One consumed alert record and the delivery targets it still waits for."""

    alert: Alert
    partition: int | None
    ack: Callable[[], object]
    outstanding: set[str] = field(default_factory=set)
    acked: bool = False
    deferred: bool = False
    muted: bool = False
    replay: bool = False  # produced again from the dead letters (alerts/replay.py)

    def settle(self, target: str | None = None) -> None:
        """Mark ``target`` settled; ack the record when nothing is outstanding any more."""
        if target is not None:
            self.outstanding.discard(target)
        if not self.outstanding and not self.acked:
            self.acked = True
            self.ack()


@dataclass(frozen=True, slots=True)
class _Route:
    """One receiver an alert routes to: its group key, targets to deliver, targets already delivered."""

    match: RouteMatch
    group_key: str
    targets: tuple[str, ...]
    delivered: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where an alert goes: its routes, and the replay targets this routing file does not have."""

    routes: list[_Route]
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """An alert waiting in an aggregation group, with the targets of that receiver it still needs."""

    alert: Alert
    receiver: str
    targets: tuple[str, ...]

    def target_keys(self) -> list[tuple[str, str]]:
        """The (alert_id, target) pairs this pending alert stands for."""
        return [(self.alert.alert_id, f"{self.receiver}/{t}") for t in self.targets]


def _epoch(rfc3339: str | None) -> float | None:
    if not rfc3339:
        return None
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def alert_timezone(alert: Alert) -> str | None:
    """The zone quiet hours use for ``alert``: the account's, else its owner's (None: the file's default)."""
    return alert.account.local_timezone


class Dispatcher:
    """The notifier's decision and delivery state for the partitions this process owns."""

    def __init__(
        self,
        config: RoutingConfig,
        notifiers: dict[str, list[Notifier]],
        delivery_log: DeliveryLog,
        dead_letter: DeadLetterSink,
        flush: Flush,
        *,
        snoozes: SnoozeBook | None = None,
        policy: BackoffPolicy | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        inhibit_horizon_seconds: float = 3600.0,
        scrub: Iterable[str] = (),
        failing_after_seconds: float = DEFAULT_FAILING_AFTER_SECONDS,
        member: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """``member()``: whether the consumer group still counts this process as a member, awaited before each
        delivery attempt and before a delivery is recorded (``streams.runtime.group_membership``; None: always)."""
        self.config = config
        self._member = member
        self.tree = RoutingTree(config)
        self.silences = SilenceSet(config.silences)
        self.inhibitor = Inhibitor(config.inhibit_rules)
        self.delivery_log = delivery_log
        self.snoozes = snoozes
        # Two clocks (an NTP step of the wall clock must neither stall nor burst the delivery loop):
        # ``clock`` (wall, epoch seconds) where a time is persisted or compared with other wall times —
        # the delivery log, silences, snoozes, quiet hours, alert latency; ``monotonic`` for every wait and
        # interval — group_wait/group_interval/repeat_interval, retries and backoff, breakers, the inhibit
        # horizon — and so for the wake-up time ``tick`` returns.
        self._clock = clock
        self._monotonic = monotonic
        self._dead_letter = dead_letter
        self._flush = flush
        self._scrub = tuple(s for s in scrub if s)
        self._targets = {name: self._name_targets(chans) for name, chans in notifiers.items()}
        self._recent: deque[tuple[float, Alert]] = deque(maxlen=10_000)
        self._inhibit_horizon = inhibit_horizon_seconds
        self._waiting: dict[tuple[str, str], list[Ticket]] = {}  # (alert_id, target) → tickets
        self.grouper: Grouper[PendingAlert] = Grouper()
        self.paused = False  # True during a rebalance: nothing is sent until the assignment is known
        self.on_delivered_alert: Callable[[Alert], object] | None = None  # e.g. remember it for Slack buttons
        # A dead letter that could not be sent leaves its alert unsettled (see RetryScheduler.on_failure).
        self.on_failure: Callable[[BaseException], object] | None = None
        # A Slack message's reference (channel:ts), its alerts and the destination that posted it, so a
        # button can re-render the whole message with that receiver's templates.
        self.on_delivered_message: Callable[[str, tuple[Alert, ...], Notifier], object] | None = None
        self.scheduler = RetryScheduler(
            policy or BackoffPolicy(),
            self._delivered,
            self._dead_lettered,
            clock=monotonic,
            health=DeliveryHealth(failing_after_seconds, monotonic),
            owned=self._owned,
            member=member,
        )
        self._tasks: set[asyncio.Future[None]] = set()

    @staticmethod
    def _name_targets(channels: list[Notifier]) -> dict[str, Notifier]:
        named: dict[str, Notifier] = {}
        for channel in channels:
            name, n = channel.receiver_type, 1
            while name in named:  # a second Slack channel of the same receiver: slack#2
                n += 1
                name = f"{channel.receiver_type}#{n}"
            named[name] = channel
        return named

    def notifiers(self) -> Iterable[Notifier]:
        """Every channel of every receiver (for shutdown and Slack message updates)."""
        for targets in self._targets.values():
            yield from targets.values()

    # --- consuming ------------------------------------------------------------------------------

    def on_alert(
        self,
        alert: Alert,
        ack: Callable[[], object],
        partition: int | None = None,
        replay: tuple[str, ...] | None = None,
    ) -> None:
        """Decide what happens to one consumed alert; ``ack`` is called once it is fully settled.

        ``replay``: the targets a replayed alert was dead-lettered for (``alerts/replay.py``); it goes
        to those only (an empty tuple: a letter that named none, routed as new). None: not a replay.

        Never raises for one alert: a routing failure dead-letters it (``routing_error``) and acks it.
        """
        now = self._clock()  # wall: silences and snoozes are wall times
        ticks = self._monotonic()  # group waits and the inhibit horizon are intervals
        ticket = Ticket(alert=alert, partition=partition, ack=ack, replay=replay is not None)
        bound = log.bind(alert_id=alert.alert_id, rule_id=alert.rule_id, account_id=alert.account_id)
        if replay is not None:
            bound = bound.bind(replay=True)
        try:
            plan = self._plan(alert, now, replay)
        except Exception as exc:  # noqa: BLE001 - one alert's routing failure is that alert's (policy)
            bound.exception("alert routing failed; dead-lettered")
            self._reject(alert, ticket, ROUTING_ERROR, f"{type(exc).__name__}: {exc}")
            return
        # Every alert received is active for inhibit_rules, also one that is itself silenced or inhibited
        # (as in Alertmanager: muting an alert does not un-fire it; a silenced outage still mutes its symptoms).
        # Only alerts that can be a source are kept: a flood of others cannot push a source out of the bound.
        # A replay is not: it fired when it was first emitted, and would mute the account's alerts of now.
        if replay is None and self.inhibitor.can_inhibit(alert):
            self._recent.append((ticks, alert))
        if isinstance(plan, tuple):
            ALERTS_SUPPRESSED.labels(reason=plan[0]).inc()
            bound.info("alert suppressed", reason=plan[0], by=plan[1])
            ticket.settle()
            return
        for target in plan.unknown:
            ticket.outstanding.add(target)
            self._waiting.setdefault((alert.alert_id, target), []).append(ticket)
            NOTIFICATIONS_DEAD_LETTERED.labels(receiver_type=NO_RECEIVER, reason=UNKNOWN_TARGET).inc()
            NOTIFICATIONS.labels(receiver_type=NO_RECEIVER, outcome="dead_lettered").inc()
            detail = f"replayed for {target}, which this notifier's routing file does not have"
            self._spawn(self._send_failed_target(alert, target, detail, UNKNOWN_TARGET))
        if plan.routes and all(not route.targets and not route.delivered for route in plan.routes):
            # Every receiver it reaches has no destination (a "null" receiver, on purpose): counted
            # and logged like every other alert that is not sent.
            ALERTS_SUPPRESSED.labels(reason="no_destination").inc()
            bound.info(
                "alert not sent: its receivers have no destinations", receivers=[r.match.receiver for r in plan.routes]
            )
        for route in plan.routes:
            for target in route.delivered:
                ALERTS_SUPPRESSED.labels(reason="duplicate").inc()
                bound.info("alert already delivered", target=f"{route.match.receiver}/{target}")
            fresh: list[str] = []
            for target in route.targets:
                key = (alert.alert_id, f"{route.match.receiver}/{target}")
                ticket.outstanding.add(key[1])
                if key in self._waiting:  # the same alert is already on its way there (a re-emitted copy)
                    ALERTS_SUPPRESSED.labels(reason="duplicate").inc()
                    self._waiting[key].append(ticket)
                    continue
                self._waiting[key] = [ticket]
                fresh.append(target)
            if not fresh:
                continue
            match = route.match
            timing = GroupTiming(match.group_wait, match.group_interval, match.repeat_interval)
            pending = PendingAlert(alert, match.receiver, tuple(fresh))
            if self.grouper.add(match.receiver, route.group_key, timing, pending, ticks):
                ALERTS_SUPPRESSED.labels(reason="grouped").inc()
            bound.debug(
                "alert routed", receiver=match.receiver, group_key=route.group_key, route=" > ".join(match.path)
            )
        self.scheduler.wakeup.set()
        ticket.settle()

    def _plan(self, alert: Alert, now: float, replay: tuple[str, ...] | None = None) -> tuple[str, str] | _Plan:
        """Every decision about ``alert`` that can fail, made before any state changes: a suppression
        ``(reason, by)`` or the routes with their undelivered and already delivered targets."""
        reason = self._suppressed(alert, now)
        if reason is not None:
            return reason
        if replay:
            return self._replay_plan(alert, replay)
        routes: list[_Route] = []
        seen: set[str] = set()
        for match in self.tree.match(alert):
            if match.receiver in seen:
                continue
            seen.add(match.receiver)
            routes.append(
                self._route(alert, match, self.tree.group_key(alert, match), self._targets.get(match.receiver, {}))
            )
        return _Plan(routes)

    def _route(self, alert: Alert, match: RouteMatch, group_key: str, wanted: Iterable[str]) -> _Route:
        """``match``'s route with the ``wanted`` targets split by the delivery log: to send, already delivered."""
        targets: list[str] = []
        delivered: list[str] = []
        for target in wanted:
            done = self.delivery_log.delivered(alert.account_id, alert.alert_id, f"{match.receiver}/{target}")
            (delivered if done is not None else targets).append(target)
        return _Route(match, group_key, tuple(targets), tuple(delivered))

    def _replay_plan(self, alert: Alert, wanted: tuple[str, ...]) -> _Plan:
        """A replayed alert's routes: only the targets it names, not routed again.

        Each receiver sends it on its own, at once (no group wait: it waited long enough); a target
        that no receiver here has (renamed, removed) is returned as unknown.
        """
        by_receiver: dict[str, list[str]] = {}
        unknown: list[str] = []
        for full in dict.fromkeys(wanted):
            found = next(
                (
                    (receiver, full[len(receiver) + 1 :])
                    for receiver, targets in self._targets.items()
                    if full.startswith(f"{receiver}/") and full[len(receiver) + 1 :] in targets
                ),
                None,
            )
            if found is None:
                unknown.append(full)
            else:
                by_receiver.setdefault(found[0], []).append(found[1])
        routes = []
        for receiver, targets in by_receiver.items():
            match = RouteMatch(receiver, ("...",), 0.0, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL, ("replay",))
            routes.append(self._route(alert, match, f"{receiver}|replay|{{alert_id={alert.alert_id}}}", targets))
        return _Plan(routes, tuple(unknown))

    def _reject(self, alert: Alert, ticket: Ticket, reason: str, detail: str) -> None:
        """Dead-letter ``alert`` before it reached any receiver, then ack it (the dead letter is sent first)."""
        NOTIFICATIONS_DEAD_LETTERED.labels(receiver_type=NO_RECEIVER, reason=reason).inc()
        NOTIFICATIONS.labels(receiver_type=NO_RECEIVER, outcome="dead_lettered").inc()
        self._spawn(self._send_rejection(alert, ticket, reason, detail[:500]))

    async def _send_rejection(self, alert: Alert, ticket: Ticket, reason: str, detail: str) -> None:
        for secret in self._scrub:
            detail = detail.replace(secret, "***")
        await self._dead_letter(alert, "-", NO_RECEIVER, reason, detail)
        log.warning(
            "alert dead-lettered",
            **alert.log_ids(),
            reason=reason,
            detail=detail,
        )
        ticket.settle()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("dead letter not sent; the alert stays unacked and is re-read after a restart", error=repr(exc))
            if self.on_failure is not None:
                self.on_failure(exc)

    async def drain(self) -> None:
        """Wait for dead letters being sent and deliveries in flight (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.scheduler.drain()

    def pending_deliveries(self) -> int:
        """Deliveries (alert × target) not settled yet: what the notifier holds in memory
        (``preempt_notifier_deliveries_pending``; ``alerts/intake.py`` bounds it)."""
        return len(self._waiting)

    def waiting_for(self) -> dict[str, int]:
        """What the scheduled deliveries wait for, for the intake pause's log line (one pass over the queue)."""
        scheduler = self.scheduler
        paced, held, in_flight = scheduler.paced(), scheduler.held(), scheduler.in_flight()
        return {
            "group": self.grouper.pending(),
            "pacing_slot": paced,
            "open_breaker": held,
            "retry_or_quiet_hours": scheduler.pending() - in_flight - paced - held,
            "in_flight": in_flight,
        }

    def remember_sources(self, sources: Iterable[tuple[float, Alert]]) -> int:
        """Take alerts read back from ``preempt.alerts`` as active ``inhibit_rules`` sources; returns how many
        were new here.

        ``sources``: (the record's timestamp, wall epoch seconds, the alert). An alert counts as active for the
        inhibit horizon from when it was received; one read back counts from its record's timestamp (when it
        was emitted), so a restart neither forgets a source nor makes it active longer. Sources this
        dispatcher already holds (the same ``alert_id``), older than the horizon, or that match no rule's
        source side are left out.
        """
        wall, ticks = self._clock(), self._monotonic()
        held = {alert.alert_id for _, alert in self._recent}
        added: list[tuple[float, Alert]] = []
        for stamp, alert in sources:
            age = max(wall - stamp, 0.0)
            if age >= self._inhibit_horizon or alert.alert_id in held or not self.inhibitor.can_inhibit(alert):
                continue
            held.add(alert.alert_id)
            added.append((ticks - age, alert))
        if added:
            merged = sorted([*self._recent, *added], key=lambda item: item[0])  # the horizon pops the oldest first
            self._recent = deque(merged[-(self._recent.maxlen or len(merged)) :], maxlen=self._recent.maxlen)
        return len(added)

    def _suppressed(self, alert: Alert, now: float) -> tuple[str, str] | None:
        silence = self.silences.silenced_by(alert, now)
        if silence is not None:
            return "silenced", f"silence {silence.id}: {silence.reason}"
        if self.snoozes is not None and self.snoozes.snoozed_until(alert.account_id, alert.rule_id, now) is not None:
            return "silenced", "snoozed from Slack"
        horizon = self._monotonic() - self._inhibit_horizon  # an interval: on the monotonic clock
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        active = [a for _, a in self._recent if a.alert_id != alert.alert_id]
        rule = self.inhibitor.inhibited_by(alert, active)
        if rule is not None:
            return "inhibited", rule.name or "inhibit rule"
        return None

    # --- the delivery loop ----------------------------------------------------------------------

    def tick(self) -> float | None:
        """Flush due groups into delivery jobs and start due attempts; returns the next wake-up time on the
        ``monotonic`` clock (None: nothing scheduled)."""
        if self.paused:
            return None
        now = self._monotonic()
        for batch in self.grouper.due(now):
            try:
                self._flush_batch(batch, now)
            except Exception as exc:  # one group's failure is its alerts', not the loop's
                log.exception("group flush failed; its alerts are dead-lettered", receiver=batch.receiver)
                self._fail_batch(batch, f"{type(exc).__name__}: {exc}")
        self.scheduler.start_due()
        times = [t for t in (self.grouper.next_due(), self.scheduler.next_wakeup()) if t is not None]
        return min(times) if times else None

    def _fail_batch(self, batch: Batch[PendingAlert], detail: str) -> None:
        """Dead-letter every target of every alert of a group that could not be flushed, settling each."""
        for item in batch.items:
            for _alert_id, target in item.target_keys():
                NOTIFICATIONS_DEAD_LETTERED.labels(receiver_type=NO_RECEIVER, reason=DISPATCH_ERROR).inc()
                NOTIFICATIONS.labels(receiver_type=NO_RECEIVER, outcome="dead_lettered").inc()
                self._spawn(self._send_failed_target(item.alert, target, detail[:500]))

    async def _send_failed_target(self, alert: Alert, target: str, detail: str, reason: str = DISPATCH_ERROR) -> None:
        await self._dead_letter(alert, target, NO_RECEIVER, reason, detail)
        log.warning(
            "alert dead-lettered",
            **alert.log_ids(),
            target=target,
            reason=reason,
            detail=detail,
        )
        for ticket in self._waiting.pop((alert.alert_id, target), []):
            ticket.settle(target)

    def _quiet_until(self, quiet: QuietHours, alert: Alert, now: float) -> float | None:
        """When quiet hours release ``alert``; a failure to compute it sends the alert now (counted)."""
        try:
            return defer_until(quiet, alert_timezone(alert), now)
        except Exception:  # better a notification at night than none
            NOTIFIER_FALLBACKS.labels(reason="quiet_hours_error").inc()
            log.exception(
                "quiet hours could not be computed; the alert is sent now",
                **alert.log_ids(),
            )
            return None

    def _muted_at_flush(self, item: PendingAlert, now: float) -> bool:
        """Mute a pending alert that a silence, a snooze or an inhibiting alert now covers; settle it.

        As in Alertmanager, silences and inhibitions apply when a group is flushed, not only when an
        alert arrives: a composite alert arriving while its components wait in ``group_wait`` (or in
        quiet hours) mutes them, and so does a silence or Snooze created meanwhile. A failure to
        decide sends the alert (better a notification too many than none).
        """
        try:
            found = self._suppressed(item.alert, now)
        except Exception:
            log.exception(
                "suppression check at flush failed; the alert is sent",
                **item.alert.log_ids(),
            )
            return False
        if found is None:
            return False
        reason, by = found
        settled = [(key[1], self._waiting.pop(key, [])) for key in item.target_keys()]
        first = next((tickets[0] for _target, tickets in settled if tickets), None)
        if first is not None and not first.muted:
            first.muted = True
            ALERTS_SUPPRESSED.labels(reason=reason).inc()
            log.info(
                "alert suppressed",
                alert_id=item.alert.alert_id,
                rule_id=item.alert.rule_id,
                account_id=item.alert.account_id,
                reason=reason,
                by=by,
            )
        for target, tickets in settled:
            for ticket in tickets:
                ticket.settle(target)
        return True

    def _flush_batch(self, batch: Batch[PendingAlert], now: float) -> None:
        """Send ``batch`` (``now``: the monotonic clock) but for its muted alerts and those quiet hours hold."""
        wall = self._clock()  # silences, snoozes and quiet hours are wall times
        quiet = self.config.quiet_hours
        send: list[PendingAlert] = []
        held: list[PendingAlert] = []
        hold_until: float | None = None
        for item in batch.items:
            if self._muted_at_flush(item, wall):
                continue
            until = None
            if quiet is not None and quiet.applies_to(item.alert):
                until = self._quiet_until(quiet, item.alert, wall)
            if quiet is None or until is None:
                send.append(item)
                continue
            held.append(item)
            release = now + max(until - wall, 0.0)  # the wall time quiet hours end, as a wait on the monotonic clock
            hold_until = release if hold_until is None else min(hold_until, release)
            tickets = self._waiting.get(item.target_keys()[0], [])
            if tickets and not tickets[0].deferred:
                tickets[0].deferred = True
                ALERTS_SUPPRESSED.labels(reason="quiet_hours").inc()
                log.info(
                    "alert deferred by quiet hours",
                    **item.alert.log_ids(),
                    until=local_time(quiet, alert_timezone(item.alert), until),
                )
        if held and hold_until is not None:
            self.grouper.hold(batch.receiver, batch.group_key, held, hold_until, sent_any=bool(send))
        targets = self._targets.get(batch.receiver, {})
        for target, notifier in targets.items():
            alerts = tuple(i.alert for i in send if target in i.targets)
            if not alerts:
                continue
            # A destination templated per alert (a Slack DM to each account's owner) gets one message per
            # address; each part is delivered, retried and dead-lettered on its own.
            parts = notifier.partition(alerts) if isinstance(notifier, PartitionedNotifier) else [alerts]
            for part in parts:
                full = f"{batch.receiver}/{target}"
                ledger = TargetLedger(self.delivery_log, full, self._clock)  # wall: persisted
                notification = Notification(batch.receiver, part, batch.group_key, ledger=ledger)
                self.scheduler.submit(DeliveryJob(full, notifier, notification), now)

    async def _delivered(self, job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        if self._member is not None and not await self._member():
            self._delivered_elsewhere(job, receipt)
            return
        now = self._clock()  # wall: persisted in the delivery log and compared with emitted_at
        by_account: dict[str, list[tuple[str, str, str | None]]] = {}
        for alert in job.notification.alerts:
            by_account.setdefault(alert.account_id, []).append((alert.alert_id, job.target, receipt.ref))
        for account_id, entries in by_account.items():
            self.delivery_log.record(account_id, entries, now)
        await self._flush()  # the changelog write is on the broker before any offset can move on
        if self.on_delivered_message is not None and receipt.ref and job.receiver_type == "slack":
            self.on_delivered_message(receipt.ref, job.notification.alerts, job.notifier)
        for alert in job.notification.alerts:
            # The first ticket waiting for this target is the copy that is being sent (a later copy joined it).
            tickets = self._waiting.get((alert.alert_id, job.target), [])
            replay = bool(tickets) and tickets[0].replay
            emitted = _epoch(alert.emitted_at)
            if emitted is not None and not replay:  # a replay's emitted_at is its first emission's
                NOTIFICATION_LATENCY.labels(receiver_type=job.receiver_type).observe(max(now - emitted, 0.0))
            if self.on_delivered_alert is not None:
                self.on_delivered_alert(alert)
            log.info(
                "alert delivered",
                alert_id=alert.alert_id,
                rule_id=alert.rule_id,
                account_id=alert.account_id,
                target=job.target,
                ref=receipt.ref,
                attempts=job.attempts,
                group_size=len(job.notification.alerts),
                replay=replay,
            )
        if receipt.refused:
            await self._partly_refused(job, dict(receipt.refused))
        self._settle(job)

    def _delivered_elsewhere(self, job: DeliveryJob, receipt: DeliveryReceipt) -> None:
        """A message that went out while the group dropped this process (paused past its session with the attempt in
        flight): its alerts' partitions, and their delivery records, are another notifier's now. Recorded here, the
        record — this process's older view of the account — would overwrite the new owner's newer one in the
        changelog; acked, it would move an offset this process no longer owns. Neither is done: the new owner, which
        re-read the alert, may post it again (at-least-once; docs/notifications.md, Delivery guarantees)."""
        for alert in job.notification.alerts:
            log.warning(
                "alert delivered after the consumer group dropped this notifier; not recorded here, its new owner "
                "may deliver it again",
                **alert.log_ids(),
                target=job.target,
                ref=receipt.ref,
            )

    async def _partly_refused(self, job: DeliveryJob, refused: dict[str, str]) -> None:
        """Alerts some of whose recipients refused the message (the others got it, so it is not re-sent):
        dead-lettered for the ones left out (``recipients_refused``), counted and logged, never dropped.

        Counted in ``preempt_notifications_total{outcome="dead_lettered"}`` too, as every dead letter is: the
        ``PreemptNotificationsFailing`` rule pages on it (a CSM did not get the alert)."""
        for alert in job.notification.alerts:
            detail = refused.get(alert.alert_id)
            if detail is None:
                continue
            NOTIFICATIONS_DEAD_LETTERED.labels(receiver_type=job.receiver_type, reason=RECIPIENTS_REFUSED).inc()
            NOTIFICATIONS.labels(receiver_type=job.receiver_type, outcome="dead_lettered").inc()
            await self._dead_letter_alert(job, alert, RECIPIENTS_REFUSED, detail)

    async def _dead_lettered(self, job: DeliveryJob, reason: str, detail: str) -> None:
        for alert in job.notification.alerts:
            # Recipients that have it already (an email whose other recipients kept failing) are counted first (the
            # detail is cut at 500 characters): a replay goes to the others only (the delivery log keeps each one).
            reached = self.delivery_log.recipients(alert.account_id, alert.alert_id, job.target)
            said = (
                f"already received by {plural(len(reached), 'recipient')}, a replay skips them; {detail}"
                if reached
                else detail
            )
            await self._dead_letter_alert(job, alert, reason, said)
        self._settle(job)

    async def _dead_letter_alert(self, job: DeliveryJob, alert: Alert, reason: str, detail: str) -> None:
        """One alert of ``job`` to the dead letters (configured secrets scrubbed from ``detail``), and its log line."""
        for secret in self._scrub:
            detail = detail.replace(secret, "***")
        await self._dead_letter(alert, job.target, job.receiver_type, reason, detail[:500])
        log.warning(
            "alert dead-lettered",
            **alert.log_ids(),
            target=job.target,
            reason=reason,
            detail=detail[:500],
        )

    def _settle(self, job: DeliveryJob) -> None:
        for alert in job.notification.alerts:
            for ticket in self._waiting.pop((alert.alert_id, job.target), []):
                ticket.settle(job.target)

    # --- rebalancing ----------------------------------------------------------------------------

    def _owned(self, job: DeliveryJob) -> DeliveryJob | None:
        """``job`` with only the alerts still waiting for its target here (the others' partitions were revoked),
        or None when none is (the scheduler's ``owned``)."""
        alerts = tuple(a for a in job.notification.alerts if (a.alert_id, job.target) in self._waiting)
        if not alerts:
            return None
        if len(alerts) < len(job.notification.alerts):
            job.notification = replace(job.notification, alerts=alerts)
        return job

    def retain(self, partitions: Collection[int]) -> int:
        """After a rebalance: keep the work of partitions still assigned here, forget the rest. Deliveries stay
        paused until the caller resumes them (``paused = False``) once the delivery log is recovered."""
        held = {t.partition for tickets in self._waiting.values() for t in tickets if t.partition is not None}
        return self.revoke(held - set(partitions))

    def forget_all(self) -> int:
        """The consumer group dropped this process (paused past its session): forget the work of every partition and
        every group's flush history — their alerts are re-read from the committed offsets by their next owner, this
        process too once it gets a partition back, and a group flushed here before must not hold them back for its
        group_interval (its delivery was dropped). Deliveries stay paused until the next assignment is recovered."""
        self.paused = True
        dropped = self.retain(())
        self.grouper.clear()
        return dropped

    def revoke(self, partitions: Collection[int]) -> int:
        """Forget pending work of alerts from revoked partitions (their new owner re-consumes them)."""
        gone: set[tuple[str, str]] = set()
        for key, tickets in list(self._waiting.items()):
            kept = [t for t in tickets if t.partition not in partitions]
            if kept:
                self._waiting[key] = kept
            else:
                del self._waiting[key]
                gone.add(key)
        if not gone:
            return 0
        # Queued jobs now; jobs out of the queue (in flight, waiting for a slot) when they come back.
        self.scheduler.discard(self._owned)

        self.grouper.discard(lambda item: all(key in gone for key in item.target_keys()))
        return len(gone)
