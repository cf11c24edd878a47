"""The rules worker's core, free of Faust: a batch of raw records in, alerts and state writes out.

Agents stay thin (``streams.worker.agents``): they hand each batch of ``preempt.events`` records to
:meth:`RulesProcessor.process_batch` and each clock tick to :meth:`RulesProcessor.tick`, then
perform the I/O the returned :class:`BatchOutput` describes (dead letters, alerts, one state write
per touched account, one clock write per moved partition). Everything here is synchronous and
deterministic given the wall clock it is handed, so it is unit-tested without a broker.

Per batch: decode every record (rejections become dead letters; a valid event read on another
partition than its account's is forwarded there, :class:`ForwardOutput`) → ``engine.on_event`` with the
partition's watermark as it stood before the batch (events are only buffered) and its clock as the
event arrives (the batch's earlier events counted: an event more than the allowed lateness behind
one read before it is late, as in the backtest, wherever the poll boundaries fall) → observe event
times → for every partition, advance each
touched account and every account whose wakeup is due under the new watermark → findings →
enrich → alerts. Advancing once per touched account per batch, not once per event, is the work
that batching shares.

Failure policy (docs/pipeline.md): nothing one record or one account does escapes this core. A
record that does not decode, or on which the engine raises, is dead-lettered; an account whose
state cannot be read, advanced, encoded or stored within ``max_state_bytes`` is quarantined (its
stored state dead-lettered with the reason, a fresh state started); a finding that cannot become
an alert even without account context is dead-lettered as ``alert_build_failed``. Each is counted
and logged, and the batch carries on. Only a bug in this loop itself raises.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import orjson
from kafka.partitioner.default import murmur2

from rules.engine import EventOutcome
from schemas.account import Account
from schemas.alert import Alert
from schemas.decoder import Rejection, decode_event
from schemas.event import Event
from streams.runtime.logs import get_logger
from streams.runtime.metrics import (
    ALERTS_NOT_BUILT,
    ALERTS_SUPPRESSED,
    DEADLINE_WORK_BEHIND,
    DUPLICATE_EVENTS,
    DUPLICATE_FROM_PRODUCER,
    DUPLICATE_READ_AGAIN,
    EVENT_OFFSET_GAPS,
    EVENT_TO_ALERT,
    EVENTS,
    EVENTS_DEAD_LETTERED,
    EVENTS_EVALUATED_EARLY,
    RULE_EVALUATIONS,
    RULE_STATES_RESTARTED,
    WATERMARK,
)
from streams.runtime.settings import Settings
from streams.worker.clock import PartitionClocks
from streams.worker.duplicate_log import DuplicateLog
from streams.worker.late_events import LateEventLog
from streams.worker.rejection_log import RejectionLog
from streams.worker.state_cache import EVALUATION_ERROR, Quarantine, StateCache
from streams.worker.wakeups import WakeupIndex

log = get_logger(__name__)


def partition_for_key(key: bytes, partitions: int) -> int:
    """Kafka's default (murmur2) partition of ``key`` — where every client puts an account's records."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


FORWARDED = "forwarded"  # ``preempt_events_total{outcome}`` of an event re-sent to its account's partition
FORWARDED_FROM = "preempt.forwarded.from"  # header of a forwarded event: "partition/offset" it was read at
FORWARD_LOG_INTERVAL_SECONDS = 10.0
MISSING_EVENTS_AFTER = 1_000  # events a risk rule folds in, none of its model's names, before the worker says so
MAX_HOME_PARTITIONS = 200_000  # account id -> partition memo (murmur2 in Python costs ~2 µs a key)
PROCESSING_ERROR = "processing_error"  # the rule engine raised on a valid event: the event is dead-lettered
ALERT_BUILD_FAILED = "alert_build_failed"  # a finding could not become an alert: the finding is dead-lettered
STATE_SOURCE = "account-state"
DUE_WORK_SECONDS = 0.1
"""Wall time a batch or tick spends at most (shared by its partitions) on accounts that are due but not in the
batch, before it leaves the rest for the next one; each partition gets at least ``DUE_WORK_MIN_SECONDS``."""
DUE_WORK_MIN_SECONDS = 0.005
DUE_WORK_LOG_INTERVAL_SECONDS = 30.0
"""``preempt.dlq.source.topic`` of a quarantined state's dead letter: the state table (offset -1)."""


class EngineState(Protocol):
    """What the worker reads of an account's engine state (``rules.state.AccountState``); the rest is the engine's."""

    @property
    def finalized_until(self) -> float:
        """The watermark the account has been advanced to (events before it are late)."""
        ...


class EngineFinding(Protocol):
    """What the worker reads of a finding (``rules.findings.Finding``) before the engine makes it an alert."""

    @property
    def account_id(self) -> str: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def newest_event_ts(self) -> float | None:
        """Event time of the newest event behind the finding (None: a deadline with no event), for latency."""
        ...

    @property
    def fired_at(self) -> float:
        """Event time the finding fired at: its newest event's, or the deadline or tick that fired it."""
        ...


StateT = TypeVar("StateT", bound=EngineState)
FindingT = TypeVar("FindingT", bound=EngineFinding)


