"""schemas/formatting.py: numbers, money, durations, times and people as a CSM reads them."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.durations import parse_duration
from schemas.formatting import (
    account_facts,
    aside,
    date_text,
    datetime_text,
    duration,
    evidence_sentence,
    money,
    mrr,
    number,
    percent,
    person,
    points,
    seconds_of,
)
from streams.runtime import metrics


@pytest.mark.parametrize(
    ("value", "text"),
    [(6.0, "6"), (1170.0, "1,170"), (33.67, "33.7"), (0.25, "0.2"), (-3.0, "-3"), ("abc", "abc"), (None, "")],
)
def test_number(value, text):
    """Whole numbers lose their .0, large ones get separators, text passes through, None is empty."""
    assert number(value) == text


def test_money_and_mrr():
    """Money has a currency and separators; a missing MRR reads as unknown, never as $None."""
    assert money(1170.0) == "$1,170"
    assert money(99.5) == "$99.50"
    assert money(1200, "EUR") == "€1,200"
    assert money(1200, "CHF") == "1,200 CHF"
    assert money(None) == "unknown"
    assert mrr(1040.0) == "$1,040 MRR"
    assert mrr(None) == "MRR unknown"


@pytest.mark.parametrize(
    ("value", "as_number", "as_money"),
    [
        (1e308, "1e+308", "$1e+308"),
        (-1e20, "-1e+20", "$-1e+20"),
        (2.0**53, "9,007,199,254,740,992", "$9,007,199,254,740,992"),
        (1e15 + 0.5, "1,000,000,000,000,000.5", "$1,000,000,000,000,000.50"),
    ],
)
def test_a_whole_number_beyond_2_to_the_53_prints_as_a_float(value, as_number, as_money):
    """Beyond 2**53 a whole float prints as the float (``1e+308``), not as hundreds of digits; up to it
    as an integer with separators — as rule templates print a bare value."""
    assert (number(value), money(value)) == (as_number, as_money)


def test_percent():
    """Ratios become percentages without a trailing .0."""
    assert percent(0.3) == "30%"
    assert percent(0.3347) == "33.5%"
    assert percent(35, ratio=False) == "35%"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (604800.0, "7 days"),
        (1209600, "14 days"),
        (187200.0, "2 days 4 hours"),
        ("1w", "7 days"),
        ("36h", "1 day 12 hours"),
        (3600, "1 hour"),
        (45, "45 seconds"),
        (90061, "1 day 1 hour"),
        (86400 * 60, "8 weeks 4 days"),
    ],
)
def test_duration_in_words(value, text):
    """Durations read in words ("7 days"), never as seconds (604800.0)."""
    assert duration(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1h30m", "1 hour 30 minutes"),
        ("PT10M", "10 minutes"),
        ("P1DT12H", "1 day 12 hours"),
        ("1.5h", "1 hour 30 minutes"),
    ],
)
def test_duration_reads_every_form_of_the_config_grammar(value, text):
    """A duration written as in a rule or routing file (compound, ISO 8601) reads in words too: alert text and
    config files share one duration grammar (``"1h30m"`` used to be shown as typed)."""
    assert duration(value) == text
    assert seconds_of(value) == parse_duration(value)


def test_a_text_that_is_no_duration_is_shown_as_it_is():
    """Something that is neither a number nor a duration is shown as written, not guessed at."""
    assert seconds_of("soon") is None
    assert duration("soon") == "soon"


def test_times_in_the_owner_timezone():
    """Times show in the account's timezone, with its abbreviation; dates are the owner's calendar day."""
    assert datetime_text("2026-01-02T13:20:33.818Z", "America/New_York") == "Fri 2 Jan 2026, 08:20 EST"
    assert datetime_text("2026-01-02T13:20:33.818Z", None) == "Fri 2 Jan 2026, 13:20 UTC"
    assert datetime_text(1767360033818, "Europe/Paris") == "Fri 2 Jan 2026, 14:20 CET"  # epoch milliseconds
    assert date_text("2026-01-10T00:00:00Z", "America/Los_Angeles") == "Fri 9 Jan 2026"


def test_zones_without_an_abbreviation_and_dst_changes_read_as_offsets_from_utc():
    """A zone that has no abbreviation shows its offset as "UTC+05:45" (it showed "+0545", "+11", "-03");
    the day after a daylight-saving change shows the new offset (Lord Howe moves by half an hour)."""
    assert datetime_text("2026-03-08T06:30:00Z", "Asia/Kathmandu") == "Sun 8 Mar 2026, 12:15 UTC+05:45"
    assert datetime_text("2026-03-08T06:30:00Z", "America/Sao_Paulo") == "Sun 8 Mar 2026, 03:30 UTC-03"
    assert datetime_text("2026-04-04T12:00:00Z", "Australia/Lord_Howe") == "Sat 4 Apr 2026, 23:00 UTC+11"
    assert datetime_text("2026-04-05T12:00:00Z", "Australia/Lord_Howe") == "Sun 5 Apr 2026, 22:30 UTC+10:30"
    # around the US change (2026-03-08 02:00 EST → 03:00 EDT) the abbreviation follows the instant
    assert datetime_text("2026-03-08T06:59:00Z", "America/New_York") == "Sun 8 Mar 2026, 01:59 EST"
    assert datetime_text("2026-03-08T07:00:00Z", "America/New_York") == "Sun 8 Mar 2026, 03:00 EDT"


@pytest.mark.parametrize("value", [date(2026, 12, 1), "2026-12-01"], ids=["date", "text"])
@pytest.mark.parametrize("timezone", ["America/Los_Angeles", "Asia/Tokyo", None])
def test_a_calendar_date_is_that_day_in_every_timezone(value, timezone):
    """An account's renewal_date (a calendar date, no time) is the day written: read as UTC midnight and moved to
    the owner's zone it showed the day before west of UTC ("Mon 30 Nov 2026" for a 1 December renewal in Los
    Angeles), and as a date object it was printed raw ("2026-12-01")."""
    assert date_text(value, timezone) == "Tue 1 Dec 2026"
    assert datetime_text(value, timezone) == "Tue 1 Dec 2026"


@pytest.mark.parametrize(
    ("value", "timezone", "as_datetime", "as_date"),
    [
        ("9999-12-31T23:59:59Z", "Asia/Tokyo", "Fri 31 Dec 9999, 23:59 UTC", "Fri 31 Dec 9999"),
        ("0001-01-01T00:00:00Z", "America/New_York", "Mon 1 Jan 1, 00:00 UTC", "Mon 1 Jan 1"),
    ],
)
def test_a_date_at_the_end_of_the_calendar_is_shown_in_utc_not_an_overflow(value, timezone, as_datetime, as_date):
    """A "never" sentinel (9999-12-31, as CRMs and billing systems write a contract without an end) has no local
    time in a zone ahead of UTC: the filter raised OverflowError, and the whole title or summary template fell
    back to its raw source ("Contract ends {{ evidence.properties.until|datetime(account.timezone) }}")."""
    assert datetime_text(value, timezone) == as_datetime
    assert date_text(value, timezone) == as_date


def test_a_score_down_one_point_is_singular():
    """A score that fell by exactly one point reads "down 1 point" (it read "down 1 points")."""
    evidence = {"value": 39.0, "baseline": 40.0, "reason": "drop", "components": {"logins": 39.0}}
    assert evidence_sentence("score", evidence).startswith("engagement score 39/100, down 1 point from 40")
    evidence = {**evidence, "value": 30.0}
    assert evidence_sentence("score", evidence).startswith("engagement score 30/100, down 10 points from 40")


def test_a_sequence_whose_steps_share_an_instant_says_so():
    """Steps stamped at the same instant happened "at the same time" (it read "within 0 seconds")."""
    evidence = {"value": 2, "threshold": 3600.0, "elapsed_seconds": 0.0}
    assert evidence_sentence("sequence", evidence) == "both steps happened in order at the same time (limit 1 hour)"
    evidence = {**evidence, "elapsed_seconds": 60.0}
    assert evidence_sentence("sequence", evidence) == "both steps happened in order within 1 minute (limit 1 hour)"


def test_event_text_in_the_evidence_sentence_stays_on_one_line():
    """An ``any`` alert's event properties with line breaks (an end user's comment) read on one line: they broke
    the console's and the email's "why" line and started new lines in Slack."""
    evidence = {"value": "CSAT\nAnswered", "properties": {"rating": 1, "comment": "bad\n> quote\r\n\n  # heading"}}
    assert evidence_sentence("any", evidence) == "CSAT Answered: rating 1, comment bad > quote # heading"


def test_invalid_timezone_falls_back_to_utc_and_is_counted():
    """A timezone that is not an IANA zone shows UTC, is counted once per name, and never raises."""
    before = metrics.INVALID_TIMEZONES._value.get()
    assert datetime_text("2026-01-02T13:20:00Z", "Mars/Olympus_Mons") == "Fri 2 Jan 2026, 13:20 UTC"
    assert datetime_text("2026-01-03T13:20:00Z", "Mars/Olympus_Mons") == "Sat 3 Jan 2026, 13:20 UTC"
    assert datetime_text("2026-01-02T13:20:00Z", "../../etc/passwd") == "Fri 2 Jan 2026, 13:20 UTC"
    assert metrics.INVALID_TIMEZONES._value.get() - before == 2


def test_people_and_optional_details():
    """People by name with their role; the owner's fallback when nobody is known; optional parts vanish."""
    assert person({"name": "Dana Whitfield", "email": "d@x"}, "account owner") == "Dana Whitfield (account owner)"
    assert person({"email": "d@example.com"}) == "d@example.com"
    assert person({"name": None}) == "the account's owner"
    assert person(None, fallback="The account's owner") == "The account's owner"
    assert aside("https://crm/x") == " (https://crm/x)"
    assert aside(None) == ""
    assert account_facts({"tier": "growth", "plan": None, "mrr": 1040.0}) == "growth, $1,040 MRR"
    assert account_facts({"tier": None, "mrr": None}) == ""


