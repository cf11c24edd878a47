"""Durations: short forms and ISO 8601, refused when ambiguous or empty."""

from __future__ import annotations

import pytest

from rules.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h", 3600), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400), ("250ms", 0.25),
     ("PT10M", 600), ("P7D", 604800), ("PT1H30M", 5400), ("P1DT12H", 129600), ("pt45s", 45), ("P2W", 1209600)],
)  # fmt: skip
def test_accepted_forms(text, seconds):
    """Each documented form parses to its seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["10", "1mo", "P1M", "P1Y", "PT", "P", "P1DT", "0s", "-5m", "ten minutes", 10, True, None]
)
def test_refused_forms(text):
    """Bare numbers, months, years, empty ISO forms, zero and non-strings are refused with a sentence."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_is_the_shortest_exact_form():
    """Seconds print back in the largest exact unit."""
    assert [format_duration(s) for s in (604800.0, 86400.0 * 3, 5400.0, 90.0, 0.5)] == [
        "1w",
        "3d",
        "90m",
        "90s",
        "0.5s",
    ]
