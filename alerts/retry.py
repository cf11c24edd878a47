"""The delivery worker loop: it owns every retry (notifiers never sleep or retry themselves).

A ``DeliveryJob`` is one notification for one delivery target (a receiver's Slack, email or console
channel). ``RetryScheduler`` keeps the jobs in a queue ordered by due time and runs the due ones:

* success → ``on_delivered`` (the caller records it in the delivery log, then acks);
* ``RetryableDeliveryError`` → retried after exactly ``retry_after`` when the server gave one (never
  earlier), otherwise after an exponential backoff with jitter, capped; a job whose next attempt would
  fall past the give-up window is dead-lettered instead. The window measures time spent failing: it starts
  at the job's first attempt and stops while the job waits for its channel's slot (``held``: a Slack
  channel's one-message-a-second pacing, or a channel a 429 closed). A burst of 4,000 alerts to one
  channel waits about 70 min in line; before, its last 571 (from the 3,430th: 3,600 s / 1.05 s) were
  dead-lettered ``gave_up`` at their first attempt, untried, although Slack refused none. A held job is
  never given up; the deliveries waiting for a slot are counted (:meth:`RetryScheduler.paced`) and a line
  older than the give-up window is a ``/readyz`` reason (``alerts/held_log.py``);
* ``DestinationFailingError`` (a retryable error: the destination refuses every message — a wrong SMTP
  password, a revoked Slack token) → retried the same way, and the episode logged once at ERROR with what to
  fix (``DestinationOutages``); the destination's *breaker* opens (below);
* ``PermanentDeliveryError`` → dead-lettered at once, never retried;
* any other exception (a channel bug, an unmapped error) → retried like a retryable failure, but
  dead-lettered (``unexpected_error``) after ``MAX_UNEXPECTED_ERRORS`` of them: a deterministic bug
  must not hold an alert for the whole give-up window.

Attempts in flight are bounded per destination — a Slack webhook URL, a Slack channel (bot token), the
SMTP server — and for the whole process: a destination that takes every request and never answers holds
each attempt for its timeout, and with one bound per channel type two or more hanging webhooks took every
Slack slot while the messages of every other Slack receiver queued behind them (measured: a healthy
webhook's messages waited up to 7.9 s behind four hanging ones). Each destination gets at most
``max_in_flight`` attempts at once and the process ``max_in_flight_total``: a hanging destination holds its
own slots only, until so many destinations hang at once that they fill the process's.

A breaker per failing destination (an episode of ``DestinationOutages``: the SMTP server, the Slack bot token,
a webhook). Before, each held alert retried on its own, up to 16 at once per destination: 30 alerts held by a
wrong SMTP password made 210 connections with a failed login (420 AUTH commands) in a minute — what gets an
account locked or rate-limited by a real provider; after, 18 (15 of them the first wave). While a
destination's breaker is open, one delivery — the *probe*: the first that failed — is attempted at its retry
backoff; every other delivery to it that comes due (or fails alongside the probe) is *held*: queued until
its give-up window (from its first attempt, or from when it was first held) ends, then dead-lettered
``gave_up`` without an attempt, as it would have been. The probe's success (a partial email delivery
included) closes the breaker and releases the held deliveries at once; so does any delivery through what
failed, also to a destination not seen failing yet (another channel of the same bot token: the channel names
the episodes it shares, ``EpisodeAware``), which makes the probe due at once too.
A probe dead-lettered for another reason (a permanent refusal of its own message, the give-up window)
hands the role to the held delivery queued first, at once. A destination the loop has not seen fail yet
(another Slack channel of a revoked bot token) is attempted once before its deliveries are held.
``preempt_notifier_breakers_open{receiver_type}`` counts the open breakers.

A rebalance drops the jobs of partitions that moved away (``discard``), and those out of the queue when it
came — an attempt in flight (a probe's), a wait for a slot — when they come back (``owned``): not retried,
held nor dead-lettered here (the new owner re-reads their alerts), a probe's role passed on at once.

Each attempt's outcome also goes to ``DeliveryHealth`` (``alerts/delivery_health.py``), which tells
``/readyz`` when every attempt to a target has failed for a while.

Modelled on arq's ``Retry(defer=…)``: the failure says whether and when, the loop decides.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from alerts.channels.base import (
    DeliveryReceipt,
    DestinationAware,
    EpisodeAware,
    Notification,
    Notifier,
    PartlyDeliveredError,
)
from alerts.delivery_health import DeliveryHealth, DestinationOutages
from alerts.held_log import HeldDeliveriesLog, PacedBacklog
from schemas.alert import Alert
from schemas.errors import (
    DestinationFailingError,
    NoRecipientError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from streams.runtime.logs import get_logger
from streams.runtime.metrics import (
    NOTIFICATION_RETRIES,
    NOTIFICATIONS,
    NOTIFICATIONS_DEAD_LETTERED,
    NOTIFIER_BREAKERS_OPEN,
)

log = get_logger(__name__)

MAX_UNEXPECTED_ERRORS = 3
MAX_IN_FLIGHT_PER_DESTINATION = 16
MAX_IN_FLIGHT_TOTAL = 128
DEFAULT_FAILING_AFTER_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff with jitter: attempt n waits a random time in [cap/2, cap],
    cap = min(maximum, initial * multiplier ** (n - 1)); nothing is retried past ``give_up``."""

    initial: float = 1.0
    maximum: float = 300.0
    multiplier: float = 2.0
    give_up: float = 3600.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """The delay before retry ``retry_number`` (1 = first retry) when the server gave no hint."""
        try:
            growth = self.initial * self.multiplier ** max(retry_number - 1, 0)
        except OverflowError:  # past ~1,000 retries (short Retry-After hints count too): long since capped
            growth = math.inf
        cap = min(self.maximum, growth)
        # "Equal jitter": spreads retries of many jobs apart but never retries immediately.
        return rng.uniform(cap / 2, cap)

    def next_attempt_at(
        self, retry_number: int, now: float, first_attempt_at: float, retry_after: float | None, rng: random.Random
    ) -> float | None:
        """When to try again, or None when that would be past the give-up window. A hint that is not a finite
        number counts as none: a NaN due time is never due, and at the head of the queue it held every delivery."""
        at = now + self.delay(retry_number, retry_after, rng)
        if at - first_attempt_at > self.give_up:
            return None
        return at

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait before the next attempt: the hint when it is a finite number, else the backoff."""
        if retry_after is not None and math.isfinite(retry_after):
            return max(retry_after, 0.0)
        return self.backoff(retry_number, rng)


@dataclass(slots=True)
class DeliveryJob:
    """One notification on its way to one target (``receiver/receiver_type``)."""

    target: str
    notifier: Notifier
    notification: Notification
    attempts: int = 0
    first_attempt_at: float | None = None
    unexpected_errors: int = 0
    held_by: str | None = None  # the open breaker (a failing destination's episode) it waits for
    # Time spent waiting for its channel's slot (pacing, a 429 closing the channel): not failing, so not in the
    # give-up window. ``paced_from``: when its current wait began (None: not waiting for a slot); ``paced_since``:
    # from when the current wait is not in ``paced_seconds`` yet.
    paced_seconds: float = 0.0
    paced_from: float | None = None
    paced_since: float | None = None

    def window_start(self, now: float) -> float:
        """Where its give-up window starts: its first attempt (``now`` before any), moved on by the time it spent
        waiting for its channel's slot."""
        first = self.first_attempt_at if self.first_attempt_at is not None else now
        return first + self.paced_seconds

    def count_paced(self, now: float) -> None:
        """Add its wait for a slot up to ``now`` to ``paced_seconds`` (it is out of the queue, being attempted). The
        wait itself (``paced_from``) goes on until an attempt is not held: a refusal at its slot continues it (one
        hold, logged once)."""
        if self.paced_since is not None:
            self.paced_seconds += max(now - self.paced_since, 0.0)
            self.paced_since = now

    @property
    def receiver_type(self) -> str:
        """``slack``, ``email`` or ``console``: the bounded label of the metrics."""
        return self.notifier.receiver_type