def test_score_points_weakest_first_no_dict_repr():
    """Score components read as points out of 100, weakest first, with readable names."""
    text = points({"active_users": 33.3, "feature_breadth": 0.0, "api_errors": 100.0, "nps": 60.0})
    assert text == "feature breadth 0/100, active users 33/100, NPS 60/100, API errors 100/100"


@pytest.mark.parametrize(
    ("kind", "evidence", "sentence"),
    [
        (
            "threshold",
            {"measure": "count", "value": 6.0, "threshold": 6.0},
            "6 matching events, at or above the threshold of 6",
        ),
        (
            "ratio",
            {"value": 0.3, "threshold": 0.25, "numerator": 12, "denominator": 40},
            "12 of 40 events matched (30%), at or above the 25% limit",
        ),
        (  # numerator and denominator are counted independently: refunds per order can pass 100%
            "ratio",
            {"value": 3.0, "threshold": 0.5, "numerator": 3, "denominator": 1},
            "3 matching events against 1 counted event (300%), at or above the 50% limit",
        ),
        (
            "spike",
            {"measure": "count", "value": 60.0, "threshold": 30.0, "baseline": 10.0, "factor": 6.0},
            "60 matching events against 10 in the window before, 6× as many (alert at 30)",
        ),
        (  # a sum whose previous window was negative: no "-2× as many" (alerts written before spike.py's fix)
            "spike",
            {"measure": "sum:properties.amount", "value": 10.0, "threshold": -10.0, "baseline": -5.0, "factor": -2.0},
            "total amount 10 against -5 in the window before",
        ),
        (
            "drop",
            {"measure": "distinct:user_id", "value": 2.0, "threshold": 3.0, "baseline": 6.0, "drop_pct": 66.7},
            "2 users against a usual 6, 66.7% lower (alert at 3 or fewer)",
        ),
        (
            "inactivity",
            {"value": "1w", "threshold": 604800.0, "last_seen": "2026-01-02T13:20:33.818Z"},
            "no activity for 7 days; last seen Fri 2 Jan 2026, 08:20 EST",
        ),
        (
            "absence",
            {"value": "3d", "threshold": 259200.0, "started_at": "2026-01-02T14:00:00Z"},
            "started Fri 2 Jan 2026, 09:00 EST; the expected follow-up did not happen within 3 days",
        ),
        (
            "absence",
            {
                "value": "3d",
                "threshold": 259200.0,
                "started_at": "2026-01-02T14:00:00Z",
                "expected": ["Invoice Paid", "Payment Method Updated"],
                "expected_filtered": False,
                "start": ["Invoice Payment Failed"],
            },
            "no 'Invoice Paid' or 'Payment Method Updated' within 3 days of 'Invoice Payment Failed'"
            " (Fri 2 Jan 2026, 09:00 EST)",
        ),
        (
            "absence",
            {
                "value": "14d",
                "threshold": 1209600.0,
                "started_at": "2026-01-02T14:00:00Z",
                "expected": ["Feature Used"],
                "expected_filtered": True,
                "start": ["Onboarding Started", "Trial Started"],
            },
            "no matching 'Feature Used' within 14 days of 'Onboarding Started' or 'Trial Started'"
            " (Fri 2 Jan 2026, 09:00 EST)",
        ),
        (
            "absence",
            {"threshold": 604800.0, "expected": ["A", "B", "C", "D", "E"], "start": None},
            "no 'A', 'B' or 3 other events within 7 days of the start",
        ),
        (
            "absence",
            {"threshold": 604800.0, "expected": None, "expected_filtered": True, "start": ["Signed Up"]},
            "no matching event within 7 days of 'Signed Up'",
        ),
        (
            "sequence",
            {"value": 2, "threshold": 604800.0, "elapsed_seconds": 187200.0},
            "both steps happened in order within 2 days 4 hours (limit 7 days)",
        ),
        (
            "any",
            {"value": "NPS Submitted", "properties": {"score": 4, "channel": "email"}},
            "NPS Submitted: score 4, channel email",
        ),
        (
            "score",
            {"value": 33.7, "threshold": 40.0, "reason": "below", "components": {"depth": 0.0, "nps": 60.0}},
            "engagement score 33.7/100, below the floor of 40 (weakest first: depth 0/100, NPS 60/100)",
        ),
        (
            "score",
            {"value": 41.0, "threshold": 40.0, "baseline": 85.0, "reason": "drop"},
            "engagement score 41/100, down 44 points from 85",
        ),
        (
            "composite",
            {"value": 2, "threshold": 2, "rules": ["weekly-active-users-drop", "nps-detractor"]},
            "2 of 2 related rules fired together: weekly-active-users-drop, nps-detractor",
        ),
        (  # the composite kind's own evidence: each rule with the time it fired, named in that order
            "composite",
            {
                "value": 2,
                "threshold": 2,
                "rules": {"nps-detractor": "2026-11-23T06:00:00.000Z", "usage-drop": "2026-11-20T00:00:00.000Z"},
            },
            "2 of 2 related rules fired together: usage-drop, nps-detractor",
        ),
        (  # the learned rule's evidence: a probability and the top contributing features as sentences
            "risk",
            {
                "value": 0.2501,
                "threshold": 0.1,
                "reasons": ["active users down 62% against the last 8 weeks", "no 'Report Exported' in 28 days"],
            },
            "churn risk 25%, at or above the 10% threshold: active users down 62% against the last 8 weeks; "
            "no 'Report Exported' in 28 days",
        ),
    ],
)
def test_evidence_sentence_per_kind(kind, evidence, sentence):
    """Every kind's evidence reads as a sentence, with times in the owner's timezone and no raw seconds."""
    assert evidence_sentence(kind, evidence, timezone="America/New_York") == sentence


