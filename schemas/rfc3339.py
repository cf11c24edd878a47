"""RFC 3339 timestamps: one strict grammar for the whole of Preempt, cheap enough for the hot path.

The grammar every part of Preempt accepts for ``timestamp``::

    YYYY-MM-DD "T" hh:mm:ss [ "." 1*9DIGIT ] ( "Z" / ("+" / "-") hh:mm )

``T`` and ``Z`` may be lower case (RFC 3339 §5.6 allows it). An offset is required: a timestamp
without one is ambiguous, so it is rejected. Fractions beyond microseconds are truncated. The
instant must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z. Leap seconds
(``:60``) are rejected because neither Python's datetime nor epoch seconds can hold them.

``UsageEvent`` (pydantic) and the decoder both call :func:`parse_rfc3339_datetime`, so they agree
on every input by construction. A compiled regex checks the grammar (``datetime.fromisoformat``
alone is far looser: week dates, basic format, any separator); ``fromisoformat`` then does the
calendar checks in C, which is cheaper than doing them in Python.
"""

from __future__ import annotations

import re
from datetime import datetime

MIN_EPOCH = 0.0
MAX_EPOCH = 253402300799.999999  # 9999-12-31T23:59:59.999999Z
# The offset's hour is 00-23 and its minute 00-59 (RFC 3339's time-numoffset): fromisoformat takes
# "+01:99" as 2 h 39 min, which would move the event silently.
_GRAMMAR = re.compile(
    r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)", re.ASCII
)
# The common upper-case subset, for hot loops that inline the fast path (see schemas.decoder)
# and fall back to parse_rfc3339 for anything else.
UPPER_CASE_GRAMMAR = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)", re.ASCII
)
_SHAPE_ERROR = "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-23T06:00:00Z"


def parse_rfc3339_datetime(text: str) -> datetime:
    """The aware datetime (in its own offset) of an RFC 3339 timestamp; ``ValueError`` otherwise.

    The message of the ``ValueError`` is fit for an end user (it ends up in dead-letter headers).
    """
    if _GRAMMAR.fullmatch(text) is None:
        raise ValueError(_SHAPE_ERROR)
    if text[10] == "t" or text[-1] == "z":
        text = text.upper()
    try:
        value = datetime.fromisoformat(text)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"is not a valid date and time: {exc}") from None
    epoch = value.timestamp()
    if not MIN_EPOCH <= epoch <= MAX_EPOCH:
        raise ValueError("must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    return value


def parse_rfc3339(text: str) -> float:
    """Epoch seconds (UTC) of an RFC 3339 timestamp; ``ValueError`` when it is not one."""
    if _GRAMMAR.fullmatch(text) is None:
        raise ValueError(_SHAPE_ERROR)
    if text[10] == "t" or text[-1] == "z":
        text = text.upper()
    try:
        epoch = datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"is not a valid date and time: {exc}") from None
    if not MIN_EPOCH <= epoch <= MAX_EPOCH:
        raise ValueError("must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    return epoch
