"""Duplicate events: counted, and logged — at most one INFO line per interval — as every skip is.

An event whose ``event_id`` the account has seen within the dedup horizon is ignored by the rules:
a producer's retry, a client that sends twice, or the records read again after a restart from the
last committed offset. ``preempt_duplicate_events_total{source}`` counts them, ``read_again`` (records
evaluated before: their offset is below what the partition's progress or this worker had evaluated) apart
from ``producer`` (the same ``event_id`` published again); this puts them in the log too, at most once
per ``interval`` with how many were ignored since the last line and how many of those were read again,
so an operator reading only the log sees that events are being skipped (INFO: read again, they are
expected, a few at every restart; a steady stream from producers means a producer re-sends). Pure apart
from the log: the caller passes the wall clock.
"""

from __future__ import annotations

from streams.runtime.log_throttle import LogThrottle
from streams.runtime.logs import get_logger

log = get_logger(__name__)

_DUPLICATES = "duplicates"
_READ_AGAIN = "read_again"


class DuplicateLog:
    """Logs duplicate events at most once per ``interval`` seconds per process."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._throttle = LogThrottle(interval)

    def ignored(self, count: int, now: float, *, read_again: int = 0) -> None:
        """``count`` duplicate events in a batch handled at ``now`` (0: nothing, but a held count may be due),
        ``read_again`` of them records evaluated before and read again (the others: a producer's copies)."""
        throttle = self._throttle
        throttle.hold(_DUPLICATES, count)
        throttle.hold(_READ_AGAIN, read_again)
        if not throttle.ready(now):
            return
        held = throttle.take(now)
        log.info(
            "duplicate events ignored (an event_id seen within the dedup horizon)",
            duplicates_since_last_line=held[_DUPLICATES],
            read_again=held[_READ_AGAIN],
            from_producers=held[_DUPLICATES] - held[_READ_AGAIN],
        )
