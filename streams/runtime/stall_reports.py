"""How both liveness watchdogs (the rules worker's, ``streams.worker.liveness``, and the notifier's,
``alerts.liveness``) report the partitions they find stalled: ``preempt_partition_stalled{topic,
partition}`` 1 while stalled and 0 after, ``preempt_partition_stalls_total{topic}`` + 1 and one ERROR
when a stall starts, one INFO ``partition progressing again`` when it ends. ``/readyz`` reads
:meth:`StallReports.names`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.runtime.health import PartitionStall
from streams.runtime.logs import get_logger
from streams.runtime.metrics import PARTITION_STALLED, PARTITION_STALLS

log = get_logger(__name__)


def sample_interval_s(stall_after_s: float) -> float:
    """How often a watchdog samples: often enough to report within ~1.25 × the stall time."""
    return max(1.0, min(15.0, stall_after_s / 4))


class StallReports:
    """The partitions a watchdog reports stalled right now (see the module doc)."""

    def __init__(self, message: str, logger: Any = log) -> None:
        """``message``: the ERROR line's text when a partition's stall starts; ``logger``: the watchdog's
        (its lines name its module)."""
        self.message = message
        self.log = logger
        self.current: dict[int, PartitionStall] = {}

    def names(self) -> tuple[str, ...]:
        """``topic/partition`` of every partition stalled right now (for ``/readyz``)."""
        return tuple(s.name for _, s in sorted(self.current.items()))

    def update(
        self, stalls: list[PartitionStall], details: Callable[[PartitionStall], dict[str, Any]]
    ) -> list[PartitionStall]:
        """Report ``stalls`` (this round's): those new get the ERROR with ``details(stall)`` as its
        fields and are returned; those gone get the INFO and their gauge back at 0."""
        now = {s.partition: s for s in stalls}
        started: list[PartitionStall] = []
        for partition, stall in now.items():
            if partition not in self.current:
                PARTITION_STALLS.labels(topic=stall.topic).inc()
                self.log.error(self.message, topic=stall.topic, partition=partition, lag=stall.lag, **details(stall))
                started.append(stall)
            PARTITION_STALLED.labels(topic=stall.topic, partition=str(partition)).set(1)
        for partition, stall in self.current.items():
            if partition not in now:
                PARTITION_STALLED.labels(topic=stall.topic, partition=str(partition)).set(0)
                self.log.info("partition progressing again", topic=stall.topic, partition=partition)
        self.current = now
        return started
