"""The throttle behind the late-event, refusal, duplicate and held-delivery logs: a line at most once per interval."""

from __future__ import annotations

from streams.runtime.log_throttle import LogThrottle


def test_the_first_line_goes_at_once_and_the_next_ones_are_held_with_their_counts_until_the_interval_ends() -> None:
    """Open before any line; after one, closed for the interval, the counts held by key; taken, they are cleared."""
    throttle = LogThrottle(10.0)
    assert throttle.open(0.0)
    assert not throttle.ready(0.0)
    throttle.take(0.0)
    throttle.hold("a")
    throttle.hold("b", 2)
    throttle.hold("c", 0)
    assert not throttle.open(9.9)
    assert not throttle.ready(9.9)
    assert throttle.due(5.0) == 10.0
    assert throttle.ready(10.0)
    assert throttle.take(10.0) == {"a": 1, "b": 2}
    assert throttle.due(11.0) is None


def test_due_is_now_when_no_line_was_logged_yet_and_open_at_due_time_whatever_the_rounding() -> None:
    """Held before any line, the counts are due at once; a caller that waits until ``due`` finds it open then
    (0.1 + 10 - 0.1 is below 10 in floating point)."""
    throttle = LogThrottle(10.0)
    throttle.hold("slack")
    assert throttle.due(3.0) == 3.0
    throttle.take(0.1)
    throttle.hold("slack")
    due = throttle.due(0.2)
    assert due is not None
    assert throttle.ready(due)