class RuleEnginePort(Protocol[StateT, FindingT]):
    """The slice of ``rules.engine.RuleEngine`` the worker calls: the engine's contract with its callers.

    The state is the engine's (the worker keeps it in the state cache and reads only
    ``finalized_until``); findings go back to the engine to become alerts.
    """

    def new_state(self) -> StateT: ...
    def on_event(
        self, state: StateT, event: Event, watermark: float, late_before: float | None = None
    ) -> tuple[EventOutcome, list[FindingT]]: ...
    def advance(self, state: StateT, watermark: float) -> list[FindingT]: ...
    def next_wakeup(self, state: StateT) -> float | None: ...
    def bound_buffer(self, state: StateT, max_bytes: int) -> tuple[int, int, list[FindingT]]: ...
    def dumps(self, state: StateT) -> bytes: ...
    def loads(self, data: bytes) -> StateT: ...
    def to_alert(self, finding: FindingT, account: Account | None, emitted_at: float) -> Alert: ...
    @property
    def suppressed_by_cooldown(self) -> int:
        """Findings dropped by cooldown since the engine was built (the worker counts the increase)."""
        ...

    @property
    def states_restarted(self) -> Mapping[str, int]:
        """Per rule, account states started afresh since the engine was built (the worker counts and logs them)."""
        ...

    def rules_missing_their_events(self, at_least: int) -> Mapping[str, int]:
        """Per rule, events folded in (at least ``at_least``) with none of its model's event names (logged once)."""
        ...


class RecordLike(Protocol):
    """What the processor reads of a record: aiokafka's ``ConsumerRecord`` as polled (the batched path
    hands them over as they are, no copy per record) or a :class:`Record`."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...
    @property
    def topic(self) -> str: ...


@dataclass(slots=True, frozen=True)
class Record:
    """One Kafka record of ``preempt.events`` as the processor needs it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    topic: str = ""

    @classmethod
    def of(cls, record: RecordLike) -> Record:
        """A :class:`Record` copy of ``record`` (header names as str, a null header value as ``b""``)."""
        if isinstance(record, Record):
            return record
        headers = [(str(k), bytes(v) if v is not None else b"") for k, v in (record.headers or ())]
        return cls(record.partition, record.offset, record.key, record.value, headers, record.topic)


@dataclass(slots=True)
class OffsetCheck:
    """One pass over a batch's offsets (:meth:`RulesProcessor.check_offsets`), used for gap repair,
    gap counting and progress, so no later step walks the records again for them."""

    gaps: list[tuple[int, int, int]]
    """``(partition, first_missing, next_seen)`` for every offset jump, against the previous batches too."""
    first: dict[int, int]
    """The first offset of each partition in the batch."""
    next: dict[int, int]
    """The offset after the highest one of each partition in the batch."""


@dataclass(slots=True, frozen=True)
class DeadLetterOutput:
    """A dead letter the processor asks its driver to produce: a record the worker could not accept,
    and why (``reason`` is a ``schemas.decoder.Reason`` code, ``processing_error`` when the rule
    engine raised on a valid event, a quarantine reason of ``streams.worker.state_cache`` for an
    account's set-aside state, or ``alert_build_failed``)."""

    record: Record
    reason: str
    detail: str
    field: str | None = None


@dataclass(slots=True, frozen=True)
class ForwardOutput:
    """A valid event read on another partition than its account's (a record without a key, keyed by
    something else, or placed by a partitioner other than Kafka's default murmur2): the driver
    re-sends it, unchanged, keyed by ``account_id`` to ``partition``, where it is evaluated."""

    record: Record
    account_id: str
    partition: int


@dataclass(slots=True)
class BatchOutput:
    """The I/O one batch (or tick) asks for, in the order it must happen."""

    dead_letters: list[DeadLetterOutput] = field(default_factory=list)
    forwards: list[ForwardOutput] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    state_writes: dict[int, dict[str, bytes]] = field(default_factory=dict)
    clock_writes: dict[int, float] = field(default_factory=dict)
    accepted: int = 0


AccountLookup = Callable[[str], Account | None]


