"""The rules app's agent, clock timer and rebalance hooks — thin wiring around ``RulesProcessor``.

* Each poll of ``preempt.events`` reaches ``WorkerRuntime.handle_poll`` as one batch straight from
  the consumer's fetch loop (``faust_compat.divert_topic_polls``), so the state of each touched
  account is written once per batch and Faust's per-message path is not paid per record. With
  ``PREEMPT_WORKER_BATCHED_POLL=false`` one agent, concurrency 1 (faust-streaming #606 commits past
  unprocessed messages above 1), consumes them in ``take_events`` batches instead.
* A timer advances every assigned partition's clock every ``clock_tick_seconds`` (wall clock in
  live mode), firing inactivity/absence deadlines with no further events.
* After a rebalance or a restart the in-memory parts (state cache, partition clocks, wakeup
  index) are rebuilt from the recovered tables before the next batch or tick.
* A batch's output (alerts delivered → states → flush → clocks, ``streams.worker.emit``) is
  performed by an *output stage* that runs while the next poll is processed: stages write states,
  clocks and acks in batch order, at most ``STAGES_IN_FLIGHT`` are unfinished, a poll's offsets
  are acked at the end of the stage that releases it (below), and revocation (and any rebuild
  from the tables) first waits for every stage. A batch, tick or stage that fails stops the
  worker, and nothing more is written (:attr:`WorkerRuntime.failed`): not even by the stop.
* Account states are written about once every ``worker_state_write_interval_seconds`` (Kafka
  Streams' ``commit.interval.ms``) each, and the writes are *spread* over the interval: each stage
  serializes its share of the dirty states, oldest first (the dirty count × the time since the
  previous stage ÷ the interval, and every state dirty for longer than the interval). Serializing
  every hot account at once stalled the event loop for up to half a second once a second, and an
  alert due meanwhile waited for it. A batch whose states are not all written yet *holds* its acks
  and partition clocks; a stage releases, in order, the held batches whose states are all
  serialized (the cache's marks), after its state writes and before their clocks. Alerts and dead
  letters still go out with the batch. :meth:`WorkerRuntime.drain` (revocation, rebuild, the
  per-record path), the end of an event-time replay and a graceful stop
  (:meth:`WorkerRuntime.write_before_stop`, before Faust stops the consumer and the tables) force
  the write; after a crash the restart re-reads the held batches from the committed offset.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from streams.runtime.copartitioning import PartitionCountError, assignment_problem
from streams.runtime.faust_compat import (
    ClusterPartitionCounts,
    ack_offsets,
    committed_offsets,
    count_received,
    divert_topic_polls,
    flow_active,
    group_committed_offsets,
    highwater_time,
    last_unanswered_request,
    mark_offsets_done,
    resume_flow_without_clearing,
    seek_uncommitted_to_beginning,
    set_fetch_max_wait,
    watch_unanswered_requests,
)
from streams.runtime.group_membership import GroupMembership
from streams.runtime.logs import get_logger
from streams.runtime.metrics import CLOCK_HELD_PARTITIONS, EVENTS_ACKED
from streams.runtime.ops_web import broker_last_unanswered
from streams.runtime.settings import Settings
from streams.runtime.skipped_records import offset_jump, reread_skipped
from streams.worker.account_letters import AccountDeadLetters
from streams.worker.emit import OutputWriter
from streams.worker.gap_repair import GapRepair
from streams.worker.gc_tuning import tune_gc
from streams.worker.processor import (
    BatchOutput,
    OffsetCheck,
    Record,
    RecordLike,
    RulesProcessor,
    partition_for_key,
)
from streams.worker.progress import PartitionProgress, reading_starts

log = get_logger(__name__)

# A deadline timer fires this long after the deadline's wall-clock time: its tick must find the
# wall clock − lateness past the wakeup (the loop's timer clock and the wall clock are not the same).
DEADLINE_MARGIN_SECONDS = 0.002

# Output stages unfinished at once (bounds the polls held in memory and how far acks lag): each
# waits for a flush (its states on the broker) before its partition clocks, and a flush that
# starts while the next batches write can take a few polls to return.
STAGES_IN_FLIGHT = 3

# A graceful stop waits at most this long for the held states to be written (a broker that does not
# answer must not keep the process from stopping; the restart then re-reads, as after a crash).
STOP_WRITE_TIMEOUT_SECONDS = 15.0
# How long the watchdog's recordless-tail check waits for the worker's lock (settle_recordless_tail).
SETTLE_LOCK_WAIT_SECONDS = 1.0
# How long a rebuild waits for the group coordinator's committed offsets (``_group_committed``).
COMMITTED_FETCH_TIMEOUT_SECONDS = 10.0


class WorkerFailedError(RuntimeError):
    """A batch, tick or output stage failed: the worker is stopping, and writes nothing more."""


@dataclass(eq=False)
class OutputStage:
    """One batch's (or tick's) output in flight: ``written`` once its states are handed to the
    producer, ``task`` done once its clocks are written and its offsets acked."""

    written: asyncio.Future[None]
    task: asyncio.Future[None] = field(init=False)


class WorkerRuntime:
    """Everything one rules worker holds between batches, guarded by one lock."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        events_topic: str,
        processor: RulesProcessor[Any, Any],
        writer: OutputWriter,
        state_table: Any,
        clock_table: Any,
    ) -> None:
        self.app = app
        self.settings = settings
        self.events_topic = events_topic
        self.processor = processor
        self.writer = writer
        self.state_table = state_table
        self.clock_table = clock_table
        self.lock = asyncio.Lock()
        self.gap_repair: GapRepair | None = None
        # Handled offsets kept in a table: a committed offset moved past them is counted (streams/worker/progress.py).
        self.progress: PartitionProgress | None = None
        # Unreadable account records wait for the assignment's rebuild, then are dead-lettered once.
        self.account_letters: AccountDeadLetters | None = None
        # Next offset after the last record handled, per partition (the liveness watchdog's
        # "processed" progress marker; dropped with the partition on revocation).
        self.processed_offsets: dict[int, int] = {}
        # Next offset after the last record acked to Faust by the batched path, per partition: behind
        # the processor's ``evaluated_until`` while a batch's output is in flight or held for the
        # state write interval (``settle_recordless_tail`` acks nothing then).
        self._acked_until: dict[int, int] = {}
        self._needs_rebuild = True
        self._recovered = False
        self._recovered_once = False  # the first assignment's tables were restored (missing_events_topic)
        self._events_missing = False  # logged once per disappearance (missing_events_topic)
        # Partitions whose first record after a (re)assignment is still to be checked against the
        # group's committed offset (records between the two were fetched but never delivered).
        self._first_unchecked: set[int] = set()
        # The group's committed offsets the last rebuild got from the coordinator (``_group_committed``): what
        # the first record after an assignment is checked against (Faust's copy is empty until its seek back).
        self._committed_at_rebuild: dict[int, int | None] = {}
        # Live: the wall-clock time of the latest fetch answer that ended an outage already logged
        # (``_note_answers``: one WARN per outage, not per partition or batch).
        self._outage_end: float | None = None
        # The newest output stage (``_submit``), and the tasks of the stages not yet seen finished.
        self._stage: OutputStage | None = None
        self._unfinished: deque[asyncio.Future[None]] = deque()  # stage tasks not seen finished, oldest first
        self._crashing: asyncio.Future[Any] | None = None
        # Live: a one-shot timer for the earliest pending deadline (``_schedule_deadline``).
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_at = math.inf
        self._deadline_tick: asyncio.Future[None] | None = None
        # States written about once per interval each, spread over it: the batches (and ticks)
        # whose states are not all serialized yet, oldest first, each with the cache's dirty mark
        # after it, its partition clocks and its acks (``done``) (``_hold``, ``_release``).
        self._write_interval = settings.worker_state_write_interval_seconds
        self._clock: Callable[[], float] = time.monotonic  # the write shares' clock (a test freezes it)
        self._last_share = -math.inf  # self._clock() of the last stage's share of the writes
        self._write_credit = 0.0  # the fraction of a state write owed, carried to the next stage
        self._held: deque[
            tuple[int, dict[int, float], Callable[[], Awaitable[None]] | None, Callable[[], None] | None]
        ] = deque()
        # Set once a batch, tick or output stage fails (or is cancelled) part-way: the cache may hold
        # states whose alerts never reached the producer, so nothing more is written (a restart
        # re-reads from the last commit). See :meth:`_failing`.
        self._failed = False
        # A process paused past its session (SIGSTOP, a VM freeze) and resumed may have been dropped by the
        # group: its held states, progress and clocks are then the new owners' to write (GroupMembership.lost).
        self.membership = GroupMembership(
            app,
            settings.worker_session_timeout_seconds,
            "consumer group session expired (the process was paused or cut off longer than "
            "PREEMPT_WORKER_SESSION_TIMEOUT_SECONDS); its partitions went to other workers: nothing more "
            "is written for them, the unwritten states are dropped and re-read by their new owner",
        )

    @contextmanager
    def _failing(self) -> Iterator[None]:
        """Mark the runtime failed when the body raises (or is cancelled)."""
        try:
            yield
        except BaseException:
            self._failed = True
            raise

    @property
    def failed(self) -> bool:
        """True once a batch, tick or output stage failed: nothing more is written."""
        return self._failed

    # --- the hot path --------------------------------------------------------------------------

    async def handle_batch(self, events: Iterable[Any]) -> None:
        """Process one batch of ``preempt.events`` records and perform its I/O."""
        records = [
            Record(
                partition=e.message.partition,
                offset=e.message.offset,
                key=e.message.key,
                value=e.message.value,
                headers=_headers(e.message.headers),
                topic=e.message.topic,
            )
            for e in events
        ]
        async with self.lock:
            if self._failed:
                raise WorkerFailedError("an earlier batch or output stage failed; the worker is stopping")
            with self._failing():
                await self._process(records)
                await self.drain()  # the agent acks the batch when this returns
        EVENTS_ACKED.inc(len(records))

    async def handle_poll(self, polled: dict[Any, list[Any]], generation_id: int) -> None:
        """Process one poll's records of ``preempt.events`` as one batch (the batched path).

        ``polled`` maps each TP to aiokafka's records, handed over by the consumer's fetch loop
        (``faust_compat.divert_topic_polls``) instead of going through Faust's per-message path.
        Returns once the batch is processed and its output stage started (the fetch loop then
        polls again); its offsets are acked at the end of the stage that releases it (its own, or a
        later one once its states are written: the write interval), after its state writes and
        outputs are handed to the producer (Faust flushes it before committing). Records of an
        older consumer generation, or polled while a rebalance stopped the flow, are dropped:
        their partitions are re-read from the committed offsets. Revocation waits for the batch
        in flight (the lock) and for its output stage (:meth:`drain`).
        """
        async with self.lock:
            if self._failed or not self._still_member(generation_id):
                return  # unacked: re-read from the committed offset (after the rebalance, or the restart)
            # aiokafka's records as they are: a copy per record cost more than the offset and gap
            # bookkeeping of the whole batch (dead letters copy the few records they keep).
            records: list[RecordLike] = [r for batch in polled.values() for r in batch]
            # What the acks need, not the records: a batch can be held for a write interval.
            offsets = {tp: [r.offset for r in batch] for tp, batch in polled.items()}
            total = len(records)

            def acknowledge() -> None:
                if not self._still_member(generation_id):
                    return  # revoked meanwhile: the new owner re-reads from the committed offset
                acked_until = self._acked_until
                for tp, acked in offsets.items():
                    ack_offsets(self.app, tp, acked)
                    count_received(self.app, tp, len(acked), acked[-1])
                    if acked[-1] + 1 > acked_until.get(tp.partition, 0):
                        acked_until[tp.partition] = acked[-1] + 1
                EVENTS_ACKED.inc(total)

            def record_progress() -> None:
                if self.progress is None:
                    return
                if not self._still_member(generation_id):
                    return  # revoked meanwhile: the changelog partition is the new owner's
                self.progress.record({tp.partition: acked[-1] + 1 for tp, acked in offsets.items()})

            # Each TP's records are one partition's, in the order read: contiguous runs are checked whole.
            with self._failing():
                await self._process(records, acknowledge, self.processor.check_runs(polled.values()), record_progress)

    def _still_member(self, generation_id: int) -> bool:
        """Whether this process still owns the partitions of ``generation_id``'s assignment: the same
        generation, the flow not stopped by a rebalance, and the group still counting it as a member
        (a process paused past its session, then resumed, does not own them any more)."""
        return self.app.consumer_generation_id == generation_id and flow_active(self.app) and not self.membership.lost()

    async def drain(self) -> None:
        """Write every state still dirty, then wait until every output stage is done (offsets
        acked); raises what a stage raised. Under the lock."""
        if self.holding:
            await self._submit(BatchOutput(), force=True)
        while (stage := self._stage) is not None:
            await stage.task  # each stage waits for the one before it
            if stage is self._stage:  # no batch started its output meanwhile
                return

    async def _process(
        self,
        records: Sequence[RecordLike],
        acknowledge: Callable[[], None] | None = None,
        offsets: OffsetCheck | None = None,
        record_progress: Callable[[], None] | None = None,
    ) -> None:
        """Rebuild if needed, repair gaps, process, start the output stage (under the lock).

        ``offsets``: ``records``' offset check when the caller has it (checked against the offsets
        the processor knows now: after a rebuild it is taken again). ``record_progress`` writes the
        batch's progress record (the batched path's; the per-record path's is the batch's next offsets).
        """
        if self._needs_rebuild:
            await self.drain()  # the rebuild reads the tables: every pending write goes first
            offsets = None
        await self._maybe_rebuild()
        # One pass over the offsets serves gap repair, gap counting and the progress marker.
        if offsets is None:
            offsets = self.processor.check_offsets(records)
        after_commit = self._gaps_after_commit(offsets.first)
        gaps = after_commit + offsets.gaps
        repaired: list[Record] = []
        empty: list[tuple[int, int, int]] = []
        if gaps and self.gap_repair is not None:
            records, repaired, empty = await self._repair(records, gaps)
            offsets = self.processor.check_offsets(records)  # the merged batch (rare)
            if empty:  # offsets that hold no record (transaction markers) are not skipped records
                offsets.gaps = [g for g in offsets.gaps if g not in empty]
        if after_commit:
            offsets.gaps += unrepaired_after_commit(after_commit, empty, offsets)
        # Partitions read to the end of the last fetch once this batch is evaluated: their live
        # clocks catch up with the wall clock after its events (not only at the next tick). Live,
        # that is every assigned partition, not only the batch's: a poll holds the partitions that
        # had records, and the deadlines of the others (a buffered event the wall clock − lateness
        # passes) would otherwise wait for the timer, which waits for this lock.
        partitions: Iterable[int] = offsets.next
        if not self.settings.event_time_only:
            partitions = self.assigned_partitions() | offsets.next.keys()
        caught = self.caught_up_as_of(partitions, offsets.next)
        out = self.processor.process_batch(records, offsets, caught, writes=False)
        # An event-time replay read to the end of every assigned partition: nothing comes to write
        # its states with, and its acks are what a replay's end is measured by.
        force = False
        if self.settings.event_time_only and self._write_interval > 0:
            assigned = self.assigned_partitions()
            force = assigned <= self.caught_up(assigned)

        async def done() -> None:
            if repaired:
                await self._mark_done(repaired)
            for partition, start, end in empty:
                await mark_offsets_done(self.app, TP(self.events_topic, partition), start, end)
            processed = self.processed_offsets
            for partition, nxt in offsets.next.items():
                if nxt > processed.get(partition, 0):
                    processed[partition] = nxt
            if acknowledge is not None:
                acknowledge()

        if record_progress is None and self.progress is not None:  # Faust's per-message path
            progress, handled = self.progress, offsets.next

            def record_progress() -> None:
                progress.record(handled)

        await self._submit(out, done, force=force, progress=record_progress)
        self._schedule_deadline()

    @property
    def holding(self) -> bool:
        """True while states are dirty in the cache or acks or clocks wait for their write."""
        return bool(self._held or self.processor.cache.dirty)

    def _states_to_write(self, force: bool) -> int | None:
        """How many of the oldest dirty states this stage serializes; None: every one — when
        forced, when ``worker_state_write_interval_seconds`` is 0, or when none is dirty (the held
        batches, if any, are all covered then).

        Otherwise the stage's share of the interval: dirty × (time since the last stage that had
        states to write) ÷ interval, its fraction carried over, and at least every state dirty for
        the interval or longer. Under steady traffic each hot account is then written about once
        per interval, a few at every batch; the first batch after a quiet spell of an interval or
        more writes its states at once.
        """
        cache = self.processor.cache
        now = self._clock()
        if force or self._write_interval <= 0:
            self._last_share = now
            self._write_credit = 0.0
            return None
        if not cache.dirty:
            return None
        share = min(1.0, (now - self._last_share) / self._write_interval)
        self._last_share = now
        self._write_credit += cache.dirty * share
        count = int(self._write_credit)
        self._write_credit -= count
        return max(count, cache.dirty_since(now - self._write_interval))

    def _hold(
        self,
        out: BatchOutput,
        done: Callable[[], Awaitable[None]] | None,
        progress: Callable[[], None] | None = None,
    ) -> None:
        """Keep ``out``'s clocks, ``done`` (its acks) and ``progress`` (its progress record) until the
        states it dirtied are serialized."""
        if out.clock_writes or done is not None or progress is not None:
            self._held.append((self.processor.cache.dirty_mark, out.clock_writes, done, progress))
        out.clock_writes = {}

    def _release(self, out: BatchOutput) -> tuple[Callable[[], Awaitable[None]] | None, list[Callable[[], None]]]:
        """The held batches whose states are all serialized now, oldest first: their clocks join
        ``out``'s (written after its states), their acks run in order, and their progress records
        (returned second) go in the flush before those clocks."""
        held, written = self._held, self.processor.cache.written_mark
        clocks: dict[int, float] = {}
        dones: list[Callable[[], Awaitable[None]]] = []
        progress: list[Callable[[], None]] = []
        while held and held[0][0] <= written:
            _, batch_clocks, batch_done, batch_progress = held.popleft()
            clocks.update(batch_clocks)  # a later value of a partition's clock covers the earlier
            if batch_done is not None:
                dones.append(batch_done)
            if batch_progress is not None:
                progress.append(batch_progress)
        out.clock_writes = clocks
        if len(dones) <= 1:
            return (dones[0] if dones else None), progress

        async def release() -> None:
            for each in dones:
                await each()

        return release, progress

    async def _submit(
        self,
        out: BatchOutput,
        done: Callable[[], Awaitable[None]] | None = None,
        *,
        force: bool = False,
        progress: Callable[[], None] | None = None,
    ) -> None:
        """Start the output stage of ``out`` (under the lock, once the batch is processed).

        ``out`` comes from the processor with ``writes=False``: its alerts are handed to the
        producer first, then its states are serialized (``take_writes``), then its dead letters
        are handed over. A tick's output (``done`` None) with nothing to send or write starts no
        stage. Waits then until the previous stage has handed its states to the producer (it ran
        while this batch was processed), so states are written in batch order, and until at most
        ``STAGES_IN_FLIGHT - 1`` stages are unfinished; a failure of an earlier stage is raised here.

        Unless forced, the stage serializes its share of the dirty states
        (:meth:`_states_to_write`); ``out``'s clocks and ``done`` are held until the states it
        dirtied are serialized, and the held batches that are covered now are released with it.
        """
        # Alerts and dead letters go to the producer now: sent from the stage task instead, each
        # send's awaits would let the next poll's processing (which holds the event loop) start
        # between two alerts, and their delivery would no longer overlap it. Alerts go before the
        # states are serialized (a live batch touches most accounts): an alert's record is stamped
        # when it is handed over, and that is when the event → alert latency ends. Nothing else
        # touches the processor meanwhile: the caller holds the lock.
        if self._failed:
            raise WorkerFailedError("an earlier batch or output stage failed; nothing more is written")
        delivered = await self.writer.send_alerts(out.alerts)
        count = self._states_to_write(force)
        if count == 0:
            self.processor.take_dead_letters(out)
        else:
            self.processor.take_writes(out, count)
        self._hold(out, done, progress)
        done, progressed = self._release(out)
        delivered += await self.writer.send_dead_letters(out.dead_letters)
        delivered += await self.writer.send_forwards(out.forwards)
        if done is None and not (delivered or out.state_writes or out.clock_writes or progressed):
            return
        previous = self._stage
        if previous is not None:
            await previous.written
        unfinished = self._unfinished
        while unfinished and (unfinished[0].done() or len(unfinished) >= STAGES_IN_FLIGHT):
            await unfinished.popleft()  # raises what that stage raised
        stage = OutputStage(asyncio.get_running_loop().create_future())
        stage.written.add_done_callback(_retrieve)  # a failure is raised by the task (and by the next submit)
        stage.task = asyncio.ensure_future(self._output_stage(out, delivered, done, stage, previous, progressed))
        stage.task.add_done_callback(self._stage_done)
        unfinished.append(stage.task)
        self._stage = stage

    async def _output_stage(
        self,
        out: BatchOutput,
        delivered: list[Awaitable[Any]],
        done: Callable[[], Awaitable[None]] | None,
        stage: OutputStage,
        previous: OutputStage | None,
        progress: Sequence[Callable[[], None]] = (),
    ) -> None:
        """One batch's I/O in the order of ``streams/worker/emit.py``, then its acks (``done``).

        Alerts and dead letters (sent by ``_submit``) delivered → states handed to the producer
        (``stage.written``) → the released batches' progress records → the producer flushed, so
        those states and progress records are on the broker → the partition clocks (after the
        previous stage's, which may still be flushing) → ``done``.
        """
        try:
            # Otherwise a crash in between loses an alert (its event already marked seen, or judged late).
            if delivered:
                await asyncio.gather(*delivered)
            if not await self.membership.owns_partitions():
                # Another worker owns these partitions now: their states, progress and clocks are its
                # own; nothing is acked, so it re-reads this batch from the committed offset.
                stage.written.set_result(None)
                return
            self.writer.write_states(out)
            self.processor.cache.written(out.state_writes)
        except asyncio.CancelledError:
            stage.written.cancel()
            raise
        except Exception as exc:
            stage.written.set_exception(exc)
            raise
        stage.written.set_result(None)
        for alert in out.alerts:
            log.info(
                "alert emitted",
                alert_id=alert.alert_id,
                rule_id=alert.rule_id,
                account_id=alert.account_id,
                severity=alert.severity,
            )
        # Nor ahead of the progress record of the batches it covers (written after it, the two went
        # in separate produce batches): a worker SIGKILLed between the two would leave the next
        # owner reading again records the restored clock had passed but no progress record covers,
        # judged late (their ids forgotten past the dedup horizon) instead of duplicates.
        for record_progress in progress:
            record_progress()
        if out.clock_writes:
            # The clock must never reach the broker ahead of the states it covers: restored ahead,
            # it would make the re-read events of an unwritten state late (dropped) after a crash.
            await self.app.producer.flush()
        if previous is not None:
            await previous.task  # clocks and acks in batch order; raises if that stage failed
            previous = None  # no chain of finished stages kept alive
        if out.clock_writes:
            self.writer.write_clocks(out)
        if done is not None:
            await done()

    def _stage_done(self, task: asyncio.Future[None]) -> None:
        """A failed output stage stops the worker even when no later batch or tick waits for it."""
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        self._failed = True
        log.critical("rules batch output failed; stopping the worker", error=repr(exc))
        self._crashing = asyncio.ensure_future(self.app.crash(exc))

    def _gaps_after_commit(self, first_offsets: dict[int, int]) -> list[tuple[int, int, int]]:
        """A gap between the committed offset and the first record delivered after an assignment.

        Faust's drain loop can drop records it already fetched when a rebalance moves its read
        offset under it; those records are never acked, and Faust never commits past them. The
        committed offset is the coordinator's, as the rebuild got it: Faust's own copy is empty until
        recovery's seek back, which the first poll can come before (then no gap was seen).
        """
        if not self._first_unchecked:
            return []
        first = {p: o for p, o in first_offsets.items() if p in self._first_unchecked}
        fausts = committed_offsets(self.app.consumer)
        gaps: list[tuple[int, int, int]] = []
        for partition, offset in first.items():
            self._first_unchecked.discard(partition)
            committed = self._committed_at_rebuild.get(partition)
            if committed is None:
                committed = fausts.get(TP(self.events_topic, partition))
            jump = offset_jump(committed, offset)
            if jump is not None:
                gaps.append((partition, *jump))
        return gaps

    async def _mark_done(self, repaired: list[Record]) -> None:
        """Let Faust commit past re-read records: it never delivered them, so it never acks them."""
        runs: list[tuple[int, int, int]] = []  # (partition, first offset, next offset)
        for record in sorted(repaired, key=lambda r: (r.partition, r.offset)):
            if runs and runs[-1][0] == record.partition and runs[-1][2] == record.offset:
                runs[-1] = (record.partition, runs[-1][1], record.offset + 1)
            else:
                runs.append((record.partition, record.offset, record.offset + 1))
        for partition, start, end in runs:
            await mark_offsets_done(self.app, TP(self.events_topic, partition), start, end)

    async def _repair(
        self, records: Sequence[RecordLike], gaps: list[tuple[int, int, int]]
    ) -> tuple[list[RecordLike], list[Record], list[tuple[int, int, int]]]:
        """``records`` with the re-read records of ``gaps`` merged in, the re-read records, and the
        gaps that hold no record at all (a transactional producer's commit or abort markers: each
        takes an offset that no consumer is ever given; Faust must still be told they are done)."""
        assert self.gap_repair is not None
        fetched: list[Record] = []
        empty: list[tuple[int, int, int]] = []
        for partition, start, end in gaps:
            try:
                skipped = await reread_skipped(self.gap_repair, partition, start, end, "the rules worker")
            except Exception as exc:  # noqa: BLE001 - the side reader (its consumer's start, the broker): not a bug here
                # Stopping would not bring them back: Faust may have committed past the skipped offsets
                # (it acks what it skips), so a restart would never see the jump again. What stays
                # missing is counted and logged with the batch's gaps (``unrepaired_after_commit``).
                log.error(
                    "records skipped before reaching the rules worker could not be re-read",
                    partition=partition,
                    first_missing=start,
                    next_seen=end,
                    error=f"{type(exc).__name__}: {exc}".rstrip(": "),
                )
                continue
            if skipped.markers_only:
                empty.append((partition, start, end))
                continue
            fetched += skipped.records
        # Per-partition order is what matters (each partition has its own clock). A record both
        # delivered and re-read is kept once.
        delivered = {(r.partition, r.offset) for r in records}
        fetched = [r for r in fetched if (r.partition, r.offset) not in delivered]
        return sorted([*records, *fetched], key=lambda r: (r.partition, r.offset)), fetched, empty

    async def tick(self) -> None:
        """Advance the clocks of the assigned partitions (a no-op while recovering, or once failed)."""
        self.membership.beat()  # every 0.2 s: a longer gap is a pause of the whole process, heartbeats too
        if not self._recovered or self.app.rebalancing or self._failed or self.membership.lost():
            return
        async with self.lock:
            if self._failed:
                return
            with self._failing():
                if self._needs_rebuild:
                    await self.drain()  # the rebuild reads the tables: every pending write goes first
                await self._maybe_rebuild()
                assigned = self.assigned_partitions()
                await self._submit(self.processor.tick(assigned, self.caught_up_as_of(assigned), writes=False))
                self._schedule_deadline()

    async def write_before_stop(self) -> None:
        """As a graceful stop begins (SIGTERM; ``AppWithBeforeStop.before_stop``): write the held states,
        then their clocks, and ack their batches (:meth:`drain`), so the last commit Faust makes
        as it stops covers every batch processed and a restart re-reads nothing. Bounded by
        ``STOP_WRITE_TIMEOUT_SECONDS``; a failure is logged and the stop goes on (the restart
        re-reads from the last commit, as after a crash: at-least-once, same ``alert_id``s). A
        stop after a failure (:attr:`failed`; Faust's crash runs the same ``on_stop``) writes
        nothing: the failed batch's states may be in the cache without its alerts."""
        if not self._recovered:
            return
        try:
            async with asyncio.timeout(STOP_WRITE_TIMEOUT_SECONDS), self.lock:
                if self._failed:
                    # The failed batch's states may be in the cache without its alerts on the
                    # broker: writing them would lose those alerts. The restart re-reads instead.
                    log.warning("the worker failed: held states not written; a restart re-reads from the last commit")
                    return
                dirty, held = self.processor.cache.dirty, len(self._held)
                if not (dirty or held or self._stage is not None):
                    return
                await self.drain()
        except Exception as exc:  # noqa: BLE001 - stopping anyway: what was not written is re-read
            log.warning("held states not written before stopping; a restart re-reads them", error=repr(exc))
            return
        if dirty or held:
            log.info("held states written before stopping", states=dirty, batches=held)

    async def settle_recordless_tail(self, partition: int, end: int) -> bool:
        """True when the offsets of ``partition`` from the next one the worker would evaluate up to
        ``end`` hold no record (the commit marker a transactional producer writes last): Faust is
        told they are done, so it commits past them (lag 0, no stall), and the partition counts as
        read to its end (live clocks follow the wall clock). False when a record is there, the
        range could not be read in time, the worker failed, or records of the partition are
        evaluated but not acked yet (a batch's output in flight, or held for the state write
        interval): the watchdog's next sample asks again.

        Acking the range ahead of such a record would let Faust commit past it (its ``_new_offset``
        refuses a jump over unacked offsets only when it is more than one offset past the commit,
        and not at all before the first commit): after a crash, its event is lost. The per-record
        path (``PREEMPT_WORKER_BATCHED_POLL=false``), whose agent acks after the batch returns,
        settles only partitions with nothing evaluated since the assignment.

        The watchdog asks for an assigned partition whose lag does not move. The start is taken
        under the lock, the range read outside it (first record only), and the start checked again
        under the lock before the ack. The lock is waited for at most ``SETTLE_LOCK_WAIT_SECONDS``
        (False otherwise): a batch or tick that holds it can be waiting on the broker — an output
        stage whose dead letter or alert the broker does not take — which is a real stall, and
        the watchdog, waiting here, reported it only after it had ended.
        """
        if self.gap_repair is None:
            return False
        if not await self._lock_within(SETTLE_LOCK_WAIT_SECONDS):
            return False
        try:
            start = self._tail_start(partition)
        finally:
            self.lock.release()
        if start is None or end <= start:
            return False
        # Offsets below where reading started at the assignment were deleted by retention before a
        # worker read them (counted and logged then, streams/worker/progress.py): nothing there to read
        # or wait for. Read, they failed every sample (OffsetOutOfRange, an ERROR each time) and the
        # partition was reported stalled until a new event arrived on it.
        deleted_until = self._committed_at_rebuild.get(partition)
        read_from = start if deleted_until is None else min(max(start, deleted_until), end)
        # Outside the lock (batches and ticks go on meanwhile, the read can wait up to its timeout
        # on a slow broker), and only up to the first record: a real stall's backlog is not read.
        got, complete = (
            await self.gap_repair.read_range(partition, read_from, end, first_only=True)
            if read_from < end
            else ([], True)
        )
        if got or not complete:
            return False
        if not await self._lock_within(SETTLE_LOCK_WAIT_SECONDS):
            return False
        try:
            if self._tail_start(partition) != start:
                return False  # a batch (or a rebalance) moved the partition meanwhile: asked again
            # Acked, not only marked done: Faust commits a gap only up to its highest acked offset,
            # and no record comes after a partition's last marker to be acked.
            ack_offsets(self.app, TP(self.events_topic, partition), range(start, end))
            self._acked_until[partition] = end
            if self.progress is not None:
                self.progress.record({partition: end})
            self.processor.skip_recordless(partition, end)
            if end > self.processed_offsets.get(partition, 0):
                self.processed_offsets[partition] = end
        finally:
            self.lock.release()
        log.debug("offsets without records at the end of a partition (transaction markers)", partition=partition)
        return True

    async def _lock_within(self, timeout_s: float) -> bool:
        """Take the worker's lock if it comes within ``timeout_s``; False (not taken) otherwise."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.lock.acquire()
        except TimeoutError:
            return False
        return True

    def _tail_start(self, partition: int) -> int | None:
        """The first offset of ``partition`` that ``settle_recordless_tail`` may ack: the next one
        to evaluate, when every record before it is acked (None otherwise, or when the worker
        failed or does not own the partition). Under the lock."""
        if self._failed or partition not in self.assigned_partitions():
            return None
        start = self.processor.evaluated_until(partition)
        if start is None:
            return committed_offsets(self.app.consumer).get(TP(self.events_topic, partition))
        if self._acked_until.get(partition) != start:
            return None  # evaluated records not acked yet: acking past them could lose them
        return start

    def _schedule_deadline(self) -> None:
        """Live: tick when the earliest pending deadline of an assigned partition falls due (the wall
        clock − lateness reaches it), not at the next periodic tick (up to ``clock_tick_seconds``
        later). An overdue one (its partition still reading a backlog) is left to batches and the
        periodic tick. Under the lock, after a batch or a tick."""
        if self.settings.event_time_only:
            return
        due = self.processor.next_deadline(self.assigned_partitions())
        now = time.time()
        if due is None or due <= now or due >= self._deadline_at:
            return  # none pending, overdue, or an earlier timer is set
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline_at = due
        self._deadline = asyncio.get_running_loop().call_later(due - now + DEADLINE_MARGIN_SECONDS, self._deadline_due)

    def _deadline_due(self) -> None:
        self._deadline, self._deadline_at = None, math.inf
        if self._deadline_tick is None or self._deadline_tick.done():
            self._deadline_tick = asyncio.ensure_future(self.tick())
            # A tick raises only what an earlier output stage raised, which stops the worker already.
            self._deadline_tick.add_done_callback(_retrieve)

    def caught_up(self, partitions: Iterable[int], evaluated: Mapping[int, int] | None = None) -> set[int]:
        """Those of ``partitions`` with nothing waiting to be read: every record up to the end
        offset the last fetch reported has been evaluated (live clocks then follow the wall clock).
        ``evaluated``: next offsets to evaluate that the processor does not know yet (a batch
        about to be processed).

        Not caught up while that end offset is unknown (no fetch answered yet, or the partition is
        being revoked: aiokafka asserts it is assigned) or the next offset to evaluate is unknown.
        """
        return set(self.caught_up_as_of(partitions, evaluated))

    def caught_up_as_of(
        self, partitions: Iterable[int], evaluated: Mapping[int, int] | None = None
    ) -> dict[int, float]:
        """:meth:`caught_up`, each with the wall-clock time of the fetch response that reported the end
        offset it is evaluated up to (``faust_compat.highwater_time``; now when unknown): the
        partition is known read to its end as of then, not as of now. While a long batch holds the
        event loop no fetch response is taken in, and records written meanwhile wait unseen; a
        live clock moved to now − lateness made them late (8,236 of 40,000 events of a burst
        over 20,000 accounts were dropped as late).

        Live, it also tells the clocks when the broker last answered for each partition
        (``PartitionClocks.fetched``), first: one it did not answer for longer than the allowed
        lateness (an outage) has its watermark held, before this batch or tick can move it."""
        consumer = self.app.consumer
        committed: Mapping[Any, int | None] | None = None
        out: dict[int, float] = {}
        answered: dict[int, float] = {}  # when the broker last answered a fetch of each partition
        partitions = list(partitions)
        for partition in partitions:
            stamp = highwater_time(self.app, TP(self.events_topic, partition))
            if stamp is not None:
                answered[partition] = stamp
        if answered and not self.settings.event_time_only:
            self._note_answers(answered)
        now = time.time()
        for partition in partitions:
            tp = TP(self.events_topic, partition)
            # The time (read above) before the end: a fetch landing between the two reads then gives a
            # newer end (not caught up), never an end with a newer time than records it has not seen
            # were written at. Not known yet: now, also read before the end.
            as_of = answered.get(partition, now)
            try:
                end = consumer.highwater(tp)
            except (AssertionError, ConsumerNotStarted):
                continue
            if end is None:
                continue
            # Evaluated, not acked: the clock is about evaluation, and acks trail it by the
            # output stages in flight (under steady traffic there always is one).
            handled = evaluated.get(partition) if evaluated is not None else None
            if handled is None:
                handled = self.processor.evaluated_until(partition)
            if handled is None:  # nothing evaluated since the assignment: the group's committed offset
                if committed is None:
                    committed = committed_offsets(consumer)
                handled = committed.get(tp)
            if end == 0 or (handled is not None and handled >= end):
                out[partition] = as_of
        return out

    def _note_answers(self, answered: Mapping[int, float]) -> None:
        """Hand the times of the broker's latest fetch answers to the clocks; say once per outage
        that partitions are held (a WARN), and when their holds end (an INFO); keep
        ``preempt_clock_held_partitions`` current."""
        clocks = self.processor.clocks
        ended = clocks.end_holds()
        if ended:
            log.info(
                "the watermark hold after a broker outage ended; these partitions' clocks move on",
                partitions=sorted(ended),
            )
        # A fetch or another request of the consumer that failed (the broker refused or cut the
        # connection), or a probe of the broker watch that went unanswered (a broker that hangs: the
        # consumer's requests wait out Faust's 90 s request timeout without failing).
        failures = [t for t in (last_unanswered_request(self.app), broker_last_unanswered(self.app)) if t is not None]
        gaps = clocks.fetched(answered, failures)
        # One line per outage: the partitions answered in later batches after the same outage
        # (their gap started before it ended) are not said again.
        new = [p for p in gaps if self._outage_end is None or answered[p] - gaps[p] >= self._outage_end]
        if new:
            log.warning(
                "the broker did not answer fetches for longer than the allowed lateness (an outage: producers "
                "could not write either); the watermark of these partitions is held so that the events they "
                "buffered meanwhile are evaluated, not dropped as late",
                partitions=sorted(gaps),
                seconds_unanswered=round(max(gaps.values()), 1),
                held_for_seconds=clocks.outage_grace,
            )
        if gaps:
            self._outage_end = max([answered[p] for p in gaps] + [self._outage_end or 0.0])
        CLOCK_HELD_PARTITIONS.set(clocks.held_partitions())

    # --- rebalance and recovery ----------------------------------------------------------------

    def assigned_partitions(self) -> set[int]:
        """Partitions of ``preempt.events`` this worker owns right now."""
        try:
            assignment = self.app.consumer.assignment()
        except ConsumerNotStarted:  # nothing is assigned before the consumer runs
            return set()
        return {tp.partition for tp in assignment if tp.topic == self.events_topic}

    def _drop_held(self, why: str) -> None:
        """Held batches are released by a drain before a revocation or rebuild forgets dirty states
        (which would move the cache's written mark past states never written): any still held
        here are dropped unacked — re-read, never acked for unwritten states."""
        if self._held:
            log.error("held batches dropped unacked; their records are re-read", batches=len(self._held), during=why)
            self._held.clear()

    def on_revoked(self, revoked: Iterable[Any]) -> None:
        """Forget what belongs to partitions handed to another worker (it recovers them)."""
        gone = {tp.partition for tp in revoked if tp.topic == self.events_topic}
        self._drop_held("revocation")
        self.processor.cache.drop_partitions(gone)
        self.processor.clocks.forget(gone)
        self.processor.wakeups.drop_partitions(gone)
        for partition in gone:
            self.processed_offsets.pop(partition, None)
            self._acked_until.pop(partition, None)
        self._needs_rebuild = True
        self._recovered = False
        if self.account_letters is not None:
            self.account_letters.hold()
        # _events_missing is kept: a rebalance while the topic is gone is not its return (missing_events_topic)

    def on_assigned(self) -> None:
        """A new assignment: rebuild from the tables once they are recovered."""
        self._needs_rebuild = True
        self.membership.assigned()

    def partition_count_problem(self) -> str | None:
        """What is wrong with the events topic's partition count in the consumer's metadata (the one
        the new assignment was made on), against the tables' changelogs and the setting; None if nothing.

        Kafka hands a running worker partitions added to the events topic at its next metadata
        refresh (``consumer_metadata_max_age_ms``, 5 minutes); it went on reading them, forwarding
        their events to partitions of the old count, and with two workers a changelog partition could
        be active on one and written by the other.
        """
        tables = (self.state_table, self.clock_table, *((self.progress.table,) if self.progress is not None else ()))
        changelogs = [name for table in tables if (name := getattr(table, "changelog_topic_name", None))]
        counts = ClusterPartitionCounts(self.app)
        return assignment_problem(counts, self.events_topic, changelogs, self.settings.topic_partitions)

    def missing_events_topic(self) -> tuple[str, ...]:
        """``/readyz``'s reason while the events topic is gone from the consumer's metadata (deleted under
        the worker), else nothing. The group then assigns this worker no partition, which alone read as
        a healthy standby (ready, "0 partitions assigned"); the worker reads it again once it is back."""
        # Before the first recovery the consumer's metadata may not list the topic yet (a worker that
        # creates it at start). After it, the metadata always lists a subscribed topic that exists, so
        # the check holds during a later recovery too: the rebalance the deletion starts can leave
        # Faust's recovery in progress for minutes (seen in CI: /readyz said only "table recovery in
        # progress" for 60 s), and the topic gone is its cause, said first.
        if not self._recovered_once:
            return ()
        if ClusterPartitionCounts(self.app).topic_partitions(self.events_topic):
            if self._events_missing:
                self._events_missing = False
                log.info("events topic back", topic=self.events_topic)
            return ()
        reason = (
            f"topic {self.events_topic} does not exist (deleted?): nothing to read; recreate it with "
            f"{self.settings.topic_partitions} partitions (a restarted worker creates it)"
        )
        if not self._events_missing:
            self._events_missing = True
            log.error("events topic missing; not ready until it is back", topic=self.events_topic, reason=reason)
        return (reason,)

    def stop_on_partition_count(self, problem: str) -> None:
        """Stop the worker, writing nothing more: the deployment's topics changed under it."""
        log.critical("partition count changed; stopping the worker", problem=problem)
        self.stop(PartitionCountError(problem))

    def stop(self, error: Exception) -> None:
        """Stop the worker with ``error``, writing nothing more (a process-wide failure, logged by the caller)."""
        self._failed = True
        self._crashing = asyncio.ensure_future(self.app.crash(error))

    def on_recovered(self) -> None:
        """Faust finished restoring the tables (called by the state table's recovery callback)."""
        self._recovered = True
        self._recovered_once = True
        # The worker is built and connected: what is alive now lives as long as the process
        # (streams.worker.gc_tuning; once per process).
        tune_gc(self.settings.worker_gc_threshold)
        log.info("rules worker ready", partitions=sorted(self.assigned_partitions()))

    @property
    def recovered(self) -> bool:
        """True once the tables are recovered for the current assignment."""
        return self._recovered

    async def _group_committed(self, partitions: Iterable[int]) -> tuple[dict[int, int | None], bool]:
        """The consumer group's committed offset of each of ``partitions`` of the events topic, as the
        group coordinator has it. Faust's own copy (``committed_offsets``) is empty for every partition
        right after a rebalance that revoked it — with the eager assignor, each one this worker keeps
        too — until recovery's seek back, which the rebuild's first poll can come before: then every
        partition's records read again were judged late (126 to 607 of 5,501 in
        ``tests/integration/test_pipeline_rebalance_late.py``). That copy is the fallback when the
        coordinator does not answer within ``COMMITTED_FETCH_TIMEOUT_SECONDS`` (WARN). The second value says
        whether the coordinator answered (a None of Faust's copy is "not known", not "nothing committed")."""
        tps = [TP(self.events_topic, p) for p in sorted(partitions)]
        got = await group_committed_offsets(self.app, tps, COMMITTED_FETCH_TIMEOUT_SECONDS)
        if got is None:
            log.warning(
                "the group coordinator did not give the committed offsets after an assignment; using the "
                "consumer's own (records read again may be counted as late events)",
                partitions=[tp.partition for tp in tps],
            )
            return {tp.partition: committed_offsets(self.app.consumer).get(tp) for tp in tps}, False
        return {tp.partition: got.get(tp) for tp in tps}, True

    async def _log_start(self, committed: Mapping[int, int | None], from_coordinator: bool) -> dict[int, int]:
        """The log start offset of each partition of ``committed`` (retention may have deleted records past
        its committed offset; one with nothing committed is read from there, as far as the coordinator
        said so: a None of Faust's copy is not known). Empty, with a WARN, when Kafka does not answer
        within ``COMMITTED_FETCH_TIMEOUT_SECONDS``: records retention deleted are then not counted (the
        gap repair's ERROR names them when records follow)."""
        tps = [TP(self.events_topic, p) for p, at in sorted(committed.items()) if at is not None or from_coordinator]
        if not tps:
            return {}
        try:
            async with asyncio.timeout(COMMITTED_FETCH_TIMEOUT_SECONDS):
                earliest = await self.app.consumer.earliest_offsets(*tps)
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "the log start offsets were not given after an assignment; records retention deleted before "
                "they were read are not counted",
                partitions=[tp.partition for tp in tps],
                error=repr(exc),
            )
            return {}
        return {tp.partition: offset for tp, offset in earliest.items() if offset is not None and offset >= 0}

    async def _maybe_rebuild(self) -> None:
        if not self._needs_rebuild:
            return
        mine = self.assigned_partitions()
        # Asked first, before anything is forgotten; an assignment that comes meanwhile asks for the
        # next rebuild (on_assigned sets the flag again).
        self._needs_rebuild = False
        try:
            committed, from_coordinator = await self._group_committed(mine)
            # Retention that deleted records past a committed offset: the consumer reads from the log start.
            log_start = await self._log_start(committed, from_coordinator)
        except BaseException:
            self._needs_rebuild = True
            raise
        starts = reading_starts(committed, log_start)
        self._committed_at_rebuild = starts
        n_partitions = self.settings.topic_partitions
        processor = self.processor
        self._drop_held("rebuild")
        processor.cache.clear()
        processor.forget_offsets()
        self._acked_until.clear()  # as the evaluated offsets: the consumer seeks to the committed ones
        processor.wakeups.drop_partitions(range(n_partitions))
        processor.clocks.forget(range(n_partitions))
        for key, value in list(self.clock_table.items()):
            processor.restore_clock(key, value, mine)
        states = (
            (key.decode("utf-8", "replace"), p, value)
            for key, value in list(self.state_table.items())
            if (p := partition_for_key(key, n_partitions)) in mine
        )
        n = processor.rebuild_wakeups(states)
        processor.reading_from(starts)
        if self.progress is not None:
            moves = self.progress.check(mine, committed, log_start)
            for move in moves:
                if move.committed < move.recorded:
                    processor.read_again(move.partition, move.recorded)
        if self.account_letters is not None:  # the marks are recovered with the progress table
            self.account_letters.resume(mine)
        for p in mine:
            at, start = committed.get(p), starts.get(p)
            if at is not None and start is not None and start > at:
                # Retention deleted [at, start) before a worker read them (counted just above): no record
                # will be handed over for them, and Faust commits only up to the first offset never acked,
                # so the group's offset stayed there for good (lag growing, the partition re-read after
                # every restart). Acked, commits go on from the log start.
                ack_offsets(self.app, TP(self.events_topic, p), range(at, start))
        self._first_unchecked = set(mine)
        log.info("worker state rebuilt", partitions=sorted(mine), accounts=n, pending_wakeups=len(processor.wakeups))


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    if not raw:
        return []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(str(k), bytes(v) if v is not None else b"") for k, v in items]


