"""When people work: hour-of-day activity weights in the customer's own time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import accumulate
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

# Relative activity per local hour: a working day with a lunch dip, a quiet evening tail.
_WEEKDAY = (0, 0, 0, 0, 0, 0, 0.05, 0.3, 0.9, 1, 1, 0.9, 0.6, 0.9, 1, 1, 0.9, 0.6, 0.35, 0.2, 0.15, 0.1, 0.05, 0)
_WEEKEND = (0, 0, 0, 0, 0, 0, 0, 0.05, 0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.25, 0.2, 0.2, 0.15, 0.1, 0.1, 0, 0)


@dataclass(frozen=True, slots=True)
class LocalDay:
    """One simulated day (24 h from ``start_ms``) as seen in a time zone."""

    start_ms: int
    weekend: bool
    weights: tuple[float, ...]  # per hour offset 0..23 from start_ms
    cum_weights: tuple[float, ...]


@lru_cache(maxsize=4096)
def local_day(tz_name: str, start_ms: int) -> LocalDay:
    """Activity weights of the 24 hours from ``start_ms`` (epoch ms) in ``tz_name``."""
    tz = ZoneInfo(tz_name)
    midday = datetime.fromtimestamp((start_ms + 12 * HOUR_MS) / 1000, tz=UTC).astimezone(tz)
    weights = []
    for hour in range(24):
        local = datetime.fromtimestamp((start_ms + hour * HOUR_MS + HOUR_MS // 2) / 1000, tz=UTC).astimezone(tz)
        profile = _WEEKEND if local.weekday() >= 5 else _WEEKDAY
        weights.append(profile[local.hour])
    return LocalDay(start_ms, midday.weekday() >= 5, tuple(weights), tuple(accumulate(weights)))