class RulesProcessor(Generic[StateT, FindingT]):
    """Decode → dedup/evaluate per account → findings → enriched alerts, for one worker."""

    def __init__(
        self,
        engine: RuleEnginePort[StateT, FindingT],
        settings: Settings,
        cache: StateCache,
        clocks: PartitionClocks,
        wakeups: WakeupIndex,
        accounts: AccountLookup,
        rule_ids: Iterable[str] = (),
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.cache = cache
        self.clocks = clocks
        self.wakeups = wakeups
        self.accounts = accounts
        self._rule_ids = tuple(rule_ids)
        # One labelled child per rule, looked up once: labels() per rule per partition per batch or
        # tick added up with small live-mode batches.
        self._rule_evaluations = [RULE_EVALUATIONS.labels(rule=rule_id) for rule_id in self._rule_ids]
        self._wall_clock = wall_clock
        self._live = not settings.event_time_only
        self._cooled = ALERTS_SUPPRESSED.labels(reason="cooldown")
        self._cooled_counted = engine.suppressed_by_cooldown
        # a risk rule's crossings after the account's churn event (rules/kinds/risk.py); a test's engine has none
        self._churned = ALERTS_SUPPRESSED.labels(reason="after_churn")
        self._churned_counted = int(getattr(engine, "suppressed_after_churn", 0))
        self._restarts_counted: dict[str, int] = dict(engine.states_restarted)
        self._missing_warned: set[str] = set()
        self._next_offset: dict[int, int] = {}
        # Per partition, the offset records were evaluated up to before a rebalance (here or by the
        # partition's earlier owner) while the group's committed offset is behind it (read_again).
        self._read_again: dict[int, int] = {}
        # The settings' bounds apply to the parts this core drives, whoever built them.
        cache.max_state_bytes = settings.max_state_bytes
        clocks.future_tolerance = settings.clock_future_tolerance_seconds
        clocks.outage_grace = settings.clock_outage_grace_seconds
        self.late_log = LateEventLog(settings.late_event_log_interval_seconds)
        self.rejection_log = RejectionLog(settings.late_event_log_interval_seconds)
        self.duplicate_log = DuplicateLog(settings.late_event_log_interval_seconds)
        self._partitions = settings.topic_partitions
        self._home: dict[str, int] = {}
        self._forward_logged_at = -math.inf
        self._misrouted_logged_at = -math.inf
        self._forwards_unlogged = 0
        # Bytes of the accepted events of each account since its buffered events (those the
        # watermark has not passed) were last measured: an over-estimate (applied events are not
        # subtracted), so the exact measure (``engine.bound_buffer``) runs only once it passes the
        # limit, not per batch. A quarter of the state limit, so that with what a state buffered
        # before a restart (at most that, unmeasured) and its seen ids the state stays under it.
        self._buffered_bytes: dict[str, int] = {}
        self._buffer_limit = max(1, settings.max_state_bytes // 4)
        self._early_logged_at = -math.inf
        self._due_behind: dict[int, float] = {}
        self._due_logged_at = -math.inf

    # --- the two entry points ----------------------------------------------------------------

    def process_batch(
        self,
        records: Sequence[RecordLike],
        offsets: OffsetCheck | None = None,
        caught_up: Iterable[int] = (),
        *,
        writes: bool = True,
    ) -> BatchOutput:
        """Evaluate one batch of raw records; never raises for bad input (it dead-letters it).

        ``offsets`` is :meth:`check_offsets` of exactly these records when the caller already has
        it (the runtime does, for gap repair); its gaps are counted and the offsets remembered.
        ``caught_up``: partitions this batch reads to the end of what the broker holds; once its
        events are evaluated, live clocks of those partitions catch up with the wall clock (a
        mapping: as of the time each was known read to its end, ``PartitionClocks.catch_up``).
        ``writes=False`` leaves the state writes (and the dead letters of accounts quarantined) to
        :meth:`take_writes`, which the caller must call before anything else uses this processor.
        """
        records = self._skip_evaluated(records)
        if offsets is None:
            offsets = self.check_offsets(records)
        self._note_offsets(offsets)
        out = BatchOutput()
        now = self._wall_clock()
        # Per partition: the watermark as it stood before the batch (what its accounts are advanced
        # from: they are advanced once, after the batch), and the clock as each event arrives (the
        # batch's earlier events counted): an event older than that is late, as in the backtest,
        # wherever the poll boundaries fall.
        before: dict[int, float] = {}
        late_clock: dict[int, float] = {}
        # This batch's states by account: one state-cache lookup (LRU bookkeeping) per account, not
        # per event. A quarantine replaces an account's state in the cache: it is then dropped here.
        states: dict[str, StateT] = {}
        # Accounts with an accepted event -> partition, in first-accepted order (marked dirty and
        # advanced after the loop).
        accepted: dict[str, int] = {}
        outcomes: dict[EventOutcome, int] = {}  # outcomes other than ACCEPTED (counted in ``accepted``)
        n_accepted = 0
        # Per record only what must be per record; names looked up once per batch.
        max_bytes = self.settings.max_event_bytes
        max_skew = self.settings.max_future_skew_seconds
        cache_get = self.cache.get
        on_event = self.engine.on_event
        observe_watermark = self.clocks.observe_watermark
        buffered = self._buffered_bytes
        if len(buffered) > MAX_HOME_PARTITIONS:  # accounts never measured again: forget the estimates
            buffered.clear()
        accepted_outcome = EventOutcome.ACCEPTED
        duplicate_outcome = EventOutcome.DUPLICATE
        read_again = self._read_again
        n_read_again = 0  # of the duplicates, records evaluated before (``read_again``), read again
        for record in records:
            decoded = decode_event(record.value, max_bytes=max_bytes, max_future_skew=max_skew, now=now)
            if isinstance(decoded, Rejection):
                letter = DeadLetterOutput(Record.of(record), str(decoded.reason), decoded.detail, decoded.field)
                self._dead_letter(out, letter)
                where = letter.record
                self.rejection_log.rejected(
                    letter.reason,
                    letter.detail,
                    letter.field,
                    where.topic,
                    where.partition,
                    where.offset,
                    now,
                    where.key,
                )
                continue
            p = record.partition
            account_id = decoded.account_id
            home = self._home.get(account_id)
            if home is None:
                home = self._home_partition(account_id)
            if home != p and not self._misrouted_forward(record, account_id, home, now):
                self._forward(out, record, account_id, home, now)
                continue
            wm = before.get(p)
            if wm is None:
                wm = before[p] = late_clock[p] = self._watermark_before(p, decoded.ts)
            state = states.get(account_id)
            if state is None:
                state = states[account_id] = cache_get(account_id, p)
            try:
                outcome, findings = on_event(state, decoded, wm, late_clock[p])
            except Exception as exc:  # a rule bug must not stall the stream nor lose the event
                log.exception("rule engine failed on an event", account_id=account_id)
                self._dead_letter(
                    out, DeadLetterOutput(Record.of(record), PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
                )
                del states[account_id]  # _check_account may quarantine it (a fresh state in the cache)
                self._check_account(account_id, p, state, wm, out, now)
                continue
            if outcome is accepted_outcome:
                n_accepted += 1
                moved = observe_watermark(p, decoded.ts)
                if moved is not None and moved > late_clock[p]:
                    late_clock[p] = moved
                accepted[account_id] = p
                buffered[account_id] = buffered.get(account_id, 0) + len(record.value or b"")
            else:
                if outcome is EventOutcome.LATE:
                    if record.offset < read_again.get(p, -1):
                        # Evaluated before the rebalance (here or by the partition's earlier owner): its
                        # id may be forgotten (older than the dedup horizon behind the clock); not late.
                        outcome = EventOutcome.DUPLICATE
                        n_read_again += 1
                    else:
                        clock = max(late_clock[p], state.finalized_until)
                        self.late_log.late(p, account_id, clock - decoded.ts, now)
                elif outcome is duplicate_outcome and record.offset < read_again.get(p, -1):
                    # Below what was evaluated before: a restart's or rebalance's re-read, not a producer's copy.
                    n_read_again += 1
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if findings:
                self._emit(findings, out, now, p)
        if read_again:  # read past what was evaluated before: judged as usual from now on
            for p, nxt in offsets.next.items():
                if nxt >= read_again.get(p, nxt + 1):
                    del read_again[p]
        out.accepted += n_accepted
        if n_accepted:
            outcomes[accepted_outcome] = n_accepted
        touched: dict[int, set[str]] = {}
        mark_dirty = self.cache.mark_dirty
        for account_id, p in accepted.items():
            mark_dirty(account_id, p)
            accounts = touched.get(p)
            if accounts is None:
                accounts = touched[p] = set()
            accounts.add(account_id)
        self._count_outcomes(outcomes, n_read_again)
        self.duplicate_log.ignored(outcomes.get(EventOutcome.DUPLICATE, 0), now, read_again=n_read_again)
        self.late_log.flush_counts()
        self.late_log.flush(now)
        self.rejection_log.flush(now)
        caught = set(caught_up)
        # After the batch's events were judged against the clock before it; a mapping says as of when.
        self.clocks.catch_up(caught_up if isinstance(caught_up, Mapping) else caught)
        advanced = sorted(touched.keys() | caught)
        for p, until in self._due_work_slices(advanced):
            self._advance_partition(p, touched.get(p, set()), out, now, until)
        out.clock_writes = self.clocks.take_dirty()
        self._count_cooldowns()
        if writes:
            self.take_writes(out)
        return out

    def tick(self, partitions: Iterable[int], caught_up: Iterable[int], *, writes: bool = True) -> BatchOutput:
        """Advance the clock of ``partitions`` (timer): fire due deadlines and buffered events.

        ``caught_up``: the partitions with nothing waiting to be read; in live mode the wall clock
        moves their clocks (``PartitionClocks.catch_up``), never a partition still reading a backlog.
        ``writes``: as for :meth:`process_batch`.
        """
        out = BatchOutput()
        partitions = sorted(partitions)
        self.late_log.expose(partitions)
        self.clocks.catch_up(caught_up)
        now = self._wall_clock()
        for p, until in self._due_work_slices(partitions):
            self._advance_partition(p, set(), out, now, until)
        # A quiet stream has no batch to log the late and refused records held back since the last line.
        self.late_log.flush(now)
        self.rejection_log.flush(now)
        self.duplicate_log.ignored(0, now)
        self._count_cooldowns()
        if writes:
            self.take_writes(out)
        return out

    def _count_cooldowns(self) -> None:
        """Count the findings the rules' cooldowns dropped since the last call (DESIGN §9:
        ``preempt_alerts_suppressed_total{reason="cooldown"}``; the backtest's summary shows them too)."""
        total = self.engine.suppressed_by_cooldown
        if total > self._cooled_counted:
            self._cooled.inc(total - self._cooled_counted)
        self._cooled_counted = total
        churned = int(getattr(self.engine, "suppressed_after_churn", 0))
        if churned > self._churned_counted:
            self._churned.inc(churned - self._churned_counted)
        self._churned_counted = churned
        self._count_restarts()
        self._warn_missing_events()

    def _warn_missing_events(self) -> None:
        """Say once per rule, at WARNING, when a risk rule has folded in many events and none had a name its model
        learned from: every per-event feature reads as absent, the risk sits at its floor and the rule is silent."""
        for rule_id, seen in self.engine.rules_missing_their_events(MISSING_EVENTS_AFTER).items():
            if rule_id in self._missing_warned:
                continue
            self._missing_warned.add(rule_id)
            log.warning(
                "risk rule sees none of its model's event names",
                rule=rule_id,
                events_so_far=seen,
                why="the model was trained on other events (another product's, or names renamed since): its "
                "per-event features all read as absent and it will hardly ever alert; train it on these events",
            )

    def _count_restarts(self) -> None:
        """Count (``preempt_rule_states_restarted_total{rule}``) the account states a rule started afresh, and say
        it: the first time for a rule at WARNING, as a retrained model with another vocabulary silently restarts
        every account's risk features (no alert before ``warmup``, baselines short for weeks)."""
        for rule_id, total in self.engine.states_restarted.items():
            before = self._restarts_counted.get(rule_id, 0)
            if total <= before:
                continue
            RULE_STATES_RESTARTED.labels(rule=rule_id).inc(total - before)
            self._restarts_counted[rule_id] = total
            if before == 0:
                log.warning(
                    "rule state restarted: the stored account states were kept under another model vocabulary",
                    rule=rule_id,
                    accounts_so_far=total,
                    why="the rule's model file was replaced by one trained on other terms; each account's features "
                    "start afresh from its next events (no alert before warmup; baselines short for up to 10 weeks)",
                    metric="preempt_rule_states_restarted_total",
                )

    def take_writes(self, out: BatchOutput, count: int | None = None) -> None:
        """Serialize the dirty states (the ``count`` oldest, or every one when None) into
        ``out.state_writes``, once per account, and add the dead letters of the accounts
        quarantined since the last call.

        :meth:`process_batch` and :meth:`tick` do it themselves unless called with
        ``writes=False``: the runtime hands a batch's alerts to the producer first, so they do not
        wait for the serialization of every touched account's state (a live batch touches most
        accounts, each with the events it buffers for ``allowed_lateness``).
        """
        out.state_writes = self.cache.flush(count)
        self._dead_letter_quarantined(out)

    def take_dead_letters(self, out: BatchOutput) -> None:
        """Add the dead letters of the accounts quarantined since the last call, leaving the states
        dirty in the cache (the runtime writes each state about once per
        ``worker_state_write_interval_seconds``; dead letters go out with their batch)."""
        self._dead_letter_quarantined(out)

    def next_deadline(self, partitions: Iterable[int]) -> float | None:
        """Live: the wall-clock time at which the earliest pending wakeup of ``partitions`` falls due
        on a caught-up partition (the wall clock − lateness reaches it); None when none is pending
        or in event-time mode."""
        wakeups = self.wakeups
        earliest = min((w for p in partitions if (w := wakeups.next_due(p)) is not None), default=None)
        return None if earliest is None else self.clocks.wall_time_of(earliest)

    # --- recovery ------------------------------------------------------------------------------

    def check_offsets(self, records: Sequence[RecordLike]) -> OffsetCheck:
        """One pass over ``records``' offsets (no state change): every offset jump, against the
        offsets of the previous batches too, and each partition's first and next offset."""
        expected: dict[int, int] = {}
        first: dict[int, int] = {}
        gaps: list[tuple[int, int, int]] = []
        self._walk_offsets(records, expected, first, gaps)
        return OffsetCheck(gaps, first, expected)

    def check_runs(self, runs: Iterable[Sequence[RecordLike]]) -> OffsetCheck:
        """:meth:`check_offsets` of the records of ``runs`` one after the other, where each run holds
        records of ONE partition in the order read (a poll's records per partition).

        A run whose offsets are one contiguous range starting at or after the partition's next
        offset (the usual case) is checked without a step per record; any other run is walked
        record by record exactly as :meth:`check_offsets` does.
        """
        known = self._next_offset
        expected: dict[int, int] = {}
        first: dict[int, int] = {}
        gaps: list[tuple[int, int, int]] = []
        for run in runs:
            if not run:
                continue
            p, start = run[0].partition, run[0].offset
            nxt = known.get(p)
            if (
                p not in first
                and (nxt is None or start >= nxt)
                and [r.offset for r in run] == list(range(start, start + len(run)))
            ):
                first[p] = start
                if nxt is not None and start > nxt:
                    gaps.append((p, nxt, start))
                expected[p] = start + len(run)
            else:
                self._walk_offsets(run, expected, first, gaps)
        return OffsetCheck(gaps, first, expected)

    def _walk_offsets(
        self,
        records: Iterable[RecordLike],
        expected: dict[int, int],
        first: dict[int, int],
        gaps: list[tuple[int, int, int]],
    ) -> None:
        known = self._next_offset
        for record in records:
            p, offset = record.partition, record.offset
            nxt = expected.get(p)
            if nxt is None:
                if p not in first:
                    first[p] = offset
                nxt = known.get(p)
            if nxt is None or offset >= nxt:
                if nxt is not None and offset > nxt:
                    gaps.append((p, nxt, offset))
                expected[p] = offset + 1

    def find_gaps(self, records: Sequence[RecordLike]) -> list[tuple[int, int, int]]:
        """``(partition, first_missing, next_seen)`` for every offset jump in ``records`` (no state change)."""
        return self.check_offsets(records).gaps

    def evaluated_until(self, partition: int) -> int | None:
        """The next offset of ``partition`` to evaluate: every record before it was (None: none
        since the last rebalance). Ahead of the acked offsets while batches' output is in flight."""
        return self._next_offset.get(partition)

    def skip_recordless(self, partition: int, end: int) -> None:
        """Offsets of ``partition`` before ``end`` hold no record (transaction markers, checked by
        the caller): the next record expected is at ``end``, and reaching it is no gap."""
        if end > self._next_offset.get(partition, -1):
            self._next_offset[partition] = end

    def forget_offsets(self) -> None:
        """After a rebalance the consumer seeks to committed offsets: start gap detection afresh.

        What this processor evaluated stays known as evaluated (:meth:`read_again`): the first poll
        after the rebalance reads from the committed offset, behind it."""
        for partition, nxt in self._next_offset.items():
            self.read_again(partition, nxt)
        self._next_offset.clear()

    def read_again(self, partition: int, handled_until: int) -> None:
        """Records of ``partition`` before ``handled_until`` were evaluated already — by this processor
        before a rebalance, or by an earlier owner (the ``partition-progress`` table, checked after each
        assignment, when the group's committed offset is behind it) — and come again. Their effect is
        in the account states and the clock, so one of them the clock has passed is counted as a
        duplicate, not as a late event (the outcome is the same: ignored). An event-time replay whose
        partitions moved between two workers (one joining, one SIGKILLed before its commit) counted
        1,026 of 12,716 events late that the backtest has on time: their ids were older than the dedup
        horizon behind the clock, so forgotten. Dropped once the partition is read past it."""
        if handled_until > self._read_again.get(partition, -1):
            self._read_again[partition] = handled_until

    def reading_from(self, committed: Mapping[int, int | None]) -> None:
        """After a rebuild the consumer reads each assigned partition from the group's ``committed``
        offset: only a partition read again from behind what was evaluated keeps its :meth:`read_again`
        offset (not one no longer assigned, nor one without a committed offset — a recreated topic
        starts at offset 0 again)."""
        self._read_again = {
            p: n for p, n in self._read_again.items() if (at := committed.get(p)) is not None and at < n
        }

    def restore_clock(self, key: bytes, value: bytes, partitions: set[int]) -> None:
        """Seed a partition's clock from one record of the clock table, if it is one of ``partitions``.

        An unreadable record is logged and skipped (the partition's clock restarts from its next
        event or the wall clock), never raised: raised here it would stop every worker that
        recovers the partition.
        """
        try:
            partition, max_event_time = int(key), float(value)
        except (TypeError, ValueError) as exc:
            log.error("unreadable partition clock record skipped", key=repr(key)[:100], error=str(exc))
            return
        if partition in partitions and math.isfinite(max_event_time):
            self.clocks.restore(partition, max_event_time)

    def rebuild_wakeups(self, states: Iterable[tuple[str, int, bytes]]) -> int:
        """Re-index ``(account_id, partition, state bytes)`` read from the table after recovery.

        An unreadable state is quarantined (dead-lettered with the next batch or tick's output), not
        raised: raised here it would stop every worker that recovers the partition.
        """
        n = 0
        for account_id, partition, raw in states:
            state = self.cache.load(account_id, partition, raw)
            wakeup = None
            if state is not None:
                try:
                    wakeup = self.engine.next_wakeup(state)
                except Exception as exc:  # noqa: BLE001 - one account's failure is that account's (policy)
                    self._quarantine(account_id, partition, exc)
            self.wakeups.set(partition, account_id, wakeup)
            n += 1
        return n

    # --- internals -----------------------------------------------------------------------------

    def _skip_evaluated(self, records: Sequence[RecordLike]) -> Sequence[RecordLike]:
        """``records`` without those this processor evaluated since the last rebalance (offset below
        the partition's next offset to evaluate). Faust seeks a partition back to its committed
        offset at the end of a rebalance's recovery, and a poll handled while that seek was awaited
        comes again: its effect is in the account states already. Evaluated again, its events older
        than the dedup horizon behind the clock were counted and logged as late (their ids were
        forgotten), and its bad records dead-lettered twice. Counted as duplicates."""
        known = self._next_offset
        if not known or not records:
            return records
        kept = [r for r in records if (nxt := known.get(r.partition)) is None or r.offset >= nxt]
        skipped = len(records) - len(kept)
        if not skipped:
            return records
        EVENTS.labels(outcome=EventOutcome.DUPLICATE.value).inc(skipped)
        DUPLICATE_EVENTS.labels(source=DUPLICATE_READ_AGAIN).inc(skipped)
        log.info("records read again after a seek back were evaluated already; skipped", records=skipped)
        return kept

    def _note_offsets(self, offsets: OffsetCheck) -> None:
        # Offsets of a non-transactional topic are contiguous, so a jump means records were
        # acknowledged by the consumer without reaching us; say so loudly (it never should).
        for partition, first_missing, next_seen in offsets.gaps:
            EVENT_OFFSET_GAPS.inc(next_seen - first_missing)
            log.error(
                "records skipped before reaching the rules worker",
                partition=partition,
                first_missing=first_missing,
                next_seen=next_seen,
            )
        self._next_offset.update(offsets.next)

    def _home_partition(self, account_id: str) -> int:
        if len(self._home) >= MAX_HOME_PARTITIONS:
            self._home.clear()
        home = self._home[account_id] = partition_for_key(account_id.encode(), self._partitions)
        return home

    def _misrouted_forward(self, record: RecordLike, account_id: str, home: int, now: float) -> bool:
        """Whether ``record`` (off its account's partition) is already a forwarded copy: then it is evaluated
        where it is, never forwarded again, and an ERROR says why (at most once per interval).

        A copy lands off its home only when workers disagree on the topic's partition count
        (``PREEMPT_TOPIC_PARTITIONS`` during a rolling change after partitions were added): forwarding it
        again would bounce it between the workers' two ideas of its home for as long as both run.
        """
        if not any(k == FORWARDED_FROM for k, _ in record.headers):
            return False
        if now - self._misrouted_logged_at >= FORWARD_LOG_INTERVAL_SECONDS:
            log.error(
                "forwarded event is not on its account's partition either; evaluated here, not forwarded again "
                "(do all workers have the same PREEMPT_TOPIC_PARTITIONS as the topic?)",
                account_id=account_id,
                partition=record.partition,
                account_partition=home,
                partitions_setting=self._partitions,
            )
            self._misrouted_logged_at = now
        return True

    def _forward(self, out: BatchOutput, record: RecordLike, account_id: str, home: int, now: float) -> None:
        """A valid event on another partition than its account's: not evaluated here (the account's
        state, clock and deadlines live on its own partition, where the rebuild after a rebalance
        looks for them, maybe in another worker) but re-sent there, counted, and logged at most
        once per interval."""
        out.forwards.append(ForwardOutput(Record.of(record), account_id, home))
        EVENTS.labels(outcome=FORWARDED).inc()
        if now - self._forward_logged_at < FORWARD_LOG_INTERVAL_SECONDS:
            self._forwards_unlogged += 1
            return
        log.warning(
            "event on another partition than its account's; forwarded there (key the records by account_id "
            "with Kafka's default murmur2 partitioner)",
            account_id=account_id,
            partition=record.partition,
            account_partition=home,
            key=None if record.key is None else record.key[:100].decode("utf-8", "replace"),
            more_forwarded_since_last_warning=self._forwards_unlogged,
        )
        self._forward_logged_at = now
        self._forwards_unlogged = 0

    def _watermark_before(self, partition: int, first_event_time: float) -> float:
        # A partition that has seen nothing yet starts its clock at its first event, as the
        # backtest's clock starts at the file's first event.
        return self.clocks.watermark_or_start(partition, first_event_time)

    def _due_work_slices(self, partitions: Sequence[int]) -> Iterator[tuple[int, float]]:
        """Each of ``partitions`` with the ``time.perf_counter()`` by which its due accounts should be
        left for later: its share of ``DUE_WORK_SECONDS``, measured as it starts (docs/pipeline.md,
        Deadline work)."""
        share = max(DUE_WORK_MIN_SECONDS, DUE_WORK_SECONDS / max(1, len(partitions)))
        for p in partitions:
            yield p, time.perf_counter() + share

    def _advance_partition(
        self, partition: int, touched: set[str], out: BatchOutput, now: float, until: float = math.inf
    ) -> None:
        """Advance the accounts of ``partition`` this batch touched, then those whose wakeup the watermark
        has passed, earliest first, until ``until`` (``time.perf_counter()``): the rest stay due for the
        next batch or tick. A risk rule makes every account due at each UTC midnight, ~0.5 ms each:
        done in one go, 100,000 accounts held the event loop (heartbeats, fetches, probes) for a minute."""
        wm = self.clocks.watermark(partition)
        if wm is None:  # event-time mode and nothing seen on this partition yet: no clock to move
            return
        WATERMARK.set(wm)
        evaluations = 0
        for account_id in sorted(touched):
            evaluations += self._advance_account(account_id, partition, wm, out, now, touched=True)
        behind = 0.0
        for account_id in self.wakeups.iter_due(partition, wm):
            evaluations += self._advance_account(account_id, partition, wm, out, now, touched=False)
            if time.perf_counter() >= until:
                oldest = self.wakeups.next_due(partition)
                behind = 0.0 if oldest is None or oldest > wm else wm - oldest
                break
        self._note_due_work(partition, behind, now)
        if evaluations:
            for counter in self._rule_evaluations:
                counter.inc(evaluations)

    def _advance_account(
        self, account_id: str, partition: int, wm: float, out: BatchOutput, now: float, *, touched: bool
    ) -> int:
        """Advance one account to ``wm`` and reschedule it: 1, or 0 when its state could not move (quarantined)."""
        state = self.cache.get(account_id, partition)
        try:
            findings = self.engine.advance(state, wm)
            if touched and self._buffered_bytes.get(account_id, 0) > self._buffer_limit:
                findings += self._bound_buffer(account_id, state, partition, now)
            wakeup = self.engine.next_wakeup(state)
        except Exception as exc:  # noqa: BLE001 - the account's state cannot move on: set it aside, not the stream
            self._quarantine(account_id, partition, exc)
            self.wakeups.set(partition, account_id, None)
            return 0
        self.cache.mark_dirty(account_id, partition)
        self.wakeups.set(partition, account_id, wakeup)
        self._emit(findings, out, now, partition)
        return 1

    def _note_due_work(self, partition: int, behind: float, now: float) -> None:
        """``preempt_deadline_work_behind_seconds{partition}``: how far (event time) the oldest account still due
        is behind the watermark after this pass; 0 once none is. Logged at most every
        ``DUE_WORK_LOG_INTERVAL_SECONDS`` while it is behind."""
        was = self._due_behind.get(partition, 0.0)
        if behind == was == 0.0:
            return
        self._due_behind[partition] = behind
        DEADLINE_WORK_BEHIND.labels(partition=str(partition)).set(behind)
        if behind > 0.0 and now - self._due_logged_at >= DUE_WORK_LOG_INTERVAL_SECONDS:
            self._due_logged_at = now
            log.info(
                "deadline work spread over the next batches and ticks",
                partition=partition,
                behind_seconds=round(behind, 3),
                why="more accounts fell due at once (a risk rule scores every account at each UTC midnight) than "
                f"{DUE_WORK_SECONDS:g} s of work per batch or tick covers; the rest follow, events go on meanwhile",
            )

    def _bound_buffer(self, account_id: str, state: StateT, partition: int, now: float) -> list[FindingT]:
        """Keep one account's buffered events within ``_buffer_limit`` bytes: past it, its oldest are
        evaluated now (``engine.bound_buffer``), counted and logged, instead of its state growing
        past ``max_state_bytes`` and being quarantined with the alert its burst should raise."""
        applied, remaining, findings = self.engine.bound_buffer(state, self._buffer_limit)
        if remaining:
            self._buffered_bytes[account_id] = remaining
        else:
            self._buffered_bytes.pop(account_id, None)
        if applied:
            EVENTS_EVALUATED_EARLY.inc(applied)
            if now - self._early_logged_at >= FORWARD_LOG_INTERVAL_SECONDS:
                log.warning(
                    "an account's events arrive faster than its state can hold them for the allowed lateness; "
                    "its oldest were evaluated ahead of the watermark (its later events older than them are late)",
                    account_id=account_id,
                    partition=partition,
                    evaluated_early=applied,
                    buffered_bytes=remaining,
                    limit_bytes=self._buffer_limit,
                )
                self._early_logged_at = now
        return findings

    def _check_account(
        self, account_id: str, partition: int, state: StateT, watermark: float, out: BatchOutput, now: float
    ) -> None:
        """After the engine failed on an event: does the account's state still advance? If not (the
        failure is in the state, e.g. the event got buffered), quarantine it, or every later event of
        the account would fail too."""
        try:
            findings = self.engine.advance(state, watermark)
        except Exception as exc:  # noqa: BLE001 - the state is broken: set it aside (policy)
            self._quarantine(account_id, partition, exc)
            return
        self.cache.mark_dirty(account_id, partition)
        self._emit(findings, out, now, partition)

    def _quarantine(self, account_id: str, partition: int, exc: Exception) -> None:
        log.error("rule engine failed on an account's state", account_id=account_id, exc_info=exc)
        self.cache.quarantine(account_id, partition, EVALUATION_ERROR, f"{type(exc).__name__}: {exc}"[:500])

    def _emit(self, findings: list[FindingT], out: BatchOutput, now: float, partition: int) -> None:
        for finding in findings:
            alert = self._alert(finding, out, now, partition)
            if alert is None:
                continue
            out.alerts.append(alert)
            newest = finding.newest_event_ts
            if self._live and newest is not None:
                # From the moment the alert was due: its newest event, or the deadline or tick that fired
                # it (an inactivity alert is due 14 days after its last event; timed from that event, every
                # one landed in +Inf and the p99 latency alert paged on alerts that were on time).
                EVENT_TO_ALERT.observe(max(0.0, now - max(newest, finding.fired_at)))

    def _alert(self, finding: FindingT, out: BatchOutput, now: float, partition: int) -> Alert | None:
        """Enrich and render ``finding``; without the account on failure; dead-lettered if that fails too."""
        try:
            return self.engine.to_alert(finding, self.accounts(finding.account_id), now)
        except Exception as exc:  # noqa: BLE001 - any enrichment failure: retried without the account
            log.warning(
                "alert enrichment failed; sending it without account context",
                account_id=finding.account_id,
                rule_id=finding.rule_id,
                error=f"{type(exc).__name__}: {exc}",
            )
        try:
            return self.engine.to_alert(finding, None, now)
        except Exception as exc:
            log.exception(
                "finding could not become an alert; dead-lettered",
                account_id=finding.account_id,
                rule_id=finding.rule_id,
            )
            ALERTS_NOT_BUILT.inc()
            value = orjson.dumps(finding, default=repr)  # a dataclass as its fields, anything else as its repr
            record = Record(partition, -1, str(finding.account_id).encode(), value, topic="findings")
            self._dead_letter_record(out, DeadLetterOutput(record, ALERT_BUILD_FAILED, f"{type(exc).__name__}: {exc}"))
            return None

    def _dead_letter_quarantined(self, out: BatchOutput) -> None:
        for q in self.cache.take_quarantined():
            out.dead_letters.append(_quarantine_letter(q))
            EVENTS_DEAD_LETTERED.labels(reason=q.reason).inc()

    @staticmethod
    def _dead_letter_record(out: BatchOutput, letter: DeadLetterOutput) -> None:
        """A dead letter that is not an event of the stream (counted by reason only)."""
        out.dead_letters.append(letter)
        EVENTS_DEAD_LETTERED.labels(reason=letter.reason).inc()

    @staticmethod
    def _dead_letter(out: BatchOutput, letter: DeadLetterOutput) -> None:
        out.dead_letters.append(letter)
        EVENTS.labels(outcome="dead_lettered").inc()
        EVENTS_DEAD_LETTERED.labels(reason=letter.reason).inc()

    @staticmethod
    def _count_outcomes(outcomes: dict[EventOutcome, int], read_again: int) -> None:
        """``read_again``: how many of the duplicates are records evaluated before, read again."""
        # Counted once per batch: prometheus_client's labels() costs more than decoding an event.
        for outcome, n in outcomes.items():
            EVENTS.labels(outcome=outcome.value).inc(n)
        duplicates = outcomes.get(EventOutcome.DUPLICATE, 0)
        if read_again:
            DUPLICATE_EVENTS.labels(source=DUPLICATE_READ_AGAIN).inc(read_again)
        if duplicates > read_again:
            DUPLICATE_EVENTS.labels(source=DUPLICATE_FROM_PRODUCER).inc(duplicates - read_again)


def _quarantine_letter(q: Quarantine) -> DeadLetterOutput:
    """The dead letter that keeps a quarantined account's stored state: key = account id, value = the bytes."""
    record = Record(q.partition, -1, q.account_id.encode(), q.kept, topic=STATE_SOURCE)
    return DeadLetterOutput(record, q.reason, q.detail)
