"""Alertmanager-style aggregation groups: many alerts, one notification.

Each (receiver, group key) has a group. The first alert of a new group waits ``group_wait`` so that
its siblings can join (5 alerts of one account within ``group_wait`` → one notification); alerts
arriving after a flush wait until ``group_interval`` has passed since it. A group that has been idle
(nothing pending) for ``repeat_interval`` is forgotten, so its next alert starts over with
``group_wait``. Preempt's alerts are one-shot episodes (they never "resolve"), so unlike Alertmanager
a group never re-sends alerts it already delivered: re-sending would break the no-duplicates promise
(see docs/notifier-operations.md).

Pure: time comes in as ``now`` (seconds on the caller's monotonic clock: every time here is a wait or an interval).
"""

from __future__ import annotations

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
        group.flush_at = due if group.flush_at is None else min(group.flush_at, due)
        return joined

    def hold(self, receiver: str, group_key: str, items: list[T], until: float, *, sent_any: bool = True) -> None:
        """Put ``items`` back into their group to be flushed no earlier than ``until`` (quiet hours).

        ``sent_any=False`` says the flush that returned them sent nothing: the group was not notified,
        so its ``group_interval`` still counts from the flush before.
        """
        if not items:
            return
        group = self._groups.get((receiver, group_key))
        if group is None:
            group = _Group(timing=GroupTiming(0.0, 0.0, 0.0))
            self._groups[(receiver, group_key)] = group
        elif not sent_any:
            group.last_flush_at = group.sent_before
        group.pending[:0] = items
        group.flush_at = until if group.flush_at is None else min(group.flush_at, until)

    def due(self, now: float) -> list[Batch[T]]:
        """Flush every group whose time has come; forget groups idle past their repeat_interval."""
        batches: list[Batch[T]] = []
        for (receiver, group_key), group in list(self._groups.items()):
            if group.pending and group.flush_at is not None and group.flush_at <= now:
                batches.append(Batch(receiver, group_key, tuple(group.pending)))
                group.pending.clear()
                group.flush_at = None
                group.sent_before = group.last_flush_at
                group.last_flush_at = now
                group.idle_since = now
            elif not group.pending and now - group.idle_since >= group.timing.repeat_interval:
                del self._groups[(receiver, group_key)]
        return batches

    def next_due(self) -> float | None:
        """The earliest pending flush time, or None when nothing waits."""
        times = [g.flush_at for g in self._groups.values() if g.pending and g.flush_at is not None]
        return min(times) if times else None

    def discard(self, drop: Callable[[T], bool]) -> int:
        """Remove pending items for which ``drop`` is true (e.g. their partition was revoked)."""
        dropped = 0
        for group in self._groups.values():
            before = len(group.pending)
            group.pending[:] = [item for item in group.pending if not drop(item)]
            dropped += before - len(group.pending)
            if not group.pending:
                group.flush_at = None
        return dropped

    def pending(self) -> int:
        """Items waiting in all groups."""
        return sum(len(g.pending) for g in self._groups.values())

    def __len__(self) -> int:
        return len(self._groups)
