"""Quiet hours in the account owner's timezone: alerts that arrive inside them wait for the next digest.

``defer_until`` is pure (``now`` comes in as an argument): the notifier calls it per notification and,
when it returns a time, holds the notification until then (the "next digest"), grouping what piles up.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.routing.config import QuietHours
from streams.runtime.logs import get_logger
from streams.runtime.metrics import NOTIFIER_FALLBACKS

log = get_logger(__name__)


def _lookup(tz_name: str | None) -> ZoneInfo | None:
    """The IANA zone ``tz_name``, or None when there is none or it is unknown."""
    if not tz_name:
        return None
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _zone(quiet: QuietHours, tz_name: str | None) -> ZoneInfo:
    zone = _lookup(tz_name)
    if zone is not None:
        return zone
    if tz_name:
        # A bad zone on one account must not stop (or drop) its alerts: quiet hours use the
        # configured default zone instead, counted and logged (docs/notifier-operations.md).
        NOTIFIER_FALLBACKS.labels(reason="invalid_timezone").inc()
        log.warning("unknown_timezone", timezone=tz_name[:100], fallback=quiet.timezone)
    return ZoneInfo(quiet.timezone)


def local_time(quiet: QuietHours, tz_name: str | None, ts: float) -> str:
    """``ts`` (epoch seconds) as RFC 3339 in the zone quiet hours follow for ``tz_name`` (``quiet_zone``'s, with
    its offset: ``2026-12-04T08:00:00+01:00``; ``Z`` for UTC, as the log lines' ``timestamp``), for log lines; an
    unknown zone, already counted and logged by ``defer_until``, is not again."""
    zone = _lookup(tz_name) or ZoneInfo(quiet.timezone)
    text = datetime.fromtimestamp(ts, tz=zone).isoformat(timespec="seconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def quiet_zone(quiet: QuietHours, tz_name: str | None) -> ZoneInfo:
    """The zone whose clock quiet hours follow for an account: its own IANA zone, else ``quiet.timezone``."""
    return _zone(quiet, tz_name)


def _is_quiet(quiet: QuietHours, local: datetime) -> bool:
    if quiet.weekends and local.weekday() >= 5:
        return True
    t = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:  # same-day span, e.g. 12:00–13:00
        return quiet.start <= t < quiet.end
    return t >= quiet.start or t < quiet.end  # overnight span, e.g. 20:00–08:00


def defer_until(quiet: QuietHours | None, tz_name: str | None, now: float) -> float | None:
    """When to deliver instead (epoch seconds, the end of the quiet period), or None to send now.

    ``tz_name`` is the account's IANA timezone (the owner's); None or unknown uses ``quiet.timezone``.
    With ``weekends``, a Friday-evening alert waits until Monday at ``end``. Severity bypass is the
    caller's decision (``QuietHours.applies_to``).
    """
    if quiet is None:
        return None
    zone = _zone(quiet, tz_name)
    local = datetime.fromtimestamp(now, tz=zone)
    if not _is_quiet(quiet, local):
        return None
    # The quiet period ends at the first local `end` time or midnight (the end of a weekend) after now
    # that is not itself quiet; with weekends that is at most three days away. Candidates are compared as
    # instants, both passes of a wall time repeated when clocks fall back, and checked for quiet at the
    # local time they really are (a time skipped when clocks spring forward lands after the jump).
    instants = (
        _instant(datetime.combine(local.date() + timedelta(days=day), at, tzinfo=zone).replace(fold=fold))
        for day in range(8)
        for at in (time(0), quiet.end)
        for fold in (0, 1)
    )
    ahead = [ts for ts in instants if ts > now and not _is_quiet(quiet, datetime.fromtimestamp(ts, tz=zone))]
    return min(ahead) if ahead else None  # never empty for a valid QuietHours (start != end)


def _instant(wall: datetime) -> float:
    """The instant the clock of ``wall``'s zone first shows ``wall`` or later: ``wall`` itself, but for a wall time
    clocks skip (02:30 on the night 02:00 jumps to 03:00), which is first passed at the jump itself.

    Python reads a skipped time with the offset before the change (02:30 EST: 03:30 EDT), half an hour past the
    jump; the jump lies between that and the reading with the offset after it (02:30 EDT: 01:30 EST), found to
    the second by bisection (changes are whole minutes: Lord Howe's is 30 minutes).
    """
    assert wall.tzinfo is not None
    ts = wall.replace(fold=0).timestamp()
    if datetime.fromtimestamp(ts, tz=wall.tzinfo).replace(tzinfo=None) == wall.replace(tzinfo=None, fold=0):
        return wall.timestamp()  # a time that exists (once, or twice: fold picks the pass)
    before, after = wall.replace(fold=1).timestamp(), ts  # the offset after the change is the larger one
    if before > after:
        before, after = after, before
    offset_after = datetime.fromtimestamp(after, tz=wall.tzinfo).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, tz=wall.tzinfo).utcoffset() == offset_after:
            after = middle
        else:
            before = middle
    return float(after)
