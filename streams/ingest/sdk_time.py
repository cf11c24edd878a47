"""The times the tracking SDKs write (``timestamp``, ``originalTimestamp``, ``sentAt``) → epoch seconds.

Segment's API reads its timestamps as ISO 8601 and, when one names no offset, as UTC ("All
timestamps are ISO-8601 date strings, and are in the UTC timezone"); ISO 8601 also writes offsets
as ``+hhmm`` or ``+hh``. Such times come from real senders: a JavaScript or Python caller that
formats a UTC time without its zone, .NET's ``ToString("o")`` of an unspecified ``DateTime``, Java's
``SimpleDateFormat`` ``Z`` (``+0000``). The tracking API reads them as Segment does; the event it
writes always holds the canonical RFC 3339 form (``schemas.rfc3339``), so nothing after ingest ever
sees another. Besides RFC 3339 itself::

    2026-11-23T06:00:00          no offset: UTC
    2026-11-23T07:00:00+0100     basic offset, also hour-only (+01)
    2026-11-23 06:00:00Z         a space for the T (RFC 3339 §5.6 allows it)

Anything else — a date alone, no seconds, an epoch number, a JavaScript ``Date`` string — is not a
date and time this reads, and rejects the call.
"""

from __future__ import annotations

import re

from schemas.rfc3339 import parse_rfc3339

_SDK_TIME = re.compile(
    r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d(?:\.\d{1,9})?)(?:([Zz])|([+-](?:[01]\d|2[0-3]))(?::?([0-5]\d))?)?", re.ASCII
)
SHAPE_ERROR = "must be an ISO 8601 date and time, e.g. 2026-11-23T06:00:00Z (no offset is read as UTC)"


def parse_sdk_time(text: str) -> float:
    """Epoch seconds of a tracking-API time (see the module docstring); ``ValueError`` for an end user."""
    match = _SDK_TIME.fullmatch(text)
    if match is None:
        raise ValueError(SHAPE_ERROR)
    date, time, zulu, hours, minutes = match.groups()
    offset = "Z" if zulu or hours is None else f"{hours}:{minutes or '00'}"
    # The one grammar and range check of Preempt's timestamps decides the rest.
    return parse_rfc3339(f"{date}T{time}{offset}")