# A digest's ids listed in its delivery lines: enough to find them, never a line of a thousand ids.
MAX_LOGGED_ALERT_IDS = 20


def alert_log_fields(alerts: tuple[Alert, ...]) -> dict[str, Any]:
    """``alert_id``, ``rule_id`` and ``account_id`` of a notification's alerts, for its log lines: each one
    that all its alerts share (a single alert: all three); a digest of several also lists ``alert_ids`` (the
    first :data:`MAX_LOGGED_ALERT_IDS`) and ``alerts`` (how many)."""
    fields: dict[str, Any] = {}
    for name in ("alert_id", "rule_id", "account_id"):
        values = {getattr(alert, name) for alert in alerts}
        if len(values) == 1:
            fields[name] = values.pop()
    if len(alerts) > 1:
        fields["alert_ids"] = [alert.alert_id for alert in alerts[:MAX_LOGGED_ALERT_IDS]]
        fields["alerts"] = len(alerts)
    return fields


def job_log(job: DeliveryJob) -> Any:
    """The logger for ``job``'s lines: its target, group, attempt and its alerts' ids (:func:`alert_log_fields`)."""
    return log.bind(
        target=job.target,
        group_key=job.notification.group_key,
        attempt=job.attempts,
        **alert_log_fields(job.notification.alerts),
    )


