"""The rules worker's liveness watchdog: an assigned partition with lag and no progress is a stall.

A silent stop is the worst failure an alert service has (issue 10: one partition of a restarted
worker was never consumed again, with nothing in the log). Every ``interval`` the watchdog samples
each assigned partition of ``preempt.events``: its end offset (asked of the broker), the offset the
group committed and the next offset the worker processed. A partition with lag whose committed
and processed offsets both stay put for ``PREEMPT_PARTITION_STALL_SECONDS`` is reported:

* an ERROR log line "partition stalled" with the offsets and Faust's/aiokafka's view of the
  partition's fetch path (``streams.runtime.faust_compat.partition_flow_state``),
* ``preempt_partition_stalled{topic,partition}`` = 1 and ``preempt_partition_stalls_total{topic}`` + 1,
* ``/readyz`` answers 503 "partition stalled …" (``streams.runtime.health.readiness``),

until progress resumes (INFO "partition progressing again", gauge back to 0). A stalled partition
that Faust stopped fetching (not in its active set outside a rebalance) is also resumed once. Sampling pauses
while a rebalance or table recovery runs, or while the broker watch declares the brokers
unreachable; the stall clock starts again afterwards. A sample that fails while the broker is not
declared unreachable is skipped: the stall clock goes on.

A sample is bounded by the sampling interval; samples that fail for the stall time while some broker
answers make ``/readyz`` say so (``streams.runtime.stall_reports.UnreadableOffsets``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted

from streams.runtime.faust_compat import committed_offsets, partition_flow_state
from streams.runtime.health import PartitionSample, PartitionStall, StallTracker
from streams.runtime.logs import get_logger
from streams.runtime.stall_reports import StallReports, UnreadableOffsets, sample_interval_s

log = get_logger(__name__)


class PartitionWatchdog:
    """Samples the events topic's assigned partitions and reports stalls (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        topic: str,
        stall_after_s: float,
        processed: Callable[[], Mapping[int, int]],
        ready: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        settle: Callable[[int, int], Awaitable[bool]] | None = None,
        broker_down: Callable[[], bool] = lambda: False,
    ) -> None:
        """``broker_down``: True while the broker watch declares the brokers unreachable
        (``streams.runtime.ops_web.broker_unreachable``); only then does a failed sample restart
        the stall clock."""
        self.app = app
        self.topic = topic
        self.tracker = StallTracker(stall_after_s)
        self._processed = processed
        self._ready = ready
        self._clock = clock
        self._settle = settle
        self._broker_down = broker_down
        self._reports = StallReports("partition stalled: assigned, with lag, no committed or processed progress", log)
        self._previous: dict[int, tuple[int, int | None, int | None]] = {}  # partition -> (end, committed, processed)
        self._unreadable = UnreadableOffsets(topic, stall_after_s, clock, log)

    @property
    def interval_s(self) -> float:
        """How often to sample: often enough to report within ~1.25 × the stall time."""
        return sample_interval_s(self.tracker.stall_after_s)

    def stalled(self) -> tuple[str, ...]:
        """``topic/partition`` of every partition stalled right now (for ``/readyz``)."""
        return self._reports.names()

    def unreadable(self) -> tuple[str, ...]:
        """``/readyz``'s reason while every sample has failed for the stall time although a broker
        answers (``UnreadableOffsets``); else nothing."""
        return () if self._broker_down() else self._unreadable.reason()

    async def check(self) -> None:
        """One sampling round (the app's timer calls it every ``interval_s``)."""
        if self.app.rebalancing or self.app.in_recovery or not self._ready():
            self.tracker.reset()
            self._update([])
            self._unreadable.sampled()
            return
        consumer = self.app.consumer
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic == self.topic]
            # Bounded: an answer that takes longer is as good as none (a partition without a leader
            # made aiokafka wait for its request timeout, and the timer with it).
            ends, committed, earliest = await self._unreadable.sample(lambda: self._offsets(tps), self.interval_s)
        except (TimeoutError, ConsumerNotStarted, KafkaError) as exc:
            if self._broker_down():
                # The broker watch declared the brokers unreachable: nobody can progress meanwhile,
                # so the stall clock starts afresh once sampling works again. Kept running, the
                # first sample after a long outage reported every partition with lag as stalled.
                log.warning("partition watchdog could not sample; the broker is unreachable", error=repr(exc))
                self.tracker.reset()
                self._unreadable.sampled()
            else:
                # One request that failed (a broker that times out one request in eight) is skipped,
                # not a reason to restart the clock: reset at each, a real stall was never reported.
                log.warning("partition watchdog could not sample; skipped", error=repr(exc))
                self._unreadable.failed(exc, self.interval_s)
            return
        self._unreadable.sampled()
        processed = self._processed()
        samples = [
            PartitionSample(
                topic=tp.topic,
                partition=tp.partition,
                end=int(ends[tp]),
                committed=committed.get(tp),
                processed=processed.get(tp.partition),
                start=int(earliest.get(tp) or 0),
            )
            for tp in tps
            if ends.get(tp) is not None
        ]
        samples = [s for s in samples if not await self._recordless_tail(s)]
        self._update(self.tracker.observe(samples, self._clock()), {tp.partition: tp for tp in tps})

    async def _offsets(self, tps: list[Any]) -> tuple[Mapping[Any, int], Mapping[Any, int | None], Mapping[Any, int]]:
        consumer = self.app.consumer
        ends: Mapping[Any, int] = await consumer.highwaters(*tps) if tps else {}
        committed = committed_offsets(consumer)
        missing = [tp for tp in tps if committed.get(tp) is None]
        earliest: Mapping[Any, int] = await consumer.earliest_offsets(*missing) if missing else {}
        return ends, committed, earliest

    async def _recordless_tail(self, sample: PartitionSample) -> bool:
        """True when the sample's lag is only offsets without records: a transactional producer's
        last commit marker takes an offset no consumer is given, so Faust never acks it and the
        lag stayed at 1 for good (a false stall, and ``/readyz`` 503). Asked of ``settle`` (the
        runtime reads the range) once a sample with lag shows no movement since the previous one."""
        key = (sample.end, sample.committed, sample.processed)
        unchanged = self._previous.get(sample.partition) == key
        self._previous[sample.partition] = key
        if self._settle is None or sample.lag == 0 or not unchanged:
            return False
        return await self._settle(sample.partition, sample.end)

    def _update(self, stalls: list[PartitionStall], tps: Mapping[int, Any] | None = None) -> None:
        flows: dict[int, dict[str, Any]] = {}

        def details(stall: PartitionStall) -> dict[str, Any]:
            tp = tps.get(stall.partition) if tps else None
            flow = flows[stall.partition] = partition_flow_state(self.app, tp) if tp is not None else {}
            return {
                "committed": stall.committed,
                "processed": stall.processed,
                "stalled_for_s": round(stall.stalled_for_s, 1),
                **flow,
            }

        for stall in self._reports.update(stalls, details):
            if flows.get(stall.partition, {}).get("faust_active") is False and tps is not None:
                # Outside a rebalance and recovery every assigned source partition should be
                # fetched; one left paused (or marked buffer-full) would never move again.
                log.warning("resuming a stalled partition Faust had stopped fetching", partition=stall.partition)
                self.app.consumer.resume_partitions({tps[stall.partition]})
