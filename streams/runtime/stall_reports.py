"""How both liveness watchdogs (the rules worker's, ``streams.worker.liveness``, and the notifier's,
``alerts.liveness``) report the partitions they find stalled: ``preempt_partition_stalled{topic,
partition}`` 1 while stalled and 0 after, ``preempt_partition_stalls_total{topic}`` + 1 and one ERROR
when a stall starts, one INFO ``partition progressing again`` when it ends. ``/readyz`` reads
:meth:`StallReports.names`. And how both say that they cannot sample at all (:class:`UnreadableOffsets`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from streams.runtime.health import PartitionStall
from streams.runtime.logs import get_logger
from streams.runtime.metrics import PARTITION_STALLED, PARTITION_STALLS

T = TypeVar("T")

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


class UnreadableOffsets:
    """A watchdog's samples of ``topic``'s end offsets that keep failing while some broker answers.

    Each sample is bounded by the sampling interval (a partition whose leader is gone made aiokafka
    wait for its request timeout, 90 s, and the watchdog's timer with it). Once every sample has
    failed for the stall time — two of three brokers down with the controller quorum: the
    partitions keep leaders that are gone and nothing is read or written, while the third broker
    answers the broker watch — :meth:`reason` is ``/readyz``'s reason (one ERROR line), until a
    sample works again (one INFO line). Before, the failed samples were skipped and ``/readyz``
    stayed 200 however long that lasted.
    """

    def __init__(self, topic: str, stall_after_s: float, clock: Callable[[], float], logger: Any = log) -> None:
        self.topic = topic
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._log = logger
        self._since: float | None = None  # first failed sample of the current run of failures
        self._failure = ""
        self._logged = False
        self._pending: asyncio.Future[Any] | None = None  # a sample still waiting in the consumer's thread

    async def sample(self, make: Callable[[], Awaitable[T]], bound_s: float) -> T:
        """``make()``'s answer within ``bound_s``, else ``TimeoutError``; at most one at a time.

        The offsets requests run in Faust's consumer thread, whose two workers also fetch and commit;
        cancelling the wait here does not stop a request there (it waits for aiokafka's request timeout,
        90 s). So a sample that did not answer in time is kept, and while it still runs no other is
        started (``TimeoutError`` at once): a new one every interval would take both workers and hold the
        fetches and commits of the healthy partitions behind them. A late answer is dropped (old offsets)."""
        if self._pending is not None and not self._pending.done():
            raise TimeoutError(f"the previous sample has had no answer for over {bound_s:.0f} s")
        self._pending = asyncio.ensure_future(make())
        # A late answer is dropped with the task: its error (aiokafka's, after its request timeout) too,
        # not left for the loop to log as "Task exception was never retrieved" with a traceback.
        self._pending.add_done_callback(_retrieve)
        done, _ = await asyncio.wait({self._pending}, timeout=bound_s)
        if not done:
            raise TimeoutError()
        task, self._pending = self._pending, None
        answer: T = task.result()
        return answer

    def failed(self, exc: BaseException, bound_s: float) -> None:
        """A sample failed (``bound_s``: the time it was given) while the broker watch sees a broker."""
        if self._since is None:
            self._since = self._clock()
        self._failure = repr(exc) if str(exc) else f"no answer within {bound_s:.0f} s"

    def sampled(self) -> None:
        """A sample worked, or none was due (rebalance, recovery, brokers unreachable): the run of
        failures, if any, is over."""
        if self._logged:
            self._log.info("partition end offsets readable again", topic=self.topic)
        self._since = None
        self._logged = False

    def reason(self) -> tuple[str, ...]:
        """``/readyz``'s reason once the samples have failed for the stall time; else nothing."""
        if self._since is None:
            return ()
        failing_for = self._clock() - self._since
        if failing_for < self.stall_after_s:
            return ()
        if not self._logged:
            self._logged = True
            self._log.error(
                "partition end offsets not readable; not ready until they are",
                topic=self.topic,
                failing_for_s=round(failing_for, 1),
                error=self._failure,
            )
        return (
            f"end offsets of {self.topic} not readable for {failing_for:.0f} s ({self._failure}): the brokers "
            "answer but do not serve its partitions (leaders down, no controller quorum?); progress unknown",
        )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
