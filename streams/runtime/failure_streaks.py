"""Streaks of failed attempts per target, and when such a streak makes a process not ready.

The one rule behind the notifier's ``deliveries failing`` (``alerts/delivery_health.py``) and ingest's
``writes failing`` (``streams/ingest/write_health.py``) ``/readyz`` reasons:

* an attempt that fails extends the target's streak; one that succeeds ends it;
* a target is *failing* once its streak holds at least ``min_failures`` attempts, has lasted
  ``failing_after_s`` with no success, and its last failure is recent (within twice that: a target
  nothing was tried on for that long is not known to fail any more — so a process that left the load
  balancer because of it is tried again, and leaves again if it still fails).

Each change is reported once, through the hooks a subclass overrides (``_reported`` when a streak
becomes failing, ``_recovered`` when a reported streak ends with a success, ``_expired`` when it ends
for want of attempts): the owner logs and exports its own metric there. Pure but for those: the
caller passes the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MIN_FAILURES = 3
"""Failed attempts in a row a target needs, besides the time, to be reported (one message's retries can be them)."""
MAX_ERROR_CHARS = 160


@dataclass(slots=True)
class Streak:
    """A target's failed attempts since its last success."""

    group: str  # a bounded label for the owner's metric (receiver type, kind of write)
    since: float  # the first failure of the streak
    last: float  # the latest failure
    failures: int
    error: str
    reported: bool = False


class FailureStreaks:
    """The failure streak of every target (see the module doc). ``clock`` is the caller's."""

    def __init__(self, failing_after_s: float, clock: Callable[[], float], min_failures: int = MIN_FAILURES) -> None:
        self.failing_after_s = failing_after_s
        self.min_failures = min_failures
        self._clock = clock
        self._streaks: dict[str, Streak] = {}

    def succeeded(self, target: str) -> None:
        """An attempt on ``target`` succeeded: its streak (if any) ends."""
        streak = self._streaks.pop(target, None)
        if streak is not None and streak.reported:
            self._recovered(target, streak)

    def failed(self, target: str, group: str, error: str) -> None:
        """An attempt on ``target`` failed with ``error`` (no secrets: the callers' errors carry none)."""
        now = self._clock()
        streak = self._streaks.get(target)
        if streak is None:
            self._streaks[target] = Streak(group, now, now, 1, error)
            return
        streak.failures += 1
        streak.last = now
        streak.error = error

    def failing(self) -> tuple[str, ...]:
        """``/readyz``'s reasons, one per failing target (empty when every target works or is unknown)."""
        return tuple(reason for _group, reason in self.failing_by_group())

    def failing_by_group(self) -> list[tuple[str, str]]:
        """``(group, reason)`` of every failing target, for an owner whose groups weigh differently."""
        now = self._clock()
        reasons: list[tuple[str, str]] = []
        for target, streak in sorted(self._streaks.items()):
            if now - streak.last > 2 * self.failing_after_s:  # nothing tried for long: no longer known to fail
                del self._streaks[target]
                if streak.reported:
                    self._expired(target, streak)
                continue
            if streak.failures < self.min_failures or now - streak.since < self.failing_after_s:
                continue
            if not streak.reported:
                streak.reported = True
                self._reported(target, streak, now)
            reasons.append((streak.group, self._reason(target, streak, now)))
        return reasons

    def reported_in(self, group: str) -> int:
        """How many targets of ``group`` are reported failing now (for the owner's gauge)."""
        return sum(1 for s in self._streaks.values() if s.reported and s.group == group)

    def _reason(self, target: str, streak: Streak, now: float) -> str:
        return (
            f"{target}: {streak.failures} attempts failed in a row, none succeeded for "
            f"{now - streak.since:.0f} s (last: {streak.error[:MAX_ERROR_CHARS]})"
        )

    def _reported(self, target: str, streak: Streak, now: float) -> None:
        """``target`` has just become failing (log it once, export the metric)."""

    def _recovered(self, target: str, streak: Streak) -> None:
        """A reported ``target`` succeeded again."""

    def _expired(self, target: str, streak: Streak) -> None:
        """A reported ``target`` was not tried for twice the window: no longer reported."""
