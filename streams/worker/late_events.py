"""Late events: counted per partition, and logged — at most one WARN per partition per interval.

A late event (older than its account's clock) is ignored by the rules, so it must never be
silent: ``preempt_late_events_total{partition}`` counts every one, and a rate-limited WARN names an
account and how late it was, with how many more were late on that partition since the last line
(and once the interval has passed without a new late event, a line with that count: :meth:`flush`).
Pure apart from the metric and the log: the caller passes the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.runtime.log_throttle import LogThrottle
from streams.runtime.logs import get_logger
from streams.runtime.metrics import LATE_EVENTS

log = get_logger(__name__)

_LATE = "late"


class LateEventLog:
    """Counts late events per partition and logs them, at most once per ``interval`` seconds per partition."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._pending: dict[int, int] = {}
        self._partitions: dict[int, LogThrottle] = {}
        self._worst: dict[int, float] = {}  # the latest of the late events held back, per partition
        self._exposed: set[int] = set()

    def expose(self, partitions: Iterable[int]) -> None:
        """Give each partition's ``preempt_late_events_total`` series a 0 before its first late event, so
        that a scrape (and ``rate()``, and an alert on it) sees the partition from its assignment on."""
        for partition in partitions:
            if partition not in self._exposed:
                LATE_EVENTS.labels(partition=str(partition))
                self._exposed.add(partition)

    def late(self, partition: int, account_id: str, seconds_late: float, now: float) -> None:
        """One late event of ``account_id`` on ``partition``, ``seconds_late`` behind its clock."""
        self._pending[partition] = self._pending.get(partition, 0) + 1
        seconds_late = max(0.0, seconds_late)
        throttle = self._partitions.get(partition)
        if throttle is None:
            throttle = self._partitions[partition] = LogThrottle(self.interval)
        if not throttle.open(now):
            throttle.hold(_LATE)
            self._worst[partition] = max(self._worst.get(partition, 0.0), seconds_late)
            return
        held = throttle.take(now)
        log.warning(
            "late event ignored",
            partition=partition,
            account_id=account_id,
            seconds_late=round(seconds_late, 3),
            more_late_since_last_warning=held[_LATE],
            worst_seconds_late_since_last_warning=round(self._worst.pop(partition, 0.0), 3),
        )

    def flush(self, now: float) -> None:
        """Once a partition's interval has passed, log the late events held back since its last line
        (when late events stop — a producer's buffer delivered in one burst — the burst's count would
        otherwise never reach the log, only the metric). Cheap when nothing is held."""
        for partition, throttle in self._partitions.items():
            if not throttle.ready(now):
                continue
            log.warning(
                "late events ignored since the last warning",
                partition=partition,
                more_late_since_last_warning=throttle.take(now)[_LATE],
                worst_seconds_late_since_last_warning=round(self._worst.pop(partition, 0.0), 3),
            )

    def flush_counts(self) -> None:
        """Add the late events seen since the last call to the metric (once per batch: labels() is costly)."""
        for partition, n in self._pending.items():
            LATE_EVENTS.labels(partition=str(partition)).inc(n)
        self._pending.clear()
