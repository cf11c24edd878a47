"""Quiet hours in the owner's timezone, with a fixed ``now``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from alerts.routing.config import QuietHours
from alerts.routing.quiet_hours import defer_until, local_time
from schemas.alert import Alert

PARIS = ZoneInfo("Europe/Paris")


def _at(text: str, zone: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


@pytest.fixture
def quiet() -> QuietHours:
    """20:00–08:00 on weekdays, weekends quiet all day."""
    return QuietHours.model_validate({"start": "20:00", "end": "08:00", "weekends": True})


def test_no_quiet_hours_sends_now() -> None:
    """Without quiet hours, nothing is deferred."""
    assert defer_until(None, "Europe/Paris", _at("2026-11-24T23:00")) is None


def test_daytime_sends_now(quiet: QuietHours) -> None:
    """Tuesday 14:00 local is not quiet."""
    assert defer_until(quiet, "Europe/Paris", _at("2026-11-24T14:00")) is None


@pytest.mark.parametrize(
    ("now", "until"),
    [
        ("2026-11-24T21:30", "2026-11-25T08:00"),  # Tuesday evening → Wednesday 08:00
        ("2026-11-25T06:59", "2026-11-25T08:00"),  # early Wednesday → same morning
        ("2026-11-27T20:00", "2026-11-30T08:00"),  # Friday 20:00 → Monday 08:00 (weekend)
        ("2026-11-28T12:00", "2026-11-30T08:00"),  # Saturday noon → Monday 08:00
    ],
)
def test_quiet_time_defers_to_end_in_owner_zone(quiet: QuietHours, now: str, until: str) -> None:
    """Inside quiet hours the alert waits for the next local end time (the digest)."""
    assert defer_until(quiet, "Europe/Paris", _at(now)) == _at(until)


def test_owner_timezone_changes_the_answer(quiet: QuietHours) -> None:
    """The same instant is quiet in Paris (21:00) and not in New York (15:00)."""
    now = _at("2026-11-24T21:00")
    assert defer_until(quiet, "Europe/Paris", now) is not None
    assert defer_until(quiet, "America/New_York", now) is None


def test_unknown_or_missing_zone_uses_default(quiet: QuietHours) -> None:
    """A bad or missing account zone falls back to the configured timezone (UTC here)."""
    now = _at("2026-11-24T22:00", ZoneInfo("UTC"))
    assert defer_until(quiet, "Not/AZone", now) == _at("2026-11-25T08:00", ZoneInfo("UTC"))
    assert defer_until(quiet, None, now) == _at("2026-11-25T08:00", ZoneInfo("UTC"))


def test_same_day_span_and_weekend_end_at_midnight() -> None:
    """A lunch-hour span defers to 13:00; a weekend ends at Monday 00:00 when that is not quiet."""
    lunch = QuietHours.model_validate({"start": "12:00", "end": "13:00", "weekends": True})
    assert defer_until(lunch, "Europe/Paris", _at("2026-11-24T12:30")) == _at("2026-11-24T13:00")
    assert defer_until(lunch, "Europe/Paris", _at("2026-11-28T10:00")) == _at("2026-11-30T00:00")


def test_dst_change_is_respected(quiet: QuietHours) -> None:
    """Across the March DST change the end is still 08:00 local time."""
    assert defer_until(quiet, "Europe/Paris", _at("2027-03-29T21:00")) == _at("2027-03-30T08:00")
    assert defer_until(quiet, "Europe/Paris", _at("2027-03-26T21:00")) == _at("2027-03-29T08:00")


def test_critical_bypasses_by_default(quiet: QuietHours, make_alert: Callable[..., Alert]) -> None:
    """applies_to() is False for bypass severities (critical by default)."""
    assert not quiet.applies_to(make_alert(severity="critical"))
    assert quiet.applies_to(make_alert(severity="high"))


def test_start_equal_end_is_refused() -> None:
    """Quiet hours that start when they end are a configuration error."""
    with pytest.raises(ValueError, match="start and end must differ"):
        QuietHours.model_validate({"start": "08:00", "end": "08:00"})


def test_an_account_record_without_timezone_uses_the_files_quiet_hours_zone() -> None:
    """An account on preempt.accounts that names no timezone gets quiet hours in the routing file's
    quiet_hours.timezone (as documented), not in UTC: the record no longer defaults to "UTC"."""
    from alerts.dispatch import alert_timezone
    from alerts.testing.factories import build_alert
    from schemas.account import Account

    record = Account.model_validate({"account_id": "hooli", "name": "Hooli", "owner": {"name": "Gavin"}})
    assert record.timezone is None
    alert = build_alert(account_id="hooli", account={"name": "Hooli", "timezone": record.timezone})
    tokyo = QuietHours.model_validate({"start": "20:00", "end": "08:00", "timezone": "Asia/Tokyo"})
    # 23:00 in Tokyo is 14:00 UTC: quiet for the file's zone, daytime in UTC.
    now = _at("2026-11-24T23:00", ZoneInfo("Asia/Tokyo"))
    assert defer_until(tokyo, alert_timezone(alert), now) == _at("2026-11-25T08:00", ZoneInfo("Asia/Tokyo"))


def test_the_repeated_hour_of_a_dst_change_defers_to_a_time_still_ahead() -> None:
    """On the night clocks fall back (New York, 2026-11-01, 01:00–02:00 happens twice), an alert at the
    second 01:40 with quiet hours 01:30–01:45 waits until the second 01:45 — not the first one, already past."""
    quiet = QuietHours(start="01:30", end="01:45", timezone="America/New_York")
    now = datetime.fromisoformat("2026-11-01T06:40:00+00:00").timestamp()  # 01:40 EST, the second pass
    assert defer_until(quiet, None, now) == datetime.fromisoformat("2026-11-01T06:45:00+00:00").timestamp()


def test_an_end_inside_the_skipped_hour_of_a_dst_change_is_not_before_it() -> None:
    """On the night clocks spring forward (New York, 2026-03-08, 02:00 jumps to 03:00) quiet hours ending at
    02:30 end after the jump, never at an instant that is still 01:xx local (inside the quiet hours)."""
    quiet = QuietHours(start="01:00", end="02:30", timezone="America/New_York")
    now = datetime.fromisoformat("2026-03-08T06:10:00+00:00").timestamp()  # 01:10 EST
    until = defer_until(quiet, None, now)
    assert until is not None
    assert until >= datetime.fromisoformat("2026-03-08T07:00:00+00:00").timestamp()  # 03:00 EDT


@pytest.mark.parametrize(
    ("zone", "now", "released"),
    [
        # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT; quiet 01:00–02:30 ends at the jump.
        ("America/New_York", "2026-03-08T06:10:00+00:00", "2026-03-08T07:00:00+00:00"),
        # Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        ("Europe/Paris", "2026-03-29T00:10:00+00:00", "2026-03-29T01:00:00+00:00"),
        # Lord Howe Island, 2026-10-04: 02:00 jumps to 02:30 (a half-hour change); 02:15 never shows, 02:30 does.
        ("Australia/Lord_Howe", "2026-10-03T14:40:00+00:00", "2026-10-03T15:30:00+00:00"),
    ],
)
def test_an_end_inside_the_skipped_hour_releases_at_the_jump(zone: str, now: str, released: str) -> None:
    """Quiet hours whose end falls in the hour clocks skip end when the clock jumps past it: the local time
    is then past the end and not quiet. They were released 30 minutes after the jump (the end read with the
    offset before the change: 02:30 EST is 03:30 EDT), alerts held in a period no longer quiet."""
    end = "02:15" if zone == "Australia/Lord_Howe" else "02:30"
    quiet = QuietHours(start="01:00", end=end, timezone=zone)
    until = defer_until(quiet, None, datetime.fromisoformat(now).timestamp())
    assert until == datetime.fromisoformat(released).timestamp()


def test_a_release_time_is_told_in_rfc3339_in_the_zone_quiet_hours_follow() -> None:
    """For log lines: the account's zone with its offset, the file's zone for an unknown one, ``Z`` for UTC."""
    quiet = QuietHours(start="20:00", end="08:00", timezone="UTC")
    ts = datetime(2026, 11, 24, 7, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert local_time(quiet, "Europe/Paris", ts) == "2026-11-24T08:00:00+01:00"
    assert local_time(quiet, "Mars/Olympus_Mons", ts) == "2026-11-24T07:00:00Z"
    assert local_time(quiet, None, ts) == "2026-11-24T07:00:00Z"