_COUNTED = {"events": ["API Error"], "events_filtered": False, "window_seconds": 604800.0}


@pytest.mark.parametrize(
    ("kind", "evidence", "sentence"),
    [
        (
            "threshold",
            {"measure": "count", "value": 12.0, "threshold": 10.0, **_COUNTED},
            "12 'API Error' events in 7 days, at or above the threshold of 10",
        ),
        (  # one event; a where narrows the names
            "threshold",
            {"measure": "count", "value": 1, "threshold": 1, **_COUNTED, "events_filtered": True},
            "1 matching 'API Error' event in 7 days, at or above the threshold of 1",
        ),
        (
            "threshold",
            {"measure": "distinct:user_id", "value": 3, "threshold": 3, **_COUNTED, "events": ["Login", "SSO Login"]},
            "3 users from 'Login' or 'SSO Login' events in 7 days, at or above the threshold of 3",
        ),
        (  # a rule over every event: no names, the window still said
            "threshold",
            {"measure": "sum:properties.amount", "value": 5000, "threshold": 1000, **_COUNTED, "events": None},
            "total amount 5,000 in 7 days, at or above the threshold of 1,000",
        ),
        (  # a ratio of one event name, narrowed by the match's where
            "ratio",
            {"value": 0.3, "threshold": 0.25, "numerator": 12, "denominator": 40, **_COUNTED, "events_filtered": True}
            | {"events": ["API Request"], "denominator_events": ["API Request"], "window_seconds": 3600.0},
            "12 of 40 'API Request' events matched (30%) in 1 hour, at or above the 25% limit",
        ),
        (  # different events counted independently
            "ratio",
            {"value": 0.075, "threshold": 0.05, "numerator": 3, "denominator": 40, **_COUNTED}
            | {"events": ["Refund Issued"], "denominator_events": ["Order Placed"]},
            "3 'Refund Issued' events against 40 'Order Placed' events (7.5%) in 7 days, at or above the 5% limit",
        ),
        (  # a denominator of every event
            "ratio",
            {
                "value": 0.3,
                "threshold": 0.25,
                "numerator": 12,
                "denominator": 40,
                **_COUNTED,
                "denominator_events": None,
            },
            "12 'API Error' events against 40 events (30%) in 7 days, at or above the 25% limit",
        ),
        (
            "spike",
            {"measure": "count", "value": 60, "threshold": 30, "baseline": 10, "factor": 6.0, **_COUNTED},
            "60 'API Error' events in 7 days against 10 in the window before, 6× as many (alert at 30)",
        ),
        (
            "drop",
            {"measure": "count", "value": 2, "threshold": 3, "baseline": 6, "drop_pct": 66.7, **_COUNTED},
            "2 'API Error' events in 7 days against a usual 6, 66.7% lower (alert at 3 or fewer)",
        ),
    ],
)
def test_measured_kinds_name_what_they_counted_and_over_what(kind, evidence, sentence):
    """A threshold, ratio, spike or drop rule without a summary says which events it counted and over which window
    (it said "12 matching events, at or above the threshold of 10": matching what, over how long?)."""
    assert evidence_sentence(kind, evidence) == sentence


