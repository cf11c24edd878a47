"""The one duration grammar: rule-file durations and routing timings (which also take plain seconds)."""

from __future__ import annotations

import pytest

from schemas.durations import format_duration, parse_cooldown, parse_duration, parse_duration_or_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h", 3600), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400), ("250ms", 0.25),
     ("10 m", 600), (" 4h ", 14400), ("1h30m", 5400), ("1h 30m", 5400), ("1d 12h", 129600),
     ("PT10M", 600), ("P7D", 604800), ("PT1H30M", 5400), ("P1DT12H", 129600), ("pt45s", 45), ("P2W", 1209600)],
)  # fmt: skip
def test_accepted_forms(text: str, seconds: float) -> None:
    """Each documented form parses to its seconds, in rule files and routing files alike."""
    assert parse_duration(text) == seconds
    assert parse_duration_or_seconds(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["10", "1mo", "P1M", "P1Y", "PT", "P", "P1DT", "0s", "-5m", "ten minutes", "", "m5", "1h,30m", 10, True, None],
)
def test_rule_file_refused_forms(text: object) -> None:
    """Bare numbers, months, years, empty ISO forms, zero and non-strings are refused with a sentence."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["36501d", "99999999999999d", "P5300W", "876001h"])
def test_durations_over_a_hundred_years_are_refused(text: str) -> None:
    """A duration beyond 100 years is refused with a sentence (its window would start before year 1)."""
    with pytest.raises(ValueError, match=r"a duration must be at most 100 years \(36500d\)"):
        parse_duration(text)
    assert parse_duration("36500d") == 36500 * 86400


@pytest.mark.parametrize(("value", "seconds"), [(45, 45.0), (0.5, 0.5), (0, 0.0), ("0s", 0.0)])
def test_routing_timings_also_take_plain_seconds_and_zero(value: object, seconds: float) -> None:
    """A routing timing may be a number of seconds, and zero (``group_wait: 0s``)."""
    assert parse_duration_or_seconds(value) == seconds


@pytest.mark.parametrize("value", ["5x", "", "m5", "P", "PT", "P1DT", "1mo", -1, True, None, "1h and 30m"])
def test_routing_refused_forms(value: object) -> None:
    """Anything else, and a negative number, is refused with a sentence naming the value."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration_or_seconds(value)


def test_error_sentences_name_the_value_and_the_forms() -> None:
    """The messages users see: what was wrong, and what to write instead."""
    with pytest.raises(ValueError, match="not a duration") as bad:
        parse_duration("1mo")
    assert str(bad.value) == (
        "'1mo' is not a duration: write '30s', '10m', '1h', '7d', '2w' or ISO 8601 'PT10M' "
        "(months and years are not accepted)"
    )
    with pytest.raises(ValueError, match="zero") as zero:
        parse_duration("0s")
    assert str(zero.value) == "'0s': a duration must be longer than zero"
    with pytest.raises(ValueError, match="negative") as negative:
        parse_duration_or_seconds(-1)
    assert str(negative.value) == "-1: a duration must not be negative"


def test_format_duration_is_the_shortest_exact_form() -> None:
    """Seconds print back in the largest exact unit."""
    assert [format_duration(s) for s in (604800.0, 86400.0 * 3, 5400.0, 90.0, 0.5)] == [
        "1w",
        "3d",
        "90m",
        "90s",
        "0.5s",
    ]


def test_a_cooldown_may_be_zero_but_other_durations_may_not() -> None:
    """``parse_cooldown`` reads the same grammar and also zero (no cooldown); windows stay > 0."""
    assert [parse_cooldown(text) for text in ("0s", "PT0S", "0m", "10m")] == [0.0, 0.0, 0.0, 600.0]
    with pytest.raises(ValueError, match="not a duration"):
        parse_cooldown("0")
    with pytest.raises(ValueError, match="longer than zero"):
        parse_duration("PT0S")