DeliveredCallback = Callable[[DeliveryJob, DeliveryReceipt], Awaitable[None]]
DeadLetterCallback = Callable[[DeliveryJob, str, str], Awaitable[None]]
Keep = Callable[[DeliveryJob], "DeliveryJob | None"]  # a job as still wanted here (its alerts trimmed), or None


@dataclass(slots=True)
class _Slots:
    """One destination's attempts in flight, and how many attempts hold or wait for them."""

    semaphore: asyncio.Semaphore
    users: int = 0


@dataclass(slots=True)
class _Breaker:
    """An open breaker: the destination (episode) refuses every message; ``probe`` is the one delivery that
    may try it (None: the next one due takes the role)."""

    name: str
    receiver_type: str
    probe: DeliveryJob | None
    error: str


@dataclass(order=True, slots=True)
class _Entry:
    due: float
    seq: int
    job: DeliveryJob = field(compare=False)


class RetryScheduler:
    """The pending-delivery queue and the loop step that runs what is due.

    ``on_delivered(job, receipt)`` and ``on_dead_letter(job, reason, detail)`` are awaited by the
    loop; ``reason`` is a bounded code (``permanent``, ``gave_up``) and ``detail`` a message that
    never holds secrets (notifiers raise without them).
    """

    def __init__(
        self,
        policy: BackoffPolicy,
        on_delivered: DeliveredCallback,
        on_dead_letter: DeadLetterCallback,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_in_flight: int = MAX_IN_FLIGHT_PER_DESTINATION,
        max_in_flight_total: int = MAX_IN_FLIGHT_TOTAL,
        health: DeliveryHealth | None = None,
        owned: Keep | None = None,
        member: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """``owned(job)``: ``job`` with only the alerts this process still owns, or None for none (the dispatcher's:
        partitions revoked by a rebalance); asked of a job that comes back from an attempt or a wait for a slot,
        before it is retried, held, dead-lettered or attempted. Default: every job is owned. ``member()``: whether
        the consumer group still counts this process as a member, awaited right before each attempt (after a pause
        past the session it waits for the coordinator's verdict: ``streams.runtime.group_membership``)."""
        self.policy = policy
        self._owned: Keep = owned or (lambda job: job)
        self._member = member
        self._on_delivered = on_delivered
        self._on_dead_letter = on_dead_letter
        # Monotonic by default: every time here is a wait or an interval (due times, backoff, give-up, breakers),
        # never persisted nor compared with an alert's time, so a step of the wall clock (NTP) neither stalls
        # retries (a step back) nor makes every one due at once (a step forward).
        self._clock = clock
        self._rng = rng or random.Random()
        self._queue: list[_Entry] = []
        self._seq = itertools.count()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._max_in_flight = max_in_flight
        # Destination → its attempts in flight; forgotten when none holds or waits for it (a templated
        # channel can name a destination per account owner).
        self._slots: dict[str, _Slots] = {}
        self._total = asyncio.Semaphore(max_in_flight_total)
        self.health = health or DeliveryHealth(DEFAULT_FAILING_AFTER_SECONDS, clock)
        self.outages = DestinationOutages(clock)
        self.held_log = HeldDeliveriesLog(clock)
        self.backlog = PacedBacklog(policy.give_up)
        self._breakers: dict[str, _Breaker] = {}  # episode name → its open breaker
        self.wakeup = asyncio.Event()
        self._stopping = False
        # Called when a delivery's bookkeeping (its delivery record, its dead letter) could not be
        # written: the alert stays unsettled. The notifier stops the process there (a restart re-reads
        # it); left running, its partition's commits would wait for it for ever (alerts/acks.py).
        self.on_failure: Callable[[BaseException], object] | None = None

    def submit(self, job: DeliveryJob, at: float | None = None) -> None:
        """Queue ``job`` to be attempted at ``at`` (default: now)."""
        heapq.heappush(self._queue, _Entry(self._clock() if at is None else at, next(self._seq), job))
        self.wakeup.set()

    def next_due(self) -> float | None:
        """When the earliest queued job is due, or None when the queue is empty."""
        return self._queue[0].due if self._queue else None

    def next_wakeup(self) -> float | None:
        """When the delivery loop must call :meth:`start_due` next: the earliest queued job, or the summary of
        held deliveries still untold (alerts/held_log.py); None when neither."""
        times = [t for t in (self.next_due(), self.held_log.due()) if t is not None]
        return min(times) if times else None

    def pending(self) -> int:
        """Jobs queued or being attempted."""
        return len(self._queue) + len(self._in_flight)

    def in_flight(self) -> int:
        """Attempts started and not finished (with their bookkeeping)."""
        return len(self._in_flight)

    def destinations(self) -> int:
        """Destinations with attempts in flight or waiting for a slot (their slots are forgotten after)."""
        return len(self._slots)

    def discard(self, keep: Keep) -> int:
        """Rewrite queued jobs through ``keep`` (return None to drop one); returns how many were dropped.

        Jobs out of the queue — an attempt in flight (a breaker's probe, a delivery failing alongside it), one
        waiting for a slot — are not here: each is checked with ``owned`` when it comes back (:meth:`_disowned`)."""
        kept: list[_Entry] = []
        gone: list[DeliveryJob] = []
        for entry in self._queue:
            job = keep(entry.job)
            if job is not None:
                kept.append(_Entry(entry.due, entry.seq, job))
            else:
                gone.append(entry.job)
        dropped = len(self._queue) - len(kept)
        heapq.heapify(kept)
        self._queue = kept
        for job in gone:
            self._probe_gone(job)
        return dropped

    def breakers(self) -> tuple[str, ...]:
        """The destinations (episodes) whose breaker is open (tests, a debugger)."""
        return tuple(sorted(self._breakers))

    def held(self) -> int:
        """Queued deliveries held by an open breaker."""
        return sum(1 for entry in self._queue if entry.job.held_by is not None)

    def paced(self) -> int:
        """Queued deliveries waiting for their channel's slot (``preempt_notifier_deliveries_paced``)."""
        return sum(1 for entry in self._queue if entry.job.paced_from is not None)

    def paced_oldest_seconds(self) -> float:
        """How long the delivery waiting longest for its channel's slot has waited (0.0: none waits;
        ``preempt_notifier_paced_oldest_seconds``)."""
        now = self._clock()
        waits = (now - entry.job.paced_from for entry in self._queue if entry.job.paced_from is not None)
        return max(waits, default=0.0)

    def paced_backlog(self) -> tuple[str, ...]:
        """``/readyz``'s reason while a delivery has waited for its channel's slot longer than the give-up window
        (alerts/held_log.py: more alerts go to a channel than its pacing lets out); else nothing."""
        return self.backlog.check(self.paced(), self.paced_oldest_seconds())

    def stop_starting(self) -> None:
        """Start no attempt from now on, also of jobs already waiting for a slot (a graceful stop): what
        is not attempted stays unsettled and is read again after the restart. The holds counted since the
        last summary are told now."""
        self._stopping = True
        self.held_log.flush(stopping=True)

    def start_due(self) -> int:
        """Start an attempt (as a task) for every job that is due now; returns how many started. Tells the
        held deliveries' summary when it is due."""
        self.held_log.flush()
        if self._stopping:
            return 0
        now = self._clock()
        started = 0
        while self._queue and self._queue[0].due <= now:
            job = heapq.heappop(self._queue).job
            task = asyncio.ensure_future(self._run(job))
            self._in_flight.add(task)
            # An exception out of _run (a bug in its checks before the attempt) stops the process as a failed
            # bookkeeping does: left unread, the job was gone unsettled and its partition's commits waited for good.
            task.add_done_callback(self._settled_task)
            started += 1
        return started

    async def drain(self) -> None:
        """Wait for the attempts in flight (tests and shutdown)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def attempt(self, job: DeliveryJob) -> None:
        """Try ``job`` once and act on the outcome (deliver, reschedule or dead-letter)."""
        now = self._clock()
        job.count_paced(now)
        if job.first_attempt_at is None:
            job.first_attempt_at = now
        job.attempts += 1
        bound = job_log(job)
        try:
            receipt = await job.notifier.send(job.notification)
        except NoRecipientError as exc:  # the alert's data (an account without an owner): the channel works
            NOTIFICATIONS.labels(receiver_type=job.receiver_type, outcome="dead_lettered").inc()
            bound.warning("delivery has no recipient", error=str(exc))
            self._probe_gone(job)
            await self._dead_letter(job, "no_recipient", str(exc))
            return
        except PermanentDeliveryError as exc:
            self.health.failed(job.target, job.receiver_type, str(exc))
            NOTIFICATIONS.labels(receiver_type=job.receiver_type, outcome="dead_lettered").inc()
            bound.warning("delivery failed permanently", error=str(exc))
            self._probe_gone(job)
            await self._dead_letter(job, "permanent", str(exc))
            return
        except PartlyDeliveredError as exc:  # some recipients have it: the channel works
            self.health.succeeded(job.target)
            self._destination_works(job)
            self._retry(job, str(exc), exc.retry_after, partial=exc.receipt)
            return
        except DestinationFailingError as exc:  # bad credentials: the destination's fault, not the alert's
            self.health.failed(job.target, job.receiver_type, str(exc))
            key = self.destination(job)
            previous = self.outages.episode(key)
            name = self.outages.failed(key, job.target, exc)
            probes = self._probes(job, name, str(exc))
            if previous is not None and previous != name:
                self._episode_moved(job, previous)
            if probes:
                self._retry(job, str(exc), exc.retry_after)
            else:  # failed alongside the probe (in flight when the breaker opened): it waits for the probe
                self._hold(job, self._breakers[name])
            return
        except RetryableDeliveryError as exc:
            if not exc.throttled:  # a 429 or the channel's pacing says "later", not "broken"
                self.health.failed(job.target, job.receiver_type, str(exc))
            self._retry(job, str(exc), exc.retry_after, held=exc.held, throttled=exc.throttled)
            return
        except Exception as exc:  # noqa: BLE001 - a notifier bug or an unmapped I/O error: retry, never crash the loop
            bound.exception("unexpected delivery error")
            self.health.failed(job.target, job.receiver_type, f"{type(exc).__name__}: {exc}")
            job.unexpected_errors += 1
            if job.unexpected_errors >= MAX_UNEXPECTED_ERRORS:
                self._probe_gone(job)
                NOTIFICATIONS.labels(receiver_type=job.receiver_type, outcome="dead_lettered").inc()
                await self._dead_letter(job, "unexpected_error", f"{type(exc).__name__}: {exc}")
                return
            self._retry(job, f"{type(exc).__name__}: {exc}", None)
            return
        self.health.succeeded(job.target)
        self._destination_works(job)
        NOTIFICATIONS.labels(receiver_type=job.receiver_type, outcome="sent").inc()
        await self._on_delivered(job, receipt)

    def _retry(
        self,
        job: DeliveryJob,
        detail: str,
        retry_after: float | None,
        partial: DeliveryReceipt | None = None,
        *,
        held: bool = False,
        throttled: bool = False,
    ) -> None:
        """Schedule ``job`` again, or give up past the give-up window. ``held``: the notifier kept it back itself
        (a paced channel) and sent nothing, so it is not counted in ``preempt_notifications_total{outcome="retried"}``,
        which counts delivery attempts — counted, a burst to one healthy channel looked like a flaky receiver.

        A held job waits for its slot however far off it is, and the wait is not in its give-up window (nothing
        failed). One wait is one hold, logged once (alerts/held_log.py): a job refused again when it comes back
        for its slot — the one before it took its own slot some milliseconds late, and the next may not go
        within 1.05 s of it — still waits for the same slot. Before, about half the messages of a burst were
        counted twice (97 holds for 49 messages held in a unit test's burst with 0-4 ms of lateness)."""
        if self._disowned(job):
            return
        now = self._clock()
        if held:
            # Nothing was sent: not an attempt. Counted, a message held four times had its first real failure
            # backed off as a fifth retry (toward the 300 s cap), and its log lines said attempt=5.
            job.attempts = max(job.attempts - 1, 0)
            wait = self.policy.delay(job.attempts, retry_after, self._rng)
            if job.paced_from is None:  # a new wait for the channel (routine under a burst: alerts/held_log.py)
                job.paced_from = now
                self.held_log.held(job.receiver_type, job.target, round(wait, 3), retry_after)
            if job.paced_since is None:
                job.paced_since = now
            self.submit(job, now + wait)
            return
        # Until its retry it is failing (in its give-up window). A 429 (``throttled``) does not end its wait to get
        # through the channel (``paced_from``, what /readyz measures): a channel that answers every post 429 had
        # each message wait behind all the others between two of its 429s, out of its window, and the waits began
        # anew at each 429 — a line of 100 getting nothing through stayed ready, given up after 100 windows.
        job.paced_since = None
        if not throttled:
            job.paced_from = None
        at = self.policy.next_attempt_at(job.attempts, now, job.window_start(now), retry_after, self._rng)
        bound = job_log(job)
        if at is None and partial is not None:
            # Delivered to some recipients: recorded as delivered, the alerts dead-lettered for the others.
            NOTIFICATIONS.labels(receiver_type=job.receiver_type, outcome="sent").inc()
            bound.warning("delivery given up for some recipients", error=detail, give_up_seconds=self.policy.give_up)
            task = asyncio.ensure_future(self._on_delivered(job, partial))
            self._in_flight.add(task)
            task.add_done_callback(self._settled_task)
            return
        if at is None:
            self._probe_gone(job)
            NOTIFICATIONS.labels(receiver_type=job.receiver_type, outcome="dead_lettered").inc()
            bound.warning("delivery given up", error=detail, give_up_seconds=self.policy.give_up)
            task = asyncio.ensure_future(self._dead_letter(job, "gave_up", detail))
            self._in_flight.add(task)
            task.add_done_callback(self._settled_task)
            return
        NOTIFICATIONS.labels(receiver_type=job.receiver_type, outcome="retried").inc()
        NOTIFICATION_RETRIES.labels(receiver_type=job.receiver_type).inc()
        bound.info("delivery retry scheduled", error=detail, retry_in=round(at - now, 3), retry_after=retry_after)
        self.submit(job, at)

    # --- the breakers ---------------------------------------------------------------------------

    def _probes(self, job: DeliveryJob, name: str, error: str) -> bool:
        """``job`` failed against the failing destination ``name``: open its breaker (``job`` probes it) if it
        is closed; True when ``job`` is (or becomes) the probe, False when another delivery is."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = _Breaker(name, job.receiver_type, job, error)
            self._export_breakers(job.receiver_type)
            job_log(job).warning(
                "delivery breaker open: one delivery at a time probes the destination, the others wait",
                destination=name,
            )
        breaker.error = error
        if self._live_probe(breaker, job) is None:
            breaker.probe = job
        return breaker.probe is job

    def _live_probe(self, breaker: _Breaker, job: DeliveryJob) -> DeliveryJob | None:
        """``breaker``'s probe as ``job`` sees it: None when there is none, or when its destination fails another
        way now (``_episode_moved`` by another delivery to it: it probes another breaker, and this one's would
        wait for it until their give-up window)."""
        probe = breaker.probe
        if probe is not None and probe is not job and self.outages.episode(self.destination(probe)) != breaker.name:
            return None
        return probe

    def _gate(self, job: DeliveryJob) -> bool:
        """Whether ``job``, due now, may be attempted: yes unless its destination's breaker is open and another
        delivery probes it; then it is held (re-queued until its give-up window) or, past it, dead-lettered."""
        name = self.outages.episode(self.destination(job))
        breaker = self._breakers.get(name) if name is not None else None
        if breaker is None:
            job.held_by = None
            return True
        probe = self._live_probe(breaker, job)
        if probe is None or probe is job:
            breaker.probe = job
            job.held_by = None
            return True
        now = self._clock()
        if (
            job.held_by == breaker.name
            and job.first_attempt_at is not None
            and now - job.window_start(now) >= self.policy.give_up
        ):
            job.held_by = None
            NOTIFICATIONS.labels(receiver_type=job.receiver_type, outcome="dead_lettered").inc()
            detail = f"{breaker.error} (held {self.policy.give_up:.0f} s while the destination refused every message)"
            job_log(job).warning(
                "delivery given up",
                error=detail,
                give_up_seconds=self.policy.give_up,
            )
            task = asyncio.ensure_future(self._dead_letter(job, "gave_up", detail))
            self._in_flight.add(task)
            task.add_done_callback(self._settled_task)
            return False
        self._hold(job, breaker)
        return False

    def _hold(self, job: DeliveryJob, breaker: _Breaker) -> None:
        """Queue ``job`` until the end of its give-up window; the probe's success releases it before."""
        if self._disowned(job):
            return
        now = self._clock()
        if job.first_attempt_at is None:  # its give-up window starts when it is first held
            job.first_attempt_at = now
        job.held_by = breaker.name
        job.paced_from = job.paced_since = None  # waiting for the destination, not for a pacing slot: failing time
        self.submit(job, max(job.window_start(now) + self.policy.give_up, now))

    def _destination_works(self, job: DeliveryJob) -> None:
        """A delivery reached ``job``'s destination: the episodes it proves working end — its destination's, the
        ones its channel shares with other destinations (``EpisodeAware``: a Slack channel of a bot token never
        seen failing proves the token), and every breaker ``job`` probes (its destination may have been linked to
        another episode since) — their breakers close and their held jobs are due now."""
        names = self.outages.succeeded(self.destination(job), self._episodes(job))
        for breaker in [b for b in self._breakers.values() if b.probe is job]:
            self.outages.end(breaker.name)
            names.append(breaker.name)
        for name in dict.fromkeys(names):
            self._close(name)

    def _close(self, name: str) -> None:
        """Close the breaker ``name`` (if open): its held jobs are due now, and so is its probe when it waits for
        its backoff (another delivery got through first: the backoff was the destination's, not the probe's)."""
        breaker = self._breakers.pop(name, None)
        if breaker is None:
            return
        self._export_breakers(breaker.receiver_type)
        now = self._clock()
        released = 0
        for entry in self._queue:
            if entry.job.held_by == breaker.name:
                entry.job.held_by = None
                entry.due = now
                released += 1
            elif entry.job is breaker.probe and entry.due > now:
                entry.due = now
        heapq.heapify(self._queue)
        self.wakeup.set()
        log.info("delivery breaker closed: the held deliveries go out", destination=breaker.name, released=released)

    def _episode_moved(self, job: DeliveryJob, previous: str) -> None:
        """``job``'s destination was in the episode ``previous`` and fails another way now (an SMTP server that
        took the login at last and refuses the sender): ``job`` no longer probes ``previous``, whose breaker
        closes when no destination is in it any more. Its held deliveries are due now, to be held again by the
        breaker their destination is in now (or attempted, or probe ``previous`` in place of a probe that moved
        too: ``_gate``), not left waiting for a probe that never comes until their give-up window ends."""
        breaker = self._breakers.get(previous)
        if breaker is None:
            return
        if previous not in self.outages.failing():
            del self._breakers[previous]
            self._export_breakers(breaker.receiver_type)
        elif breaker.probe is job:
            breaker.probe = None
        now = self._clock()
        for entry in self._queue:
            if entry.job.held_by == previous:
                entry.due = now
        heapq.heapify(self._queue)
        self.wakeup.set()

    @staticmethod
    def _episodes(job: DeliveryJob) -> tuple[str, ...]:
        """The failing-destination episodes ``job``'s channel shares with its other destinations (none known: ())."""
        notifier = job.notifier
        if not isinstance(notifier, EpisodeAware):
            return ()
        try:
            return tuple(notifier.episodes(job.notification))
        except Exception:  # noqa: BLE001 - as destination(): the send that just went through is what counts
            log.debug("episodes of a delivery not known; its destination's only ends", target=job.target)
            return ()

    def _probe_gone(self, job: DeliveryJob) -> None:
        """``job`` will not be attempted again: for each open breaker it probed (more than one when its destination
        moved to another episode), the held delivery queued first becomes due now and takes the role."""
        for breaker in self._breakers.values():
            if breaker.probe is not job:
                continue
            breaker.probe = None
            waiting = [entry for entry in self._queue if entry.job.held_by == breaker.name]
            if waiting:
                first = min(waiting, key=lambda entry: entry.seq)
                first.due = self._clock()
                heapq.heapify(self._queue)
                self.wakeup.set()

    def _disowned(self, job: DeliveryJob) -> bool:
        """Whether ``job``'s alerts all moved to another process while it was out of the queue (its partitions were
        revoked during its attempt or its wait for a slot): then its outcome is not acted on — not retried, held
        nor dead-lettered (the new owner re-reads those alerts) — and, if it probed a breaker, a held delivery
        takes the role. ``discard`` does the same to queued jobs. The alerts it still owns stay in it."""
        if self._owned(job) is not None:
            return False
        self._probe_gone(job)
        job_log(job).info("delivery dropped: its alerts were handed over on rebalance while it was in flight")
        return True

    def _export_breakers(self, receiver_type: str) -> None:
        count = sum(1 for b in self._breakers.values() if b.receiver_type == receiver_type)
        NOTIFIER_BREAKERS_OPEN.labels(receiver_type=receiver_type).set(count)

    async def _dead_letter(self, job: DeliveryJob, reason: str, detail: str) -> None:
        if self._disowned(job):  # also when revoked between the decision and this task's start
            return
        NOTIFICATIONS_DEAD_LETTERED.labels(receiver_type=job.receiver_type, reason=reason).inc()
        await self._on_dead_letter(job, reason, detail)

    @staticmethod
    def destination(job: DeliveryJob) -> str:
        """Where ``job``'s attempt goes (its slots' key): the channel's own answer, else the target."""
        notifier = job.notifier
        if isinstance(notifier, DestinationAware):
            try:
                return f"{notifier.receiver_type}:{notifier.destination(job.notification)}"
            except Exception:  # noqa: BLE001 - a template that fails here fails again in send, which reports it
                log.debug("destination of a delivery not known; its target's slots are used", target=job.target)
        return job.target

    async def _run(self, job: DeliveryJob) -> None:
        job.count_paced(self._clock())
        key = self.destination(job)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = _Slots(asyncio.Semaphore(self._max_in_flight))
        slots.users += 1
        try:
            # Revoked since start_due, or held by its destination's breaker: no slot taken.
            if self._disowned(job) or not self._gate(job):
                return
            # The destination's slot first: attempts queued behind a hanging destination hold none of the process's.
            async with slots.semaphore, self._total:
                if self._stopping or self._disowned(job) or not self._gate(job):  # revoked, or the breaker opened
                    return
                if self._member is not None and not await self._member():
                    # Dropped by the group (paused past its session): its owner forgot every job, this one too.
                    if not self._disowned(job):
                        self.submit(job, self._clock() + 1.0)  # not forgotten after all: tried again, never lost
                    return
                try:
                    await self.attempt(job)
                except Exception as exc:  # a failing callback must not kill the loop; it is logged
                    log.exception("delivery bookkeeping failed", target=job.target)
                    self._failed(exc)
        finally:
            slots.users -= 1
            if slots.users == 0:
                del self._slots[key]

    def _settled_task(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("delivery bookkeeping failed", error=repr(exc))
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        if self.on_failure is not None:
            self.on_failure(exc)
