"""Alertmanager-style aggregation groups: many alerts, one notification.

Each (receiver, group key) has a group. The first alert of a new group waits ``group_wait`` so that
its siblings can join (5 alerts of one account within ``group_wait`` → one notification); alerts
arriving after a flush wait until ``group_interval`` has passed since it. A group that has been idle
(nothing pending) for ``repeat_interval`` is forgotten, so its next alert starts over with
``group_wait``. Preempt's alerts are one-shot episodes (they never "resolve"), so unlike Alertmanager
a group never re-sends alerts it already delivered: re-sending would break the no-duplicates promise
(see docs/notifier-operations.md).

Pure: time comes in as ``now`` (seconds on the caller's monotonic clock: every time here is a wait or an interval).

The delivery loop asks :meth:`Grouper.due` and :meth:`Grouper.next_due` at every turn (every new alert wakes it).
Both looked at every group, and a group stays for ``repeat_interval`` after its flush: with one group per account
or alert, the notifier's cost per alert grew with the groups it held — 20,000 single-alert groups took 6 s for the
first 5,000 alerts and 223 s for the last 5,000, long enough for its partitions to be reported stalled. Two heaps
of (time, group) — flush times and expiry times, stale entries skipped as they come up — make each turn cost
the groups due, not the groups held.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GroupTiming:
    """The three timers of a route (seconds)."""

    group_wait: float
    group_interval: float
    repeat_interval: float


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """What one group flushes: the items that become one notification."""

    receiver: str
    group_key: str
    items: tuple[T, ...]


@dataclass(slots=True)
class _Group(Generic[T]):
    timing: GroupTiming
    pending: list[T] = field(default_factory=list)
    flush_at: float | None = None
    last_flush_at: float | None = None
    sent_before: float | None = None  # last_flush_at before the latest flush (restored when it sent nothing)
    idle_since: float = 0.0


class Grouper(Generic[T]):
    """The aggregation groups of one notifier process."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], _Group[T]] = {}
        # (flush_at, seq, key) of groups with items pending, and (idle_since + repeat_interval, seq, key) of groups
        # gone idle; an entry whose group has changed since is skipped when it comes up (_current_flush, _expired).
        self._flushes: list[tuple[float, int, tuple[str, str]]] = []
        self._expiries: list[tuple[float, int, tuple[str, str]]] = []
        self._seq = itertools.count()

    def _schedule_flush(self, key: tuple[str, str], group: _Group[T]) -> None:
        if group.flush_at is not None:
            heapq.heappush(self._flushes, (group.flush_at, next(self._seq), key))

    def _schedule_expiry(self, key: tuple[str, str], group: _Group[T]) -> None:
        heapq.heappush(self._expiries, (group.idle_since + group.timing.repeat_interval, next(self._seq), key))

    def _current_flush(self, at: float, key: tuple[str, str]) -> _Group[T] | None:
        """The group of a flush entry, or None when the entry is stale (flushed, emptied or moved since)."""
        group = self._groups.get(key)
        if group is None or not group.pending or group.flush_at != at:
            return None
        return group

    def add(self, receiver: str, group_key: str, timing: GroupTiming, item: T, now: float) -> bool:
        """Put ``item`` in its group; True when it joined items already waiting (it is "grouped")."""
        key = (receiver, group_key)
        group = self._groups.get(key)
        if group is not None and not group.pending and now - group.idle_since >= group.timing.repeat_interval:
            group = None  # idle past repeat_interval: start a fresh group (with group_wait)
        if group is None:
            group = _Group(timing=timing, flush_at=now + timing.group_wait)
            self._groups[key] = group
        joined = bool(group.pending)
        group.pending.append(item)
        if group.last_flush_at is None:
            due = now + group.timing.group_wait
        else:
            due = max(now, group.last_flush_at + group.timing.group_interval)
        # Items held back (quiet hours) must not hold back a newcomer: it is due on the group's own
        # schedule, and the flush holds the quiet ones again (a critical alert is never deferred).
        flush_at = due if group.flush_at is None else min(group.flush_at, due)
        if not joined or flush_at != group.flush_at:
            group.flush_at = flush_at
            self._schedule_flush(key, group)
        return joined

    def hold(self, receiver: str, group_key: str, items: list[T], until: float, *, sent_any: bool = True) -> None:
        """Put ``items`` back into their group to be flushed no earlier than ``until`` (quiet hours).

        ``sent_any=False`` says the flush that returned them sent nothing: the group was not notified,
        so its ``group_interval`` still counts from the flush before.
        """
        if not items:
            return
        key = (receiver, group_key)
        group = self._groups.get(key)
        if group is None:
            group = _Group(timing=GroupTiming(0.0, 0.0, 0.0))
            self._groups[key] = group
        elif not sent_any:
            group.last_flush_at = group.sent_before
        group.pending[:0] = items
        group.flush_at = until if group.flush_at is None else min(group.flush_at, until)
        self._schedule_flush(key, group)

    def due(self, now: float) -> list[Batch[T]]:
        """Flush every group whose time has come, earliest first; forget groups idle past their repeat_interval."""
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:  # first: a group flushed now is forgotten at a later call
            _, _, key = heapq.heappop(expiries)
            group = self._groups.get(key)
            if group is not None and not group.pending and now - group.idle_since >= group.timing.repeat_interval:
                del self._groups[key]
        batches: list[Batch[T]] = []
        flushes = self._flushes
        while flushes and flushes[0][0] <= now:
            at, _, key = heapq.heappop(flushes)
            group = self._current_flush(at, key)
            if group is None:
                continue
            batches.append(Batch(key[0], key[1], tuple(group.pending)))
            group.pending.clear()
            group.flush_at = None
            group.sent_before = group.last_flush_at
            group.last_flush_at = now
            group.idle_since = now
            self._schedule_expiry(key, group)
        return batches

    def next_due(self) -> float | None:
        """The earliest pending flush time, or None when nothing waits."""
        flushes = self._flushes
        while flushes and self._current_flush(flushes[0][0], flushes[0][2]) is None:
            heapq.heappop(flushes)
        return flushes[0][0] if flushes else None

    def discard(self, drop: Callable[[T], bool]) -> int:
        """Remove pending items for which ``drop`` is true (e.g. their partition was revoked)."""
        dropped = 0
        for key, group in self._groups.items():
            before = len(group.pending)
            group.pending[:] = [item for item in group.pending if not drop(item)]
            dropped += before - len(group.pending)
            if before and not group.pending:
                group.flush_at = None
                self._schedule_expiry(key, group)
        return dropped

    def clear(self) -> int:
        """Forget every group, its pending items and its flush history (the process owns no partition any more:
        an alert read again after it gets one back starts a fresh group, with ``group_wait``, as after a restart —
        not held for ``group_interval`` behind a flush whose delivery was dropped). Returns the items dropped."""
        dropped = self.pending()
        self._groups.clear()
        self._flushes.clear()
        self._expiries.clear()
        return dropped

    def pending(self) -> int:
        """Items waiting in all groups."""
        return sum(len(g.pending) for g in self._groups.values())

    def __len__(self) -> int:
        return len(self._groups)
