"""The one event-time clock: watermark = highest event time − allowed lateness, live or event-time only."""

from __future__ import annotations

import pytest

from rules.clock import EventTimeClock
from schemas import observed
from schemas.observed import Anomaly


def test_event_time_clock_has_no_watermark_until_it_sees_an_event() -> None:
    """An event-time-only clock says nothing before its first event, then max − lateness."""
    clock = EventTimeClock(5.0)
    assert clock.watermark() is None
    clock.observe(100.0)
    assert clock.watermark() == 95.0


def test_clock_only_moves_forward() -> None:
    """An older event time neither moves the clock nor counts as a move."""
    clock = EventTimeClock(5.0)
    assert clock.observe(100.0) is True
    assert clock.observe(90.0) is False
    assert (clock.max_event_time, clock.watermark()) == (100.0, 95.0)


def test_after_event_returns_the_watermark_including_that_event() -> None:
    """The backtest's step: observe an event, get the watermark it leaves."""
    clock = EventTimeClock(5.0)
    assert clock.after_event(100.0) == 95.0
    assert clock.after_event(50.0) == 95.0


def test_watermark_at_is_where_a_clock_starts() -> None:
    """``watermark_at(t)`` is the watermark once ``t`` is the highest event time."""
    assert EventTimeClock(5.0).watermark_at(100.0) == 95.0


def test_restore_never_moves_the_clock_back() -> None:
    """A persisted max seeds an empty clock but never lowers a newer one."""
    clock = EventTimeClock(5.0)
    clock.restore(70.0)
    clock.restore(60.0)
    assert clock.max_event_time == 70.0


def test_live_clock_follows_the_wall_clock_once_caught_up() -> None:
    """Once its stream has caught up, a live clock is never behind that moment's now − lateness."""
    clock = EventTimeClock(5.0, future_tolerance=1.0)
    assert clock.watermark(now=1000.0) is None  # nothing seen, never caught up
    clock.catch_up(now=1000.0)
    assert clock.watermark(now=1000.0) == 995.0
    clock.observe(100.0, now=1000.0)
    assert clock.watermark(now=1000.0) == 995.0
    clock.catch_up(now=990.0)  # the floor never moves back
    assert clock.watermark(now=1000.0) == 995.0


def test_live_clock_reading_a_backlog_is_moved_by_event_times_only() -> None:
    """While a backlog is read (no catch_up), the wall clock does not make its events late."""
    clock = EventTimeClock(5.0, future_tolerance=1.0)
    clock.catch_up(now=1000.0)
    clock.observe(1000.0, now=1000.0)
    # 60 s later the worker reads what was written while it was down: events from t=1001 on.
    assert clock.watermark(now=1060.0) == 995.0
    clock.observe(1030.0, now=1060.0)
    assert clock.watermark(now=1060.0) == 1025.0
    clock.catch_up(now=1060.0)
    assert clock.watermark(now=1060.0) == 1055.0


def test_event_time_only_clock_ignores_catch_up() -> None:
    """Catching up does not move an event-time-only clock (the backtest's, replays')."""
    clock = EventTimeClock(5.0)
    clock.catch_up(now=1000.0)
    assert clock.watermark() is None


def test_live_clock_caps_a_future_event_and_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """An event stamped beyond now + tolerance moves a live clock only to that bound, reported each time."""
    reports: list[str] = []
    monkeypatch.setitem(observed._subscribers, Anomaly.FUTURE_EVENT, reports.append)
    clock = EventTimeClock(5.0, future_tolerance=1.0)
    assert clock.observe(1280.0, now=1000.0) is True
    assert clock.observe(1300.0, now=1000.0) is False  # capped to the same bound: no move
    assert clock.max_event_time == 1001.0
    assert clock.watermark(now=1000.0) == 996.0
    assert len(reports) == 2


def test_live_clock_bounds_a_restored_future_time() -> None:
    """A restored time beyond now + tolerance counts as that bound in the watermark."""
    clock = EventTimeClock(5.0, future_tolerance=1.0)
    clock.restore(5000.0)
    assert clock.watermark(now=1000.0) == 996.0


def test_live_clock_needs_the_wall_clock_time() -> None:
    """Asking a live clock without ``now`` is a programming error, said at once."""
    with pytest.raises(TypeError, match="now"):
        EventTimeClock(5.0, future_tolerance=1.0).watermark()


def test_negative_lateness_is_refused() -> None:
    """Allowed lateness is never negative."""
    with pytest.raises(ValueError, match="allowed_lateness"):
        EventTimeClock(-1.0)
