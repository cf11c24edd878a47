"""Per-item anomalies that the pure packages (``schemas``, ``rules``) report without importing the runtime.

``rules`` and ``schemas`` may not import ``streams.runtime`` (dependencies point one way), yet a
skipped ``sum:`` value or an invalid account timezone must still be counted. They call
:func:`report`; ``streams.runtime.metrics`` — the one module that declares every metric — subscribes
once, at import, and turns each report into a Prometheus count. With no subscriber (a pure unit
test, the backtest library) a report costs one dict lookup and is dropped: nothing is running
that could be scraped.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class Anomaly(StrEnum):
    """What can be reported; each is one metric in ``streams.runtime.metrics``."""

    MEASURE_VALUE_SKIPPED = "measure_value_skipped"  # reason: out_of_range
    INVALID_TIMEZONE = "invalid_timezone"  # reason: "" (one count per distinct zone name)
    FUTURE_EVENT = "future_event"  # reason: "" (a live clock counted an event time as wall + tolerance)
    USER_NOT_TRACKED = "user_not_tracked"  # reason: the rule id (a per-user rule already tracks its most users)
    USER_COOLDOWN_NOT_KEPT = "user_cooldown_not_kept"  # reason: the rule id (its cooldown table is full)
    RISK_DAY_SKETCHED = "risk_day_sketched"  # reason: the rule id (a day's users of its features became a sketch)
    USER_MISSING = "user_missing"  # reason: the rule id (an event without user_id reached a per-user rule)


_subscribers: dict[Anomaly, Callable[[str], None]] = {}


def report(anomaly: Anomaly, reason: str = "") -> None:
    """Count one ``anomaly`` (called by pure code on the item's path)."""
    subscriber = _subscribers.get(anomaly)
    if subscriber is not None:
        subscriber(reason)


def subscribe(anomaly: Anomaly, subscriber: Callable[[str], None]) -> None:
    """Route every report of ``anomaly`` to ``subscriber`` (``streams.runtime.metrics`` at import)."""
    _subscribers[anomaly] = subscriber
