"""Duration parsing for routing timings."""

from __future__ import annotations

import pytest

from alerts.routing.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("4h", 14400.0),
        ("7d", 604800.0),
        ("1h30m", 5400.0),
        ("PT10M", 600.0),
        (45, 45.0),
        (0.5, 0.5),
        ("0s", 0.0),
        ("250ms", 0.25),
    ],
)
def test_accepted_forms(text: object, seconds: float) -> None:
    """Units, compounds, ISO 8601 and plain numbers all give seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5x", "", "m5", "P", "PT", -1, True, None, "1h 30m"])
def test_rejected_forms(text: object) -> None:
    """Anything else raises ValueError with the accepted forms."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
