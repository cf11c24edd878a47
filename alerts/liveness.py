"""The notifier's liveness watchdog: alerts waiting on an assigned partition that the notifier stops reading.

DESIGN's failure policy: a partition that is assigned, has lag and makes no progress is reported by
a metric and by ``/readyz``. The notifier's agent reads ``preempt.alerts`` one record at a time; a
record it cannot get past (a dead letter the broker does not take: ``preempt.alerts.dlq`` deleted or
not writable, the producer retrying for ever) stopped every delivery of the process while ``/readyz``
said ready and nothing but the producer's rate-limited warnings was logged.

Lag here is counted from what the notifier has *read* (the next offset after the last alert its
agent handled, or the committed offset when higher), not from the committed offset: an alert held
for quiet hours, ``group_wait`` or retries is read and keeps the commit behind it for hours, which
is not a stall. Every ``interval`` the watchdog samples each assigned partition; one whose end is
ahead of what was read, with nothing read for ``PREEMPT_PARTITION_STALL_SECONDS``, is reported as
the rules worker's are (``streams.worker.liveness``): ERROR ``partition stalled …``,
``preempt_partition_stalled{topic,partition}`` = 1, ``preempt_partition_stalls_total{topic}`` + 1,
``/readyz`` 503 — until it moves again (INFO ``partition progressing again``, gauge 0). Sampling
pauses while a rebalance or table recovery runs, while the broker is declared unreachable, or while the
notifier does not take new alerts because too many deliveries are pending (``alerts/intake.py``, which
``/readyz`` names instead).

Offsets without records are not lag. Under ``exactly_once`` the rules worker writes alerts in
transactions, and each commit (or abort) marker takes an offset no consumer is ever given: after the
last alert the read position stays one short of the end for good. A partition whose lag did not move
since the previous sample is probed (``probe``: ``streams.runtime.range_reader``, the rules worker's
recordless-tail check): when ``[position, end)`` holds no record, the position counts as the end,
and the range is written down (``alerts.recordless``) so that ``preempt_consumer_lag`` leaves it out.

A delivery's dead letter the broker does not take is no stall: the dispatcher sends it from a task
of its own, the agent reads on, the partition's commit stays behind the alert. The runtime tracks
every dead letter it is writing (:class:`PendingWrites`); one still in flight after the stall time
is reported: ERROR ``dead letter not written …``, ``/readyz`` 503 — until every dead letter is
written (INFO ``dead letters written again``). ``preempt_notifier_dead_letter_pending_seconds``
says how old the oldest is, at any time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import faust
from aiokafka.errors import ConsumerStoppedError, KafkaError
from faust.exceptions import ConsumerNotStarted

from alerts.recordless import RecordlessOffsets
from streams.runtime.faust_compat import committed_offsets
from streams.runtime.health import PartitionSample, PartitionStall, StallTracker
from streams.runtime.logs import get_logger
from streams.runtime.stall_reports import StallReports, UnreadableOffsets, sample_interval_s

log = get_logger(__name__)


class PendingWrites:
    """Writes in flight and when each began (the runtime's dead-letter sends), for the watchdog."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: dict[int, float] = {}
        self._ids = itertools.count()

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count the block as one write in flight until it returns or raises."""
        key = next(self._ids)
        self._started[key] = self._clock()
        try:
            yield
        finally:
            del self._started[key]

    def __len__(self) -> int:
        return len(self._started)

    def oldest_age(self) -> float:
        """Seconds since the oldest write in flight began (0.0: none in flight)."""
        return self._clock() - min(self._started.values()) if self._started else 0.0


class AlertsWatchdog:
    """Samples the alerts topic's assigned partitions and reports stalls (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        topic: str,
        stall_after_s: float,
        read: Callable[[], Mapping[int, int]],
        ready: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        broker_down: Callable[[], bool] = lambda: False,
        probe: Callable[[int, int, int], Awaitable[bool]] | None = None,
        dead_letters: PendingWrites | None = None,
        recordless: RecordlessOffsets | None = None,
    ) -> None:
        """``read``: per partition, the next offset after the last alert the agent handled.
        ``probe(partition, start, end)``: True when ``[start, end)`` holds no record (bounded wait;
        ``RangeReader.holds_no_record``). ``dead_letters``: the dead letters being written.
        ``recordless``: where a tail found empty is written down (the runtime's, which the consumer-lag
        gauge leaves out)."""
        self.app = app
        self.topic = topic
        self.tracker = StallTracker(stall_after_s)
        self._read = read
        self._ready = ready
        self._clock = clock
        self._broker_down = broker_down
        self._reports = StallReports("partition stalled: assigned, with alerts not read, no progress", log)
        self._probe = probe
        self._previous: dict[int, tuple[int, int]] = {}  # partition -> (position, end) of the last sample
        self._recordless = recordless if recordless is not None else RecordlessOffsets()
        self._dead_letters = dead_letters
        self._stuck: tuple[str, ...] = ()
        self._broker_seen_down: float | None = None  # the clock when the broker watch last said unreachable
        self._unreadable = UnreadableOffsets(topic, stall_after_s, clock, log)

    @property
    def interval_s(self) -> float:
        """How often to sample: often enough to report within ~1.25 × the stall time."""
        return sample_interval_s(self.tracker.stall_after_s)

    def stalled(self) -> tuple[str, ...]:
        """``topic/partition`` of every partition stalled right now (for ``/readyz``)."""
        return self._reports.names()

    def stuck(self) -> tuple[str, ...]:
        """Why writes the notifier waits on are stuck, if they are (for ``/readyz``)."""
        return self._stuck

    def unreadable(self) -> tuple[str, ...]:
        """``/readyz``'s reason while every sample has failed for the stall time although a broker
        answers (``streams.runtime.stall_reports.UnreadableOffsets``); else nothing."""
        return () if self._broker_down() else self._unreadable.reason()

    async def check(self) -> None:
        """One sampling round (the app's timer calls it every ``interval_s``)."""
        self._check_dead_letters()
        if self.app.rebalancing or self.app.in_recovery or not self._ready():
            self.tracker.reset()
            self._update([])
            self._unreadable.sampled()
            return
        consumer = self.app.consumer
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic == self.topic]
            # Bounded: a partition without a leader made aiokafka wait for its request timeout (90 s).
            ends, committed, read, earliest = await self._unreadable.sample(lambda: self._offsets(tps), self.interval_s)
        except (TimeoutError, ConsumerNotStarted, KafkaError) as exc:
            if self._broker_down():
                self.tracker.reset()  # nobody can progress meanwhile: the clock starts afresh afterwards
                self._unreadable.sampled()
            else:
                self._unreadable.failed(exc, self.interval_s)
            log.warning("alerts watchdog could not sample; skipped", error=repr(exc))
            return
        self._unreadable.sampled()
        samples = []
        for tp in tps:
            positions = [p for p in (read.get(tp.partition), committed.get(tp), earliest.get(tp)) if p is not None]
            if ends.get(tp) is None or not positions:
                continue  # no position to measure from (the broker did not say)
            end = int(ends[tp])
            position = max(int(p) for p in positions)
            if await self._recordless_tail(tp.partition, position, end):
                position = end
            samples.append(PartitionSample(tp.topic, tp.partition, end=end, committed=position, processed=position))
        self._update(self.tracker.observe(samples, self._clock()))

    async def _offsets(
        self, tps: list[Any]
    ) -> tuple[Mapping[Any, int], Mapping[Any, int | None], Mapping[int, int], Mapping[Any, int]]:
        consumer = self.app.consumer
        ends: Mapping[Any, int] = await consumer.highwaters(*tps) if tps else {}
        committed = committed_offsets(consumer)
        read = self._read()
        # Nothing read or committed yet (a new consumer group): the agent reads from the
        # partition's first offset (auto_offset_reset=earliest), so lag counts from there. A
        # first alert it cannot get past was never reported.
        missing = [tp for tp in tps if read.get(tp.partition) is None and committed.get(tp) is None]
        earliest: Mapping[Any, int] = await consumer.earliest_offsets(*missing) if missing else {}
        return ends, committed, read, earliest

    async def _recordless_tail(self, partition: int, position: int, end: int) -> bool:
        """True when ``[position, end)`` holds offsets but no record (transaction markers): not lag.

        Probed once the sample shows lag that did not move since the previous sample (a stall needs
        that for the whole stall time anyway; a moving partition is not read twice); a range found
        empty is remembered, so an idle partition is read once, not every sample. A probe that fails
        or does not finish in its bounded wait counts as lag (a stall is reported, not hidden)."""
        key = (position, end)
        unchanged = self._previous.get(partition) == key
        self._previous[partition] = key
        if self._probe is None or end <= position or not unchanged:
            return False
        if self._recordless.covers(partition, position, end):
            return True
        try:
            empty = await self._probe(partition, position, end)
        except (TimeoutError, KafkaError, ConsumerStoppedError) as exc:
            log.warning("alerts watchdog could not read the tail of a partition", partition=partition, error=repr(exc))
            return False
        if empty:
            self._recordless.add(partition, position, end)
            log.debug("offsets without records at the end of a partition (transaction markers)", partition=partition)
        return empty

    def _check_dead_letters(self) -> None:
        """Report dead letters in flight for longer than the stall time (see the module doc).

        Checked whatever else goes on (a rebalance does not unblock them): the alert stays unacked,
        so its partition's commit, and every later alert's, waits behind it. Not while the broker
        watch declares the brokers unreachable (``/readyz`` says that already), and a letter's age
        counts from the brokers' return, not across the outage."""
        if self._dead_letters is None:
            return
        now = self._clock()
        if self._broker_down():  # /readyz says so already; a dead letter cannot be written meanwhile
            self._broker_seen_down = now
            return
        age, pending = self._dead_letters.oldest_age(), len(self._dead_letters)
        if self._broker_seen_down is not None:  # counted from the broker's return, not across the outage
            age = min(age, now - self._broker_seen_down)
        if pending and age >= self.tracker.stall_after_s:
            if not self._stuck:
                log.error(
                    "dead letter not written: the broker has not taken it; its alert stays unacked",
                    pending=pending,
                    oldest_s=round(age, 1),
                )
            self._stuck = (f"dead letter not written for {age:.0f} s ({pending} pending)",)
        elif self._stuck:
            self._stuck = ()
            log.info("dead letters written again")

    def _update(self, stalls: list[PartitionStall]) -> None:
        self._reports.update(
            stalls, lambda stall: {"read": stall.processed, "stalled_for_s": round(stall.stalled_for_s, 1)}
        )
