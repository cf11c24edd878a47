"""At most one log line per interval, and what was held back since the last one.

Shared by the logs that must neither stay silent nor flood: the rules worker's late events (one per
partition), refused records and duplicate events, and the notifier's held deliveries. Each logs the
first occurrence at once, holds the next ones — counted, by a key of its own — while its interval since
the last line has not passed, and says their counts with the next line (or a summary once the
interval is over). Pure: the caller passes its own clock's time.
"""

from __future__ import annotations

from collections import Counter


class LogThrottle:
    """Whether a line may be logged at ``now`` (none logged within ``interval`` seconds before it), and the
    counts held back since the last line."""

    __slots__ = ("held", "interval", "last")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last: float | None = None  # when the last line was logged (None: never)
        self.held: Counter[str] = Counter()

    def open(self, now: float) -> bool:
        """True when no line was logged within the interval before ``now``."""
        # Against ``due``'s sum, not ``now - last``: a caller that waits until ``due`` finds it open then.
        return self.last is None or now >= self.last + self.interval

    def ready(self, now: float) -> bool:
        """True when counts are held and a line may be logged at ``now``."""
        return bool(self.held) and self.open(now)

    def due(self, now: float) -> float | None:
        """When the held counts may be logged: the last line's time plus the interval (``now`` when no
        line was logged yet); None when nothing is held."""
        if not self.held:
            return None
        return now if self.last is None else self.last + self.interval

    def hold(self, key: str, count: int = 1) -> None:
        """Hold ``count`` more of ``key`` back until the next line (0: nothing)."""
        if count:
            self.held[key] += count

    def take(self, now: float) -> Counter[str]:
        """A line is logged at ``now``: the counts held since the last one (cleared here)."""
        held, self.held = self.held, Counter()
        self.last = now
        return held
