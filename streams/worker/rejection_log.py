"""Records the decoder refused: logged — at most one WARN per interval — besides their dead letter and metric.

A record that does not decode (not JSON, a missing field, a broken bound…) is dead-lettered and
counted in ``preempt_events_dead_lettered_total{reason}``; the failure policy (docs/pipeline.md) also
promises a log line, so an operator reading the worker's log sees that producers send bad events
without a flood when a producer sends nothing else: the first refusal is logged at once, the next
ones at most once per ``interval`` with how many were refused meanwhile and for which reasons. The
line names the reason, the field, the source partition and offset (to find the dead letter), the
record's key as ``account_id`` (every topic is keyed by account: the account whose producer sends bad
events) and the decoder's sentence — never the record's value, which may hold personal data.
"""

from __future__ import annotations

from schemas.bounds import visible_controls
from schemas.event import MAX_ID_CHARS
from streams.runtime.log_throttle import LogThrottle
from streams.runtime.logs import get_logger

log = get_logger(__name__)

DETAIL_CHARS = 300


def key_account_id(key: bytes | None) -> str | None:
    """The account id a record's key names, as a log field: None without a key or when it is not UTF-8; control
    characters shown as ``\\xNN``, cut at the longest id accepted."""
    if not key:
        return None
    try:
        text = key.decode()
    except UnicodeDecodeError:
        return None
    return visible_controls(text[:MAX_ID_CHARS])


class RejectionLog:
    """Logs refused records at most once per ``interval`` seconds per process (the caller passes the wall clock)."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._throttle = LogThrottle(interval)  # holds the refusals by reason

    def rejected(
        self,
        reason: str,
        detail: str,
        field: str | None,
        topic: str,
        partition: int,
        offset: int,
        now: float,
        key: bytes | None = None,
    ) -> None:
        """One record of ``topic``/``partition`` at ``offset``, keyed ``key``, dead-lettered for ``reason``."""
        if not self._throttle.open(now):
            self._throttle.hold(reason)
            return
        held = self._throttle.take(now)
        log.warning(
            "event dead-lettered",
            reason=reason,
            field=field,
            detail=detail[:DETAIL_CHARS],
            topic=topic,
            partition=partition,
            offset=offset,
            account_id=key_account_id(key),
            more_dead_lettered_since_last_warning=sum(held.values()),
            reasons_since_last_warning=dict(held),
        )

    def flush(self, now: float) -> None:
        """Once the interval has passed, log the refusals held back since the last line (when refusals stop,
        the last interval's count would otherwise never reach the log). Cheap when nothing is held."""
        if not self._throttle.ready(now):
            return
        held = self._throttle.take(now)
        log.warning(
            "events dead-lettered since the last warning",
            more_dead_lettered_since_last_warning=sum(held.values()),
            reasons_since_last_warning=dict(held),
        )