def install_agents(app: faust.App, runtime: WorkerRuntime, events: faust.TopicT, settings: Settings) -> None:
    """Register the events agent, the clock timer and the rebalance hooks on ``app``."""

    async def evaluate(stream: Any) -> None:
        # take_events (not take): the batch keeps each record's partition and offset, and the
        # records are acked only after the whole batch has been handled.
        async for batch in stream.take_events(settings.worker_batch_size, within=settings.worker_batch_seconds):
            try:
                await runtime.handle_batch(batch)
            except Exception as exc:
                # Bad input is dead-lettered inside handle_batch, so this is a bug. Stop the whole
                # worker rather than let Faust restart the agent: while it is down Faust's stream
                # drainer would ack and discard records. A restart resumes from the last commit.
                log.critical("rules batch failed; stopping the worker", error=repr(exc))
                await app.crash(exc)
                raise

    async def advance_clock() -> None:
        await runtime.tick()

    async def revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        async with runtime.lock:  # revocation waits for the batch in flight
            if not runtime.membership.lost():  # else the new owners wrote them already: dropped below
                await runtime.drain()  # and for its output (every state written)
            runtime.on_revoked(args[0] if args else kwargs.get("revoked", ()))

    async def poll(polled: dict[Any, list[Any]], generation_id: int) -> None:
        try:
            await runtime.handle_poll(polled, generation_id)
        except Exception as exc:
            # As for the agent: a bug, not bad input. Stop the worker; a restart resumes from
            # the last commit (nothing of this poll was acked).
            log.critical("rules batch failed; stopping the worker", error=repr(exc))
            await app.crash(exc)
            raise

    async def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        problem = runtime.partition_count_problem()
        if problem is not None:
            runtime.stop_on_partition_count(problem)
            return
        runtime.on_assigned()

    async def recovered() -> None:
        runtime.on_recovered()

    app.agent(events, name="evaluate", concurrency=1)(evaluate)
    # Caught-up partitions must not hold the events partitions' next fetch for Faust's 1.5 s.
    set_fetch_max_wait(app, settings.worker_fetch_max_wait_seconds)
    # When its fetches failed: a gap between fetch answers with a failure in it is an outage
    # (the partition clocks hold their watermark after it, ``PartitionClocks.fetched``).
    watch_unanswered_requests(app)
    # Events fetched as a rebalance or recovery stops the flow are read again from the committed
    # offset; a partition with nothing committed kept the dropped poll's position (events lost).
    seek_uncommitted_to_beginning(app)
    # Records fetched while recovery awaits its final seek must not be thrown away when it resumes
    # the flow (the evidence: docs/pipeline.md, Known issues).
    resume_flow_without_clearing(app)
    if settings.worker_batched_poll:
        # Each poll's events go to the processor as one batch, bypassing Faust's per-message
        # path; the agent stays subscribed (it keeps the topic in the group's assignment) but
        # receives nothing. Changelogs and recovery keep Faust's normal path.
        divert_topic_polls(app, events.get_topic_name(), poll)
    app.timer(interval=settings.clock_tick_seconds, name="advance-clock")(advance_clock)
    app.on_partitions_revoked.connect(revoked)
    app.on_partitions_assigned.connect(assigned)
    runtime.state_table.on_recover(recovered)


def unrepaired_after_commit(
    after_commit: Sequence[tuple[int, int, int]], empty: Sequence[tuple[int, int, int]], offsets: OffsetCheck
) -> list[tuple[int, int, int]]:
    """The part of each gap between the committed offset and an assignment's first record that the
    re-read did not fill (the side reader failed, or could not read it all in time): ``(partition,
    first_missing, first_offset_now)``, for ``offsets.gaps`` to count and log (``preempt_event_offset_gaps_total``)
    like any other skip. A gap of transaction markers only (``empty``) is none, and neither is one the
    batch's own offset check names already."""
    known = {(p, start) for p, start, _ in offsets.gaps}
    left: list[tuple[int, int, int]] = []
    for gap in after_commit:
        partition, start, _ = gap
        first = offsets.first.get(partition)
        if gap in empty or first is None or first <= start or (partition, start) in known:
            continue
        left.append((partition, start, first))
    return left
