"""Duplicate events: counted, and logged — at most one INFO line per interval — as every skip is.

An event whose ``event_id`` the account has seen within the dedup horizon is ignored by the rules:
a producer's retry, a client that sends twice, or the records read again after a restart from the
last committed offset. ``preempt_duplicate_events_total`` counts them; this puts them in the log
too, at most once per ``interval`` with how many were ignored since the last line, so an operator
reading only the log sees that events are being skipped (INFO: they are expected, a few at every
restart; a steady stream of them means a producer re-sends). Pure apart from the log: the caller
passes the wall clock.
"""

from __future__ import annotations

from streams.runtime.logs import get_logger

log = get_logger(__name__)


class DuplicateLog:
    """Logs duplicate events at most once per ``interval`` seconds per process."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last_logged: float | None = None
        self._held = 0

    def ignored(self, count: int, now: float) -> None:
        """``count`` duplicate events in a batch handled at ``now`` (0: nothing, but a held count may be due)."""
        self._held += count
        if not self._held or (self._last_logged is not None and now - self._last_logged < self.interval):
            return
        held, self._held = self._held, 0
        self._last_logged = now
        log.info(
            "duplicate events ignored (an event_id seen within the dedup horizon)",
            duplicates_since_last_line=held,
        )
