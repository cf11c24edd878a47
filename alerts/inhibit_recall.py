"""Recall the ``inhibit_rules`` sources active now after a restart or a rebalance.

An alert the notifier received counts as an active source for the inhibit horizon
(``PREEMPT_INHIBIT_HORIZON_SECONDS``, alerts/dispatch.py). That memory is the process's: a notifier
restarted (or a partition moved to another replica) a minute after a critical composite alert had
forgotten it, and sent the component alerts it should have muted for the rest of the hour. The alerts
of the last horizon are still in ``preempt.alerts``, so once a new assignment is recovered, before
deliveries resume, the notifier reads them back per partition with a side consumer (no group, no commits)
and takes those that match a rule's source side. A source counts from its record's timestamp (when it was
emitted), as if received then. Replays (``preempt-replay``) are not sources, as when they are consumed;
records that are not alerts are left to the agent, which dead-letters them when it reads them.

Bounded: at most :data:`MAX_RECALLED` records of a partition (the dispatcher keeps 10,000
sources), each read within the side consumer's timeout, every partition started within
:data:`RECALL_BUDGET_SECONDS`. A partition not read whole (a slow broker, a failed read) is
counted (``preempt_notifier_inhibit_recalls_total{outcome="incomplete"}``) and logged at
WARNING: deliveries resume anyway, with what was read (a notification too many, not none).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from alerts.dispatch import Dispatcher
from alerts.replay import REPLAY_HEADER
from schemas.alert import Alert
from streams.runtime.logs import get_logger
from streams.runtime.metrics import INHIBIT_RECALLS

log = get_logger(__name__)

MAX_RECALLED = 20_000
"""Records read back per partition at most: the newest ones of the horizon (twice the dispatcher's memory)."""
RECALL_BUDGET_SECONDS = 15.0
"""How long deliveries wait for the recall after a rebalance, at most (each read is bounded at 5 s)."""


class RecentReader(Protocol):
    """What reads the alerts of the last horizon (``streams.runtime.range_reader.RangeReader``)."""

    async def offsets_since(self, partition: int, since_ms: int) -> tuple[int, int]:
        """The first offset stamped at or after ``since_ms`` and the end offset."""
        ...

    async def read_range(
        self, partition: int, start: int, end: int, *, first_only: bool = False
    ) -> tuple[Sequence[Any], bool]:
        """The records at ``start`` ≤ offset < ``end`` and whether the whole range was read."""
        ...


def _incomplete(partition: int, reason: str, read: int) -> None:
    INHIBIT_RECALLS.labels(outcome="incomplete").inc()
    log.warning(
        "inhibit_rules sources of the last horizon not recalled whole: an alert one of them mutes may be sent",
        partition=partition,
        reason=reason,
        read=read,
    )


def _is_replay(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    return any(name == REPLAY_HEADER for name, _ in headers or ())


def sources_in(records: Iterable[Any], dispatcher: Dispatcher) -> list[tuple[float, Alert]]:
    """(the record's timestamp in seconds, the alert) of each record that is an alert able to inhibit."""
    found: list[tuple[float, Alert]] = []
    for record in records:
        if _is_replay(record.headers):
            continue
        try:
            alert = Alert.model_validate_json(record.value or b"")
        except ValidationError:
            continue  # the agent dead-letters it when it reads it (or did)
        if dispatcher.inhibitor.can_inhibit(alert):
            found.append((record.timestamp / 1000.0, alert))
    return found


async def recall_sources(
    reader: RecentReader,
    partitions: Collection[int],
    dispatcher: Dispatcher,
    horizon_seconds: float,
    *,
    now: float | None = None,
    budget_seconds: float = RECALL_BUDGET_SECONDS,
) -> int:
    """Read the last ``horizon_seconds`` of each partition of ``preempt.alerts`` and give the dispatcher
    the sources it did not hold; returns how many were new. Never raises for one partition (counted, logged);
    partitions not started within ``budget_seconds`` are not read (incomplete: deliveries wait no longer)."""
    if not dispatcher.inhibitor.rules or not partitions:
        return 0
    since_ms = int(((time.time() if now is None else now) - horizon_seconds) * 1000)
    deadline = time.monotonic() + budget_seconds
    recalled = 0
    for partition in sorted(partitions):
        if time.monotonic() >= deadline:
            _incomplete(partition, f"out of time ({budget_seconds:g} s for every partition)", 0)
            continue
        try:
            first, end = await reader.offsets_since(partition, since_ms)
            start = max(first, end - MAX_RECALLED)
            records, complete = (await reader.read_range(partition, start, end)) if end > start else ((), True)
            reason = "" if complete else "not read whole in time"
        except Exception as exc:  # noqa: BLE001 - one partition's read: counted and logged, deliveries go on
            records, complete, reason = (), False, f"{type(exc).__name__}: {exc}"
        recalled += dispatcher.remember_sources(sources_in(records, dispatcher))
        if complete:
            INHIBIT_RECALLS.labels(outcome="complete").inc()
        else:
            _incomplete(partition, reason, len(records))
    if recalled:
        log.info("inhibit_rules sources recalled", sources=recalled, partitions=sorted(partitions))
    return recalled