def test_rule_summary_wins_over_the_generic_sentence():
    """The sentence a rule's summary template wrote is used as it is."""
    evidence = {"value": 6.0, "threshold": 6.0, "summary": "6 of 20 seats in use (30%), below the 35% floor"}
    assert evidence_sentence("threshold", evidence) == "6 of 20 seats in use (30%), below the 35% floor"


def test_odd_evidence_never_raises():
    """Missing or odd values give a readable sentence, never an exception or None."""
    for kind in (
        "threshold",
        "ratio",
        "spike",
        "drop",
        "inactivity",
        "absence",
        "sequence",
        "any",
        "score",
        "composite",
        "x",
    ):
        text = evidence_sentence(kind, {"value": None, "threshold": "abc", "components": "n/a", "rules": 3})
        assert isinstance(text, str)
        assert "None" not in text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_kinds = st.sampled_from(
    ["threshold", "ratio", "spike", "drop", "inactivity", "absence", "sequence", "any", "score", "composite", ""]
)
_keys = st.sampled_from(
    [
        "value",
        "threshold",
        "baseline",
        "measure",
        "numerator",
        "denominator",
        "factor",
        "drop_pct",
        "last_seen",
        "started_at",
        "elapsed_seconds",
        "properties",
        "components",
        "reason",
        "rules",
    ]
)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@given(kind=_kinds, evidence=st.dictionaries(_keys, _json, max_size=8), zone=st.none() | st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_evidence_sentence_never_raises_or_says_none(kind, evidence, zone):
    """Whatever a producer put in the evidence, the sentence is text and never the word None."""
    evidence.pop("summary", None)
    text = evidence_sentence(kind, evidence, timezone=zone)
    assert isinstance(text, str)
    assert "None" not in text or any("None" in t for t in _strings(evidence))  # unless the data itself says it


@given(value=_json)
@settings(max_examples=300, deadline=None)
def test_filters_never_raise(value):
    """Every formatting helper takes any JSON value and returns text."""
    for fn in (number, money, mrr, percent, duration, datetime_text, date_text, person, points, aside, account_facts):
        assert isinstance(fn(value), str)


_KINDS = ("threshold", "ratio", "spike", "drop", "inactivity", "absence", "sequence", "any", "score", "composite")


@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize(
    "evidence",
    [{}, {"measure": "sum:amount"}, {"measure": "distinct:user_id"}, {"threshold": 10}, {"value": 12}],
    ids=["empty", "sum-measure", "distinct-measure", "threshold-only", "value-only"],
)
def test_evidence_without_numbers_reads_as_a_sentence_without_gaps(kind, evidence):
    """An alert whose producer left out the evidence's numbers reads as words, not a sentence with holes."""
    sentence = evidence_sentence(kind, evidence)
    assert sentence == sentence.strip()
    assert sentence
    for hole in ("  ", " ,", "()", "( ", " /100", "of ,", "the  ", "at )", "within ", "for ", "all  "):
        if hole in ("within ", "for "):
            assert not sentence.endswith(hole.strip()), sentence
            continue
        assert hole not in sentence, (hole, sentence)
    assert not sentence.endswith((" of", " the", " at", " a usual"))


@pytest.mark.timeout(10)
def test_number_keeps_at_most_twenty_decimals() -> None:
    """|number(999999999) formatted a 1-GB string (then stripped its zeros); a float has ~17 digits."""
    assert number(1.5, 999_999_999) == "1.5"
    assert percent(0.5, 999_999_999) == "50%"
    assert number(1234.5, -999_999_999) == "0"


@pytest.mark.parametrize(
    ("measure", "expected"),
    [
        ("sum:properties.amount", "total amount 1,100,000, at or above the threshold of 1,000,000"),
        ("sum:context.order_value", "total order value 1,100,000, at or above the threshold of 1,000,000"),
        ("sum:properties.invoice.amount", "total invoice amount 1,100,000, at or above the threshold of 1,000,000"),
        ("distinct:context.app", "1,100,000 distinct values of app, at or above the threshold of 1,000,000"),
    ],
)
def test_measure_over_a_path_is_said_in_words(measure, expected):
    """A ``sum:``/``distinct:`` measure names the property in words, never its field path."""
    evidence = {"measure": measure, "value": 1_100_000.0, "threshold": 1_000_000.0}
    assert evidence_sentence("threshold", evidence) == expected


@pytest.mark.parametrize(
    ("measure", "value", "expected"),
    [
        ("distinct:user_id", 1.0, "1 user against a usual 4"),
        ("distinct:user_id", 2.0, "2 users against a usual 4"),
        ("distinct:properties.feature", 1.0, "1 distinct value of feature against a usual 4"),
        ("distinct:properties.feature", 3.0, "3 distinct values of feature against a usual 4"),
        ("count", 1.0, "1 matching event against a usual 4"),
    ],
)
def test_a_count_of_one_is_singular(measure, value, expected):
    """One active user is "1 user", not "1 users"; a distinct count names what it counts in words."""
    evidence = {"measure": measure, "value": value, "baseline": 4.0}
    assert evidence_sentence("drop", evidence) == expected


def test_an_event_property_without_a_value_is_left_out():
    """A null or empty property is not shown as a bare name ("plan"): only properties with a value are said."""
    evidence = {"value": "Plan Changed", "properties": {"plan": None, "from": "", "to": "starter", "seats": 0}}
    assert evidence_sentence("any", evidence) == "Plan Changed: to starter, seats 0"


@pytest.mark.parametrize(
    ("value", "digits", "shown"),
    [
        (0.00001, 1, "0.00001"),
        (-0.000012345, 1, "-0.000012"),
        (0.04, 1, "0.04"),
        (0.3, 0, "0"),  # rounding asked for by the caller stays
        (0.0, 1, "0"),
        (0.05, 1, "0.1"),
    ],
)
def test_a_small_number_is_not_shown_as_zero(value, digits, shown):
    """A value that rounds to 0 keeps two significant digits: a min_ratio of 0.00001 read "the 0% limit"."""
    assert number(value, digits) == shown


def test_a_tiny_ratio_limit_and_a_tiny_property_read_as_their_value():
    """The ratio sentence names its limit as written, and an event's tiny number is not 0."""
    ratio = {"measure": "ratio", "value": 0.5, "threshold": 0.00001, "numerator": 1.0, "denominator": 2.0}
    assert evidence_sentence("ratio", ratio).endswith("at or above the 0.001% limit")
    assert percent(0.00001) == "0.001%"
    event = {"measure": "event", "value": "Survey Answered", "properties": {"ratio": 1e-05}}
    assert evidence_sentence("any", event) == "Survey Answered: ratio 0.00001"


def test_an_object_leaves_out_its_empty_values():
    """``{"nps": null, "score": 6}`` reads "score 6", not "NPS, score 6" (a bare key reads as a gap)."""
    from schemas.formatting import text

    assert text({"nps": None, "score": 6, "note": ""}) == "score 6"
    assert text({"tags": ["slow", None, "price"]}) == "tags slow, price"


def test_a_limit_is_not_rounded_past_what_fires():
    """A drop to a limit of 1.25 (a usual 2.5, 50%) said "alert at 1.2 or fewer"; a min of 2.75 "the threshold
    of 2.8" about a total it showed as 2.8, though 2.75 is at it."""
    drop = {"measure": "distinct:user_id", "value": 0.0, "threshold": 1.25, "baseline": 2.5, "drop_pct": 100.0}
    assert evidence_sentence("drop", drop) == "0 users against a usual 2.5, 100% lower (alert at 1.25 or fewer)"
    total = {"measure": "sum:properties.hours", "value": 2.75, "threshold": 2.75}
    assert evidence_sentence("threshold", total) == "total hours 2.75, at or above the threshold of 2.75"
