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
pauses while a rebalance or table recovery runs, or while the broker is declared unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted

from streams.runtime.faust_compat import committed_offsets
from streams.runtime.health import PartitionSample, PartitionStall, StallTracker
from streams.runtime.logs import get_logger
from streams.runtime.metrics import PARTITION_STALLED, PARTITION_STALLS

log = get_logger(__name__)


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
    ) -> None:
        """``read``: per partition, the next offset after the last alert the agent handled."""
        self.app = app
        self.topic = topic
        self.tracker = StallTracker(stall_after_s)
        self._read = read
        self._ready = ready
        self._clock = clock
        self._broker_down = broker_down
        self._stalled: dict[int, PartitionStall] = {}

    @property
    def interval_s(self) -> float:
        """How often to sample: often enough to report within ~1.25 × the stall time."""
        return max(1.0, min(15.0, self.tracker.stall_after_s / 4))

    def stalled(self) -> tuple[str, ...]:
        """``topic/partition`` of every partition stalled right now (for ``/readyz``)."""
        return tuple(s.name for _, s in sorted(self._stalled.items()))

    async def check(self) -> None:
        """One sampling round (the app's timer calls it every ``interval_s``)."""
        if self.app.rebalancing or self.app.in_recovery or not self._ready():
            self.tracker.reset()
            self._update([])
            return
        consumer = self.app.consumer
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic == self.topic]
            ends: Mapping[Any, int] = await consumer.highwaters(*tps) if tps else {}
        except (TimeoutError, ConsumerNotStarted, KafkaError) as exc:
            if self._broker_down():
                self.tracker.reset()  # nobody can progress meanwhile: the clock starts afresh afterwards
            log.warning("alerts watchdog could not sample; skipped", error=repr(exc))
            return
        committed = committed_offsets(consumer)
        read = self._read()
        samples = []
        for tp in tps:
            positions = [p for p in (read.get(tp.partition), committed.get(tp)) if p is not None]
            if ends.get(tp) is None or not positions:
                continue  # nothing read or committed yet: no position to measure from
            position = max(positions)
            samples.append(
                PartitionSample(tp.topic, tp.partition, end=int(ends[tp]), committed=position, processed=position)
            )
        self._update(self.tracker.observe(samples, self._clock()))

    def _update(self, stalls: list[PartitionStall]) -> None:
        now = {s.partition: s for s in stalls}
        for partition, stall in now.items():
            if partition not in self._stalled:
                PARTITION_STALLS.labels(topic=stall.topic).inc()
                log.error(
                    "partition stalled: assigned, with alerts not read, no progress",
                    topic=stall.topic,
                    partition=partition,
                    lag=stall.lag,
                    read=stall.processed,
                    stalled_for_s=round(stall.stalled_for_s, 1),
                )
            PARTITION_STALLED.labels(topic=stall.topic, partition=str(partition)).set(1)
        for partition, stall in self._stalled.items():
            if partition not in now:
                PARTITION_STALLED.labels(topic=stall.topic, partition=str(partition)).set(0)
                log.info("partition progressing again", topic=stall.topic, partition=partition)
        self._stalled = now
