"""What one notifier process holds and does between Faust's callbacks: ``NotifierRuntime``.

``alerts.app.create_app`` builds the Faust app, then one ``NotifierRuntime``, and registers its methods
as the app's agents, task, rebalance signals, shutdown hook and the ``/slack/actions`` page. Faust
calls them; nothing here registers itself. The runtime owns:

* the hot path — each ``preempt.alerts`` record is decoded and handed to the ``Dispatcher`` with its
  ack; an undecodable one is dead-lettered and acked at once; one whose key is not its ``account_id``
  (or that sits on another partition than that key's) is produced again keyed by ``account_id`` and acked
  (:meth:`NotifierRuntime.rekey`), so that the alert and its delivery records share a partition. A record
  is acked only when all its deliveries are settled (``alerts/dispatch.py``), so its offset never moves
  past an alert that could still be lost; a dead letter the broker refuses stops the process (the record is re-read);
* the delivery loop — the one task that flushes aggregation groups and runs delivery attempts and
  retries; a bug in it stops the process (unacked alerts are re-read after the restart, and the
  delivery log refuses re-sends);
* dead letters on ``preempt.alerts.dlq`` — their headers are written in one method,
  :meth:`NotifierRuntime.dead_letter_headers`;
* rebalance and recovery — deliveries are held from revocation until the new assignment is known,
  work of partitions that moved away is dropped (the new owner re-reads it), and the notifier is
  ready once Faust has recovered its tables (``deliveries``, ``snoozes``); once the group has dropped
  the process (paused past its session: ``streams.runtime.group_membership``) it sends, records and acks
  nothing more for any partition and drops all their work until it has rejoined;
* feedback — ``preempt.feedback`` snoozes into the ``snoozes`` table, and Slack's button requests
  published there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import faust
from aiohttp import web
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
from faust.types import TP
from pydantic import SecretStr, ValidationError

from alerts.acks import InOrderAcks
from alerts.blocks import Note, annotate_posted
from alerts.channels.base import Notifier
from alerts.channels.slack import SlackNotifier
from alerts.delivery_log import DeliveryLog
from alerts.dispatch import Dispatcher
from alerts.feedback import (
    MAX_ACTION_BODY_BYTES,
    SlackAction,
    SlackActionHandler,
    SnoozeBook,
    SnoozeRefusedError,
    read_bounded,
    update_note,
)
from alerts.inhibit_recall import RecentReader, recall_sources
from alerts.intake import LEFT_TO_READ_AGAIN, IntakeLimit
from alerts.liveness import PendingWrites
from alerts.recordless import RecordlessOffsets
from alerts.replay import InvalidReplayHeaderError, replay_targets
from alerts.retry import BackoffPolicy
from alerts.routing.config import RoutingConfig
from schemas.alert import Alert
from schemas.error_text import error_path, first_problem, plain_message
from schemas.feedback import Feedback
from streams.runtime.dead_letters import (
    ALERT_REASON,
    ALERT_TRUNCATED,
    CUT_DEAD_LETTER_BYTES,
    INVALID_ALERT,
    REKEY_FAILED,
    DeadLetterRecord,
    alert_dead_letter_headers,
    bounded,
    cut_dead_letter,
)
from streams.runtime.faust_compat import (
    ack_offsets,
    committed_offsets,
    group_committed_offsets,
    pause_fetching,
    publish,
    resume_fetching,
)
from streams.runtime.group_membership import GroupMembership
from streams.runtime.logs import get_logger
from streams.runtime.metrics import (
    ALERTS_SUPPRESSED,
    FEEDBACK_INVALID,
    NOTIFICATIONS,
    NOTIFICATIONS_DEAD_LETTERED,
    NOTIFIER_ALERTS_HELD,
    NOTIFIER_ALERTS_REKEYED,
    NOTIFIER_DEAD_LETTER_PENDING_SECONDS,
    NOTIFIER_DELIVERIES_PACED,
    NOTIFIER_DELIVERIES_PENDING,
    NOTIFIER_PACED_OLDEST_SECONDS,
    NOTIFIER_SKIPPED_ALERTS,
    READY,
)
from streams.runtime.settings import Settings
from streams.runtime.skipped_records import RangeSource, SkippedRange, offset_jump, reread_skipped

log = get_logger(__name__)
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)

APP_NAME = "preempt-notify"  # the app id (and ``app`` label of preempt_ready) under the default topic prefix
LOOP_MAX_SLEEP = 0.5  # the delivery loop looks again at least this often (seconds)
# A graceful stop waits at most this long for the delivery attempts in flight (Slack's timeout is 10 s,
# SMTP's 15 s a command) and their records: a channel that does not answer must not keep the process up.
STOP_DELIVERY_TIMEOUT_SECONDS = 20.0
REKEYED_HEADER = "preempt-rekeyed-from"  # partition:offset of the mis-keyed record an alert was produced again from
MAX_INVALID_DETAIL_CHARS = 500  # the error header of an invalid alert is cut to this length
SLACK_READ_CHUNK_BYTES = 64 * 1024
# Slack sends a button press (a few KB) at once and gives up on an answer after 3 s: a body still arriving
# after this long is a stalled or slow-drip client. It held its connection (and a task) open for good.
SLACK_BODY_READ_TIMEOUT_SECONDS = 10.0
# The first alert of a partition after an assignment waits at most this long for the group's committed offset.
COMMITTED_FETCH_TIMEOUT_SECONDS = 5.0
MEMBERSHIP_LOST = (
    "consumer group session expired (the process was paused or cut off longer than "
    "PREEMPT_NOTIFIER_SESSION_TIMEOUT_SECONDS); its partitions went to the other notifiers: nothing more is sent, "
    "recorded or acked for them, their pending deliveries are dropped and their alerts re-read by their new owner"
)


@dataclass(frozen=True, slots=True)
class CommittedOffsets:
    """The group's committed offsets of one assignment's partitions of ``preempt.alerts``, asked of the
    coordinator once (``offsets`` None: it did not answer in time, Faust's own copy is read instead)."""

    generation: int
    offsets: dict[int, int | None] | None


@dataclass(frozen=True, slots=True)
class NotifierTopics:
    """The topics one notifier consumes and produces to (raw bytes keys and values)."""

    alerts: faust.TopicT
    dead_letters: faust.TopicT
    feedback: faust.TopicT


class SlackReply(NamedTuple):
    """The answer to one ``POST /slack/actions``: status, text, and whether to close the connection."""

    status: int
    text: str
    close: bool = False


@dataclass(slots=True)
class SentMessage:
    """A Slack message as posted (one alert or a digest) and the notes its buttons have left so far."""

    alerts: tuple[Alert, ...]
    notes: dict[str, Note]
    # The destination that posted it: an update re-renders with that receiver's own templates.
    notifier: Notifier | None = None


class RecentAlerts:
    """The last delivered alerts by id and Slack messages by ``channel:ts``, so a button can re-render
    its whole message — a digest keeps its other alerts and their buttons (bounded)."""

    def __init__(self, size: int = 5000) -> None:
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        self._messages: OrderedDict[str, SentMessage] = OrderedDict()
        self._size = size

    def add_message(self, ref: str, alerts: tuple[Alert, ...], notifier: Notifier | None = None) -> None:
        """Remember the Slack message ``ref`` (``channel:ts``), the alerts it shows and who posted it."""
        self._messages[ref] = SentMessage(alerts, {}, notifier)
        self._messages.move_to_end(ref)
        while len(self._messages) > self._size:
            self._messages.popitem(last=False)

    def message(self, ref: str) -> SentMessage | None:
        """The Slack message ``ref``, if it is still remembered."""
        return self._messages.get(ref)

    def add(self, alert: Alert) -> None:
        """Remember ``alert`` (evicting the oldest past the bound)."""
        self._alerts[alert.alert_id] = alert
        self._alerts.move_to_end(alert.alert_id)
        while len(self._alerts) > self._size:
            self._alerts.popitem(last=False)

    def get(self, alert_id: str) -> Alert | None:
        """The alert with this id, if it is still remembered."""
        return self._alerts.get(alert_id)


def secret_values(settings: Settings, routing: RoutingConfig) -> list[str]:
    """Every configured secret (tokens, webhook URLs, passwords): scrubbed from dead-letter errors."""
    values: list[SecretStr | None] = [
        settings.slack_bot_token,
        settings.slack_webhook_url,
        settings.smtp_password,
        settings.slack_signing_secret,
    ]
    values += [s.webhook_url for r in routing.receivers for s in r.slack_configs]
    return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def validation_summary(exc: ValidationError, limit: int = 5) -> str:
    """The first ``limit`` errors of ``exc`` as ``field.path: message; …`` (no input values)."""
    return "; ".join(f"{error_path(e['loc'], '(alert)')}: {plain_message(e)}" for e in exc.errors()[:limit])


class NotifierRuntime:
    """Everything one notifier process holds: the dispatcher, its topics, tables and Slack handler."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        routing: RoutingConfig,
        notifiers: dict[str, list[Notifier]],
        topics: NotifierTopics,
        deliveries: MutableMapping[bytes, Any],
        snoozes: MutableMapping[bytes, Any],
        partition_for: Callable[[bytes], int] | None = None,
        *,
        skipped_reader: RangeSource,
        recent_reader: RecentReader | None = None,
    ) -> None:
        """``skipped_reader`` reads offset ranges of ``preempt.alerts`` with a side consumer (the watchdog's
        ``RangeReader``, Faust's isolation level): the alerts Faust skipped (:meth:`repair_skipped`).
        ``recent_reader`` (the same reader in the app) reads back the last inhibit horizon's alerts
        (:meth:`recall_inhibit_sources`); None: not recalled."""
        self.app = app
        self.skipped_reader = skipped_reader
        self.recent_reader = recent_reader
        # The partition of preempt.alerts (and of the delivery log) a key belongs to; None: keys alone are checked.
        self.partition_for = partition_for
        self.settings = settings
        self.topics = topics
        self.acks = InOrderAcks()
        NOTIFIER_ALERTS_HELD.set_function(self.acks.held)
        # Dead letters being written (alerts/liveness.py reports one in flight past the stall time).
        self.dead_letters_pending = PendingWrites()
        self._dead_letter_resend = asyncio.Lock()
        NOTIFIER_DEAD_LETTER_PENDING_SECONDS.set_function(self.dead_letters_pending.oldest_age)
        # Per partition of preempt.alerts, the next offset after the last alert handled (the watchdog's
        # measure, alerts/liveness.py); forgotten on revocation, when every partition is read again.
        self.read_offsets: dict[int, int] = {}
        # Offsets of preempt.alerts without a record (transaction markers): the offsets the agent
        # skipped between two alerts, and the tails the watchdog found empty; not consumer lag.
        self.recordless = RecordlessOffsets()
        # The partitions of preempt.alerts assigned now, and their committed offsets once asked (one OffsetFetch
        # for all of them at the first record after the assignment, not one per partition: :meth:`_committed`).
        self.assigned: set[int] = set()
        self._committed_offsets: CommittedOffsets | None = None
        self.recovered = False
        self._crashing: set[asyncio.Future[None]] = set()
        self.snoozes = SnoozeBook(snoozes)
        self.recent = RecentAlerts()
        # A pause past the group's session (SIGSTOP, a VM freeze): once the group has dropped this process, nothing
        # is sent, recorded or acked for the partitions it had (tests/integration/test_notifier_paused.py).
        self.membership = GroupMembership(
            app, settings.notifier_session_timeout_seconds, MEMBERSHIP_LOST, on_lost=self._forget_every_partition
        )
        self.dispatcher = Dispatcher(
            routing,
            notifiers,
            DeliveryLog(deliveries, settings.delivery_log_retention_seconds),
            self.dead_letter_delivery,
            self.flush,
            snoozes=self.snoozes,
            policy=BackoffPolicy(
                initial=settings.delivery_retry_initial_seconds,
                maximum=settings.delivery_retry_max_seconds,
                give_up=settings.delivery_give_up_seconds,
            ),
            scrub=secret_values(settings, routing),
            inhibit_horizon_seconds=settings.inhibit_horizon_seconds,
            failing_after_seconds=settings.delivery_failing_seconds,
            member=self.membership.owns_partitions,
        )
        self.dispatcher.on_failure = self.dispatcher.scheduler.on_failure = self.bookkeeping_failed
        NOTIFIER_DELIVERIES_PACED.set_function(self.dispatcher.scheduler.paced)
        NOTIFIER_DELIVERIES_PENDING.set_function(self.dispatcher.pending_deliveries)
        # At this many deliveries in memory the agent stops taking alerts until some are settled (alerts/intake.py).
        self.intake = IntakeLimit(
            settings.notifier_max_pending_deliveries,
            self.dispatcher.pending_deliveries,
            self.dispatcher.waiting_for,
            hold=self._stop_fetching_alerts,
            release=self._fetch_alerts_again,
        )
        self._not_fetched: set[Any] = set()  # the alerts' partitions paused for the intake limit
        NOTIFIER_PACED_OLDEST_SECONDS.set_function(self.dispatcher.scheduler.paced_oldest_seconds)
        self.dispatcher.on_delivered_alert = self.recent.add
        self.dispatcher.on_delivered_message = self.recent.add_message
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        self.slack_actions = SlackActionHandler(secret, self.publish_feedback, self.update_message)

    # --- the hot path --------------------------------------------------------------------------

    async def consume_alerts(self, stream: Any) -> None:
        """The ``preempt.alerts`` agent's body (concurrency 1), run by Faust for the app's lifetime.

        Manual acks: the stream never acks by itself; each record is acked by the dispatcher once
        its deliveries are settled, or by :meth:`handle_alert` when it is dead-lettered.

        No record's content makes :meth:`handle_alert` raise, so a failure here is the broker (a
        dead letter that cannot be written) or a bug: stop the process, as the delivery loop does.
        Left to Faust, the agent would be restarted with the record unacked, and the partition's
        committed offset would stay behind it, silently, until the next rebalance.
        """
        async for event in stream.noack().events():
            try:
                if await self.intake_open(self.app.consumer_generation_id, self.app.rebalancing_count):
                    await self.handle_alert(event)
            except Exception as exc:
                log.critical("alert handling failed; stopping the notifier", error=repr(exc))
                await self.app.crash(exc)
                raise

    async def intake_open(self, generation: int, rebalances: int) -> bool:
        """Wait while too many deliveries are pending (``alerts/intake.py``); False when a rebalance or a stop
        came meanwhile (``generation`` and ``rebalances``: the consumer's generation and the app's count of
        rebalances begun, as the record came): the record is left unacked, and read again from the committed
        offset by its partition's owner. A rebalance ends the wait as it begins, at the revocation: handled
        between the revocation and the new assignment, the record would be checked for skips against the
        committed offset (the offsets read were forgotten) and its ack would outlive the revocation."""

        def go_on() -> bool:
            app = self.app
            return (
                not app.should_stop
                and app.consumer_generation_id == generation
                and app.rebalancing_count == rebalances
                and not self.membership.lost()
            )

        try:
            if await self.intake.wait_for_room(go_on) and go_on():
                return True
        except asyncio.CancelledError:  # the agent cancelled as the notifier stops (SIGTERM): said as for a stop
            log.info(LEFT_TO_READ_AGAIN, cause="the notifier stopped (its agent was cancelled)")
            raise
        cause = "the notifier stopped" if self.app.should_stop else "a rebalance"
        log.info(LEFT_TO_READ_AGAIN, cause="the consumer group dropped it" if self.membership.lost() else cause)
        return False

    def _stop_fetching_alerts(self) -> None:
        """Pause fetching ``preempt.alerts`` while the intake waits (``alerts/intake.py``: a full agent buffer
        would block Faust's fetcher for every topic); the poll being handed over still arrives in full
        (``faust_compat.pause_fetching``)."""
        name = self.topics.alerts.get_topic_name()
        try:
            self._not_fetched = {tp for tp in self.app.consumer.assignment() if tp.topic == name}
            pause_fetching(self.app, self._not_fetched)
        except Exception as exc:  # noqa: BLE001 - the consumer (not started, stopping): the wait works without it
            log.warning("alerts' partitions not paused for the intake limit", error=repr(exc))

    def _fetch_alerts_again(self) -> None:
        """Resume fetching what :meth:`_stop_fetching_alerts` paused. Not called when a rebalance ended the
        wait: Faust resumes every partition of the new assignment once it is recovered."""
        paused, self._not_fetched = self._not_fetched, set()
        if not paused or self.app.rebalancing:
            return
        try:
            resume_fetching(self.app, paused)
        except Exception as exc:  # noqa: BLE001 - as above; the next assignment resumes them
            log.warning("alerts' partitions not resumed after the intake limit", error=repr(exc))

    async def handle_alert(self, event: Any) -> None:
        """Decode one alert record and dispatch it, or dead-letter it (called by :meth:`consume_alerts`).

        No record's content makes it raise: an undecodable one is dead-lettered and acked; a decoded
        one's failures are dead-lettered by the dispatcher (``alerts/dispatch.py``). Alerts Faust skipped
        before this one are re-read and handled first (:meth:`repair_skipped`).
        """
        message = event.message
        await self.repair_skipped(message.partition, message.offset)
        await self._handle_record(message, event.value, event.ack)

    async def _handle_record(self, message: Any, value: bytes | None, faust_ack: Callable[[], object]) -> None:
        """Decode, dispatch or dead-letter one record (``message``: its key, partition, offset, headers)."""
        generation = self.app.consumer_generation_id  # a rebalance during an await below: the read is not noted
        # Faust gets the ack once every earlier alert of the partition is settled (alerts/acks.py).
        ack = self.acks.track(message.partition, message.offset, faust_ack)
        try:
            alert = Alert.model_validate_json(value or b"")
        except ValidationError as exc:
            await self.dead_letter_invalid(message.key, value, exc, message)
            ack()
        else:
            if self.misplaced(message.key, message.partition, alert):
                await self.rekey(alert, value, message)
                ack()
                self._note_read(message.partition, message.offset, generation)
                return
            try:
                replay = replay_targets(message.headers)
            except InvalidReplayHeaderError as exc:
                await self.dead_letter_invalid(message.key, value, str(exc), message)
                ack()
            else:
                self.dispatcher.on_alert(alert, ack, message.partition, replay=replay)
        self._note_read(message.partition, message.offset, generation)

    async def repair_skipped(self, partition: int, offset: int) -> None:
        """Handle the alerts Faust acknowledged without handing them over, before the record at ``offset``.

        faust-streaming 0.15 was seen to skip a record (about one in 80,000, soon after an assignment) and
        commit past it: the alert was never delivered, and nothing said so. A record whose offset jumps past
        the one expected — the offset after the last alert handled of ``partition``, or the group's committed
        offset for the first record after an assignment — has the range between read again by the side
        reader (``streams.runtime.skipped_records``). Offsets that hold no record (a transactional producer's
        markers) are remembered for the lag gauge. The alerts re-read are handled here in offset order, through
        the same path as any record (their delivery log refuses what was delivered already), and their acks
        wait in line (``alerts/acks.py``) before the record at ``offset``; counted
        (``preempt_notifier_skipped_alerts_total{outcome="repaired"}``). Offsets that cannot be read
        (retention deleted them) are counted as lost and logged with their range.
        """
        generation = self.app.consumer_generation_id  # before the coordinator is asked: a rebalance then counts
        expected = self.read_offsets.get(partition)
        if expected is None:  # the first record since the assignment: from the group's committed offset
            expected = await self._committed(partition, generation)
        jump = offset_jump(expected, offset)
        if jump is None or self.recordless.covers(partition, *jump):
            return
        start, end = jump
        failure: str | None = None
        try:
            skipped = await reread_skipped(self.skipped_reader, partition, start, end, "the notifier")
        except Exception as exc:  # noqa: BLE001 - the side reader (its consumer's start, the broker): not a bug here
            # Stopping would not bring them back: Faust committed past the skipped offsets, so the restart
            # would never see the jump again. Counted lost and named below; this record is handled.
            failure = f"{type(exc).__name__}: {exc}".rstrip(": ")
            skipped = SkippedRange(partition, start, end, (), complete=False)
        if self.app.consumer_generation_id != generation:
            return  # a rebalance meanwhile: the partition is read again from its committed offset
        if skipped.markers_only:
            self.recordless.add(partition, start, end)
            return
        for record in skipped.records:
            if self.app.consumer_generation_id != generation:
                return  # a rebalance while one was handled (its dead letter, its re-keying): as during the read
            NOTIFIER_SKIPPED_ALERTS.labels(outcome="repaired").inc()
            ack = functools.partial(self._ack_reread, partition, record.offset)
            await self._handle_record(record, record.value, ack)
        if skipped.lost:
            NOTIFIER_SKIPPED_ALERTS.labels(outcome="lost").inc(skipped.lost)
            log.error(
                "alerts skipped before reaching the notifier could not be re-read (retention?): lost",
                partition=partition,
                first_missing=start,
                next_seen=end,
                recovered=len(skipped.records),
                lost=skipped.lost,
                error=failure,
            )

    async def _committed(self, partition: int, generation: int) -> int | None:
        """The group's committed offset of ``partition``, asked of the group coordinator (bounded); Faust's own
        copy when it does not answer. Faust's copy alone was not known yet when the first record after a
        restart came (``tests/integration/test_notifier_skipped_alerts.py``): a skip of it went unseen.

        One request for every partition of the assignment not read yet, at the first record after it, and its
        answer reused for the others' first records (``generation``: the consumer's when the record came): asked
        per partition, in turn, a notifier given many partitions waited a round trip each (up to the timeout each
        while the coordinator was slow) before their first alerts. A coordinator that did not answer is not asked
        again before the next assignment."""
        name = self.topics.alerts.get_topic_name()
        known = self._committed_offsets
        if known is None or known.generation != generation or (known.offsets and partition not in known.offsets):
            partitions = sorted({partition} | (self.assigned - self.read_offsets.keys()))
            tps = [TP(name, p) for p in partitions]
            got = await group_committed_offsets(self.app, tps, COMMITTED_FETCH_TIMEOUT_SECONDS)
            offsets = None if got is None else {tp.partition: got.get(tp) for tp in tps}
            log.debug(
                "committed offsets asked of the group coordinator", partitions=partitions, answered=got is not None
            )
            known = self._committed_offsets = CommittedOffsets(generation, offsets)
        if known.offsets is not None:
            return known.offsets.get(partition)
        return committed_offsets(self.app.consumer).get(TP(name, partition))

    def _ack_reread(self, partition: int, offset: int) -> None:
        """Let Faust commit past a re-read alert once it is settled: Faust never delivered it, so it never acks it."""
        ack_offsets(self.app, TP(self.topics.alerts.get_topic_name(), partition), [offset])

    def _note_read(self, partition: int, offset: int, generation: int) -> None:
        if self.app.consumer_generation_id != generation:
            # Revoked meanwhile (read_offsets was cleared): the partition's first record after the new
            # assignment is checked against the committed offset, not against this record of the old one.
            return
        previous = self.read_offsets.get(partition)
        if previous is not None and offset > previous:
            # Checked before this record was handled (repair_skipped): the offsets between hold no record.
            self.recordless.add(partition, previous, offset)
        self.read_offsets[partition] = offset + 1

    def misplaced(self, key: bytes | None, partition: int, alert: Alert) -> bool:
        """True when the record of ``alert`` is not keyed by its ``account_id``, or not on that key's partition.

        The delivery log is keyed by ``account_id`` and lives on that key's partition, which the notifier owning
        it recovers. An alert read from another partition (a third-party producer keying by something else, or
        with a partitioner of its own) would have its deliveries recorded where, after a rebalance, the notifier
        that re-reads it may not look: the same alert could be sent twice.
        """
        wanted = alert.account_id.encode()
        if key != wanted:
            return True
        return self.partition_for is not None and partition != self.partition_for(wanted)

    async def rekey(self, alert: Alert, value: bytes | None, message: Any) -> None:
        """Produce ``alert``'s record again on ``preempt.alerts``, keyed by its ``account_id`` (on that key's
        partition), with its headers, and flush before the caller acks the original; log and count it.

        Delivered from there only: a crash between the send and the ack re-keys it twice, and the second copy
        is refused by the delivery log as a duplicate. Called by :meth:`handle_alert`."""
        key = alert.account_id.encode()
        partition = self.partition_for(key) if self.partition_for is not None else None
        headers = message.headers
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        pairs.append((REKEYED_HEADER, f"{message.partition}:{message.offset}".encode()))
        try:
            # The producer itself refuses a record over max_request_size (with the header) in publish(), before
            # any broker: raised from here, that stopped the notifier at every restart on the same record.
            sent = await publish(self.topics.alerts, key=key, value=value, partition=partition, headers=pairs)
        except Exception as exc:  # noqa: BLE001 - refused by the producer: dead-lettered as a broker refusal is
            await self._dead_letter_not_rekeyed(alert, value, message, exc)
            return
        await self.flush()
        try:
            await sent  # the flush returns whether or not the broker took it: a refusal acked was an alert lost
        except Exception as exc:  # noqa: BLE001 - refused (too large with the header, not authorised): dead-lettered
            await self._dead_letter_not_rekeyed(alert, value, message, exc)
            return
        NOTIFIER_ALERTS_REKEYED.inc()
        log.warning(
            "alert not keyed by its account_id: produced again keyed by it, delivered from there",
            **alert.log_ids(),
            key=repr(message.key)[:80],
            partition=message.partition,
            offset=message.offset,
            to_partition=partition,
        )

    async def _dead_letter_not_rekeyed(self, alert: Alert, value: bytes | None, message: Any, exc: Exception) -> None:
        """The copy keyed by ``account_id`` was refused: the original is dead-lettered (reason ``rekey_failed``), so
        the caller's ack loses nothing; a dead letter the broker refuses too stops the notifier, as for any other."""
        detail = f"could not be produced again keyed by its account_id: {type(exc).__name__}: {exc}"
        log.error(
            "mis-keyed alert not produced again; dead-lettered",
            **alert.log_ids(),
            error=detail,
        )
        await self._dead_letter_record(message.key, value, REKEY_FAILED, detail)

    async def dead_letter_invalid(
        self, key: bytes | None, value: bytes | None, exc: ValidationError | str, message: Any = None
    ) -> None:
        """Dead-letter a record that is not a valid alert (or a replay whose ``preempt-replay`` header
        is not valid), as it was consumed; log (with its partition and offset, from ``message``) and count it.

        Called by :meth:`handle_alert`, which acks the record afterwards.
        """
        errors = exc if isinstance(exc, str) else validation_summary(exc)
        where = {} if message is None else {"partition": message.partition, "offset": message.offset}
        log.warning("undecodable alert dead-lettered", error=errors, **where)
        await self._dead_letter_record(key, value, INVALID_ALERT, errors)
        ALERTS_SUPPRESSED.labels(reason="invalid").inc()

    async def _dead_letter_record(self, key: bytes | None, value: bytes | None, reason: str, detail: str) -> None:
        """Dead-letter a record as it was consumed, before any receiver (``receiver_type="none"``), and count it; a
        dead letter the broker refuses (not for its size) stops the notifier and the record is never acked."""
        headers = self.dead_letter_headers(reason, detail[:MAX_INVALID_DETAIL_CHARS])
        try:
            await self.send_dead_letter(key, value, headers)
        except Exception as exc:
            self.bookkeeping_failed(exc)
            raise
        NOTIFICATIONS_DEAD_LETTERED.labels(receiver_type="none", reason=reason).inc()
        NOTIFICATIONS.labels(receiver_type="none", outcome="dead_lettered").inc()

    async def dead_letter_delivery(
        self, alert: Alert, target: str, receiver_type: str, reason: str, detail: str
    ) -> None:
        """Dead-letter ``alert`` for one delivery target (``receiver/channel``) with its reason.

        The dispatcher's dead-letter callback (routing, flush and delivery failures); it counts and
        logs them itself and settles the target once this returns.
        """
        headers = self.dead_letter_headers(reason, detail, target=target, receiver_type=receiver_type)
        await self.send_dead_letter(alert.account_id.encode(), alert.model_dump_json().encode(), headers)

    @staticmethod
    def dead_letter_headers(
        reason: str, detail: str, *, target: str | None = None, receiver_type: str | None = None
    ) -> list[tuple[str, bytes]]:
        """The headers of a notifier dead letter, built by ``streams.runtime.dead_letters`` (their one owner).

        A delivery's dead letter names its ``target``, ``receiver`` and ``receiver_type``; every
        dead letter has ``reason`` (a stable code) and ``error`` (a sentence for people). Called by
        :meth:`dead_letter_invalid` and :meth:`dead_letter_delivery`.
        """
        return alert_dead_letter_headers(reason, detail, target=target, receiver_type=receiver_type)

    async def send_dead_letter(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        """Send one dead letter to ``preempt.alerts.dlq`` and flush, so it is written before any ack.

        A record too large to send whole (the broker's limit is the producer's) is cut to fit, with
        a ``truncated`` header saying what was left out (``streams.runtime.dead_letters.bounded``).
        """
        letter = bounded(DeadLetterRecord(key, value, headers), ALERT_TRUNCATED, keep=lambda _name: True)
        with self.dead_letters_pending.track():  # the watchdog reports one the broker does not take
            try:
                await self._write_dead_letter(letter)
            except _TOO_LARGE as exc:
                await self._write_dead_letter_cut(letter, exc)

    async def _write_dead_letter(self, letter: DeadLetterRecord) -> None:
        """Send ``letter``, flush, and raise what the broker answered: the producer's flush returns whether or
        not a record was taken, and a refused dead letter (too large, not authorised) was lost while its
        alert was acked and logged as dead-lettered.

        The record's own ``FutureMessage`` is the one awaited: ``Topic.send`` returns the producer's future and
        keeps the ``FutureMessage``, which the producer's answer also fails, to itself — never read, so asyncio
        logged ``FutureMessage exception was never retrieved`` with a traceback for a letter that was written cut.
        """
        message = await publish(self.topics.dead_letters, key=letter.key, value=letter.value, headers=letter.headers)
        await self.flush()
        await message

    async def _write_dead_letter_cut(self, letter: DeadLetterRecord, exc: BaseException) -> None:
        """``letter`` refused as too large: sent once more alone (the limit is per record batch, so one that
        fits may have shared a refused batch), then cut to fit a ``max.message.bytes`` set below it — the
        alert's first bytes, then the headers alone. Raises (the alert stays unacked) when all are refused."""
        topic = self.topics.dead_letters.get_topic_name()
        async with self._dead_letter_resend:
            for max_bytes in (None, *CUT_DEAD_LETTER_BYTES):
                smaller = (
                    letter if max_bytes is None else cut_dead_letter(letter, max_bytes, ALERT_TRUNCATED, lambda _: True)
                )
                try:
                    await self._write_dead_letter(smaller)
                except _TOO_LARGE as again:
                    exc = again
                    continue
                if smaller is not letter:
                    log.warning(
                        "dead letter too large for the dead-letter topic; written cut",
                        topic=topic,
                        reason=dict(letter.headers).get(ALERT_REASON, b"").decode("utf-8", "replace"),
                        value_bytes=len(letter.value or b""),
                        kept_bytes=len(smaller.value or b""),
                        error=type(exc).__name__,
                        remedy=f"raise max.message.bytes of {topic} to keep whole alerts",
                    )
                return
        raise exc

    def bookkeeping_failed(self, exc: BaseException) -> None:
        """A delivery record or a dead letter could not be written (the broker): stop the process.

        The alert stays unsettled, and Faust gets acks in offset order (``alerts/acks.py``): left
        running, the notifier would hold its partition's commits, and every later alert in memory,
        for good. After the restart the alert is read again and the delivery log refuses re-sends.
        """
        log.critical("delivery bookkeeping failed; stopping the notifier", error=repr(exc))
        if not self.app.should_stop:
            task = asyncio.ensure_future(self.app.crash(exc))
            self._crashing.add(task)
            task.add_done_callback(self._crashing.discard)

    async def flush(self) -> None:
        """Flush the producer (dead letters, feedback, the delivery log's changelog) before an ack."""
        await self.app.producer.flush()

    async def run_delivery_loop(self) -> None:
        """The delivery loop: Faust starts it as an app task once the worker runs; it runs until stop.

        Each turn lets the dispatcher flush due groups and start due delivery attempts, then sleeps
        until the next due time, a wakeup (a new alert) or :data:`LOOP_MAX_SLEEP`.
        """
        wakeup = self.dispatcher.scheduler.wakeup
        while not self.app.should_stop:
            wakeup.clear()
            self.membership.beat()  # a turn at least every LOOP_MAX_SLEEP: a longer gap is a pause of the process
            if not await self.membership.owns_partitions():  # dropped by the group: nothing is sent until it rejoins
                await self._sleep_until(wakeup, None)
                continue
            try:
                next_at = self.dispatcher.tick()
            except Exception as exc:
                # Per-alert failures are dead-lettered inside tick(), so this is a bug in the loop
                # itself: stop the process (a silent, dead delivery loop is the worst outcome). The
                # unacked alerts are re-read after the restart and the delivery log refuses re-sends.
                log.critical("delivery loop failed; stopping the notifier", error=repr(exc))
                await self.app.crash(exc)
                raise
            await self._sleep_until(wakeup, next_at)

    @staticmethod
    async def _sleep_until(wakeup: asyncio.Event, next_at: float | None) -> None:
        # ``next_at`` is on the dispatcher's monotonic clock: a wall-clock step cannot stall or burst the loop.
        timeout = LOOP_MAX_SLEEP if next_at is None else min(max(next_at - time.monotonic(), 0.0), LOOP_MAX_SLEEP)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout)

    # --- feedback ------------------------------------------------------------------------------

    async def consume_feedback(self, stream: Any) -> None:
        """The ``preempt.feedback`` agent's body, run by Faust for the app's lifetime (Faust acks)."""
        async for event in stream.events():
            self.apply_feedback(event.value, event.message.offset)

    def apply_feedback(self, value: bytes | None, offset: int) -> None:
        """Record one feedback record's snooze in the ``snoozes`` table; an invalid record is logged.

        Called by :meth:`consume_feedback` for each record; other actions than snooze change nothing.
        An invalid record (not JSON, a wrong field, a ``snooze_until`` that is not RFC 3339) is
        logged with its offset, counted in ``preempt_feedback_invalid_total`` and skipped.
        """
        try:
            feedback = Feedback.model_validate_json(value or b"")
            until = self.snoozes.apply(feedback, time.time())  # wall: a snooze ends at a wall time (snooze_until)
        except (ValidationError, SnoozeRefusedError) as exc:
            problem = first_problem(exc.errors(), "(the record)") if isinstance(exc, ValidationError) else str(exc)
            log.warning("invalid feedback record ignored", error=problem, offset=offset)
            FEEDBACK_INVALID.inc()
            return
        if until is not None:
            log.info(
                "snooze recorded",
                account_id=feedback.account_id,
                rule_id=feedback.rule_id,
                until=feedback.snooze_until,
            )

    async def publish_feedback(self, feedback: Feedback) -> None:
        """Publish a Slack button's feedback on ``preempt.feedback`` (called by the Slack handler)."""
        sent = await publish(
            self.topics.feedback, key=feedback.account_id.encode(), value=feedback.model_dump_json().encode()
        )
        await self.flush()
        await sent  # raises what the broker answered: the flush returns whether or not the record was taken

    async def update_message(self, action: SlackAction, feedback: Feedback, *, by_response_url: bool = False) -> bool:
        """Re-render the Slack message a button was pressed on (called by the Slack handler, after it answered).
        False when it was not (logged: the message or alert unknown here, no Slack receiver that can edit it);
        the handler counts each outcome in ``preempt_slack_message_updates_total``.

        A bot's message is edited with ``chat.update``; one an incoming webhook posted (or any, when its
        channel and ts are missing, or with ``by_response_url``: the handler's retries of ``chat.update``
        are spent) through the press's ``response_url``.
        """
        edit = replace(action, ref=None) if by_response_url else action  # channel:ts still finds the message
        alert = self.recent.get(action.alert_id)
        message = self.recent.message(action.ref) if action.ref is not None else None
        if message is not None and alert is None:
            alert = next((a for a in message.alerts if a.alert_id == action.alert_id), None)
        editable = action.ref is not None or action.response_url is not None
        if message is None and action.posted is not None and editable:
            # The message is not known here (another replica or a webhook posted it, or it was forgotten): edit
            # the blocks Slack sent with the press, so a digest keeps its other alerts and its receiver's templates.
            return await self._update_posted(edit, feedback, alert.account.local_timezone if alert else None)
        if not editable or alert is None:
            log.info("slack message not updated (message or alert unknown here)", **action.log_ids())
            return False
        note = update_note(feedback, alert.account.local_timezone)
        if message is not None and any(a.alert_id == alert.alert_id for a in message.alerts):
            message.notes[alert.alert_id] = note  # a digest: its other alerts keep their buttons
            alerts, notes = message.alerts, dict(message.notes)
        else:
            alerts, notes = (alert,), {alert.alert_id: note}
        if message is not None and message.notifier is not None:
            # The receiver that posted it: its title/text templates, not the first Slack receiver's.
            return await message.notifier.update(edit.ref, alerts, notes, action.response_url) is not False
        notifier = self._slack_editor(edit)
        if notifier is None:
            return False
        return await notifier.update(edit.ref, alerts, notes, action.response_url) is not False

    async def _update_posted(self, action: SlackAction, feedback: Feedback, timezone: str | None = None) -> bool:
        """Update a message another notifier (or this one before a restart) posted, from its blocks as
        Slack sent them with the button press: that alert's buttons give way to the note (a snooze's end in
        ``timezone``, the account's when the alert is known here, else UTC)."""
        assert action.posted is not None
        blocks = annotate_posted(list(action.posted["blocks"]), action.alert_id, update_note(feedback, timezone))
        if blocks is None:
            log.info("slack message not updated (its buttons for the alert are gone)", **action.log_ids())
            return False
        notifier = self._slack_editor(action)
        if not isinstance(notifier, SlackNotifier):
            return False  # None: _slack_editor logged it; a Slack receiver here is always a SlackNotifier
        return await notifier.update_posted(
            action.ref, blocks, str(action.posted.get("text") or ""), action.response_url
        )

    def _slack_editor(self, action: SlackAction) -> Notifier | None:
        """The Slack receiver that can edit the pressed message: a bot (``chat.update``) when Slack sent its
        channel and ts, else any Slack receiver when Slack sent a ``response_url``; None (logged) if none can."""
        slack = [n for n in self.dispatcher.notifiers() if n.receiver_type == "slack"]
        bots = [n for n in slack if getattr(n, "mode", "bot") != "webhook"]
        if action.ref is not None and bots:
            return bots[0]
        if action.response_url is not None and slack:
            return slack[0]
        log.info("slack message not updated (no Slack receiver here can edit it)", **action.log_ids())
        return None

    async def handle_slack_action(self, request: web.Request) -> SlackReply:
        """Answer one ``POST /slack/actions`` (called by the page ``create_app`` registers).

        The body is read through aiohttp's stream, bounded (Faust's own reader reads any size); a
        body over the limit is refused and its connection closed rather than read to the end, and so
        is one that has not arrived within ``SLACK_BODY_READ_TIMEOUT_SECONDS`` (408).
        """
        chunks: AsyncIterator[bytes] = request.content.iter_chunked(SLACK_READ_CHUNK_BYTES)
        try:
            async with asyncio.timeout(SLACK_BODY_READ_TIMEOUT_SECONDS):
                body = await read_bounded(request.content_length, chunks, MAX_ACTION_BODY_BYTES)
        except TimeoutError:
            status, text = self.slack_actions.too_slow(SLACK_BODY_READ_TIMEOUT_SECONDS)
            return SlackReply(status, text, close=True)
        if body is None:
            status, text = self.slack_actions.too_large(request.content_length)
            return SlackReply(status, text, close=True)
        # Wall clock: Slack signs requests with an epoch timestamp, and snoozes end at a wall time.
        status, text = await self.slack_actions.handle(request.headers, body, time.time())
        return SlackReply(status, text)

    # --- rebalance and recovery ----------------------------------------------------------------

    def alert_partitions(self, tps: Iterable[Any]) -> set[int]:
        """The partitions of ``preempt.alerts`` among ``tps`` (topic-partitions of any topic)."""
        name = self.topics.alerts.get_topic_name()
        return {tp.partition for tp in tps if tp.topic == name}

    def on_partitions_revoked(self, revoked: Collection[Any]) -> None:
        """Hold deliveries until the new assignment is known (Faust's ``on_partitions_revoked``).

        Eager rebalancing revokes everything; the notifier is not ready until it has recovered.
        """
        READY.labels(app=self.app.conf.name).set(0)  # the label ops_web's readiness uses
        self.recovered = False
        self.read_offsets.clear()
        self.assigned = set()
        self._committed_offsets = None
        self.dispatcher.paused = True
        # The group dropped this process (paused past its session): it owns nothing any more (on_lost forgets it all).
        self.membership.lost()
        # Faust forgot the acks and commits of every partition (eager rebalancing) and reads each
        # partition it keeps again from its committed offset: an ack of this reading handed over
        # now would land in a list Faust never clears and could carry a later commit past an alert.
        self.acks.keep(())

    def on_partitions_assigned(self, assigned: Collection[Any]) -> int:
        """Keep the work of partitions that stayed here, drop the rest (Faust's ``on_partitions_assigned``).

        Work of partitions that moved is dropped, and their new owner re-reads it from the committed
        offset. Partitions that stayed are read again from their committed offset too (a fresh
        assignment): the copies of alerts still pending join their work (the dispatcher's
        ``_waiting``), delivered ones are refused by the delivery log. Deliveries resume only once the
        tables are recovered (:meth:`on_recovered`): a delivery recorded while the delivery log's
        changelog was being replayed could be overwritten by the replay, its alert re-read, not refused,
        and sent twice (found by ``tests/integration/test_notifier_intake_handover.py``). Returns the
        number of pending deliveries dropped.
        """
        self.membership.assigned()
        mine = self.alert_partitions(assigned)
        self.assigned = set(mine)
        self.acks.keep(mine)
        dropped = self.dispatcher.retain(mine)
        if dropped:
            log.info("pending deliveries handed over on rebalance", kept_partitions=sorted(mine), dropped=dropped)
        return dropped

    def _forget_every_partition(self) -> None:
        """The group dropped this process (``GroupMembership.on_lost``): every partition it had went to the other
        notifiers, which re-read their unacked alerts. Its pending work is dropped — kept, a job planned against this
        process's older delivery log would be sent again after the rejoin gave the partition back — nothing is sent
        until the next assignment is recovered, and no ack of this reading reaches Faust."""
        READY.labels(app=self.app.conf.name).set(0)
        self.recovered = False
        self.acks.keep(())
        dropped = self.dispatcher.forget_all()
        log.info("pending deliveries dropped: the consumer group dropped this notifier", dropped=dropped)

    async def recall_inhibit_sources(self) -> int:
        """Before deliveries resume on a new assignment: read back the ``inhibit_rules`` sources of the last
        inhibit horizon on the assigned partitions (alerts/inhibit_recall.py); how many were new here."""
        if self.recent_reader is None:
            return 0
        return await recall_sources(
            self.recent_reader, self.assigned, self.dispatcher, self.settings.inhibit_horizon_seconds
        )

    def on_recovered(self) -> None:
        """The tables are recovered for the new assignment (Faust's ``on_rebalance_complete``): ready."""
        READY.labels(app=self.app.conf.name).set(1)
        self.recovered = True
        self.dispatcher.paused = False  # the delivery log is whole again: deliveries resume
        partitions = sorted(self.alert_partitions(self.app.consumer.assignment()))
        log.info("notifier ready", partitions=partitions, app_id=self.app.conf.id)

    async def finish_deliveries(self) -> None:
        """As a graceful stop begins (SIGTERM; ``AppWithBeforeStop.before_stop``, while the consumer and the
        tables still run): start no new delivery attempt, and wait for the ones in flight to be recorded
        in the delivery log or dead-lettered, at most :data:`STOP_DELIVERY_TIMEOUT_SECONDS`.

        Closing the channels under an attempt cut it off after Slack or the SMTP server may already have
        taken the message, and the restart sent it again: every rolling restart could post duplicates.
        What is not attempted stays unacked and is read again after the restart, as after a crash.
        """
        self.dispatcher.paused = True
        self.dispatcher.scheduler.stop_starting()
        in_flight = self.dispatcher.scheduler.in_flight()
        if in_flight:
            log.info("waiting for deliveries in flight before stopping", in_flight=in_flight)
        try:
            async with asyncio.timeout(STOP_DELIVERY_TIMEOUT_SECONDS):
                await self.dispatcher.drain()
        except TimeoutError:
            log.warning(
                "deliveries still in flight at stop; a restart may send them again",
                waited_seconds=STOP_DELIVERY_TIMEOUT_SECONDS,
            )

    async def close_channels(self) -> None:
        """Close the channels' connections (Faust's ``on_before_shutdown``); errors are ignored.

        Unacked alerts are simply re-read by the next owner; only connections need closing here.
        """
        for notifier in self.dispatcher.notifiers():
            with contextlib.suppress(Exception):
                await notifier.aclose()
