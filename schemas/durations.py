"""The one duration grammar of Preempt's config files (rule files, routing files, CLI options), also read
by alert text (``schemas.formatting.duration``).

Forms: ``250ms``, ``30s``, ``10m``, ``1h``, ``7d``, ``2w``, decimals (``1.5h``), compounds
(``1h30m``, ``1h 30m``), or ISO 8601 (``PT10M``, ``P7D``, ``P1DT12H``, ``P2W``; letters in any case). Months
and years are refused: their length depends on the calendar, and a window must have one length.
Parsed once at load into float seconds.

Two contexts differ only in what they allow around the grammar: a rule file's duration
(:data:`Duration`, :func:`parse_duration`) is a string and longer than zero (a ``cooldown`` may be
zero: :data:`Cooldown`); a routing timing
(:func:`parse_duration_or_seconds`) may also be a plain number of seconds, and zero.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)"
_SHORT = re.compile(rf"^(?:{_PART}\s*)+$")
_SHORT_PART = re.compile(_PART)
_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
FORMS = "'30s', '10m', '1h', '7d' or 'PT10M'"


def duration_seconds(value: str) -> float:
    """Seconds of a duration string in this grammar, any length (zero too); ``ValueError`` when it is not one.
    Also how alert text reads a duration (``schemas.formatting.duration``)."""
    text = value.strip()
    if _SHORT.match(text):
        return sum(float(number) * _UNITS[unit] for number, unit in _SHORT_PART.findall(text))
    upper = text.upper()
    iso = _ISO.match(upper)
    if not iso or upper in ("P", "PT") or upper.endswith("T"):
        raise ValueError(
            f"{value!r} is not a duration: write '30s', '10m', '1h', '7d', '2w' or ISO 8601 'PT10M' "
            "(months and years are not accepted)"
        )
    parts = iso.groupdict()
    return sum(float(parts[unit] or 0) * _UNITS[unit] for unit in ("w", "d", "h", "m", "s"))


MAX_DURATION = 36500 * 86400.0
"""100 years: longer than any window, deadline or cooldown means anything, and short enough that a
window's start (its end minus its length) is still a date (``99999999999999d`` reached before year 1)."""


def parse_duration(value: object) -> float:
    """Seconds of a rule file's duration string; raises ``ValueError`` with a sentence for its author."""
    seconds = parse_cooldown(value)
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be longer than zero")
    return seconds


def parse_cooldown(value: object) -> float:
    """Seconds of a rule's ``cooldown``: a duration string as :func:`parse_duration` reads it, or zero
    (``0s``, ``PT0S``: no cooldown, every finding alerts)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"a duration is a string like {FORMS}, not {value!r}")
    seconds = duration_seconds(value)
    if seconds > MAX_DURATION:
        raise ValueError(f"{value!r}: a duration must be at most 100 years (36500d)")
    return seconds


def parse_duration_or_seconds(value: object) -> float:
    """Seconds of a duration string or a plain number of seconds (zero allowed, negative refused)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"a duration is a string like {FORMS}, or a number of seconds, not {value!r}")
    if isinstance(value, str):
        return duration_seconds(value)
    if value < 0:
        raise ValueError(f"{value!r}: a duration must not be negative")
    return float(value)


def format_duration(seconds: float) -> str:
    """The shortest exact short form: ``604800.0`` → ``1w``, ``90.0`` → ``90s``."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type for rule files: accepts a duration string, holds seconds (> 0)."""
Cooldown = Annotated[float, BeforeValidator(parse_cooldown)]
"""A rule's ``cooldown``: a :data:`Duration` or zero (``0s``: none)."""
