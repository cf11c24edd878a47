"""Durations in rule files: ``30s``, ``10m``, ``1h``, ``7d``, ``2w`` or ISO 8601 (``PT10M``, ``P7D``).

Parsed once at load into float seconds. Months and years are refused: their length depends on
the calendar, and a window must have one length.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: object) -> float:
    """Seconds of a duration string; raises ``ValueError`` with a sentence for rule authors."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"a duration is a string like '30s', '10m', '1h', '7d' or 'PT10M', not {value!r}")
    short = _SHORT.match(value)
    if short:
        seconds = float(short.group(1)) * _UNITS[short.group(2)]
    else:
        iso = _ISO.match(value.strip().upper())
        if not iso or value.strip().upper() in ("P", "PT") or value.strip().upper().endswith("T"):
            raise ValueError(
                f"{value!r} is not a duration: write '30s', '10m', '1h', '7d', '2w' or ISO 8601 'PT10M' "
                "(months and years are not accepted)"
            )
        parts = iso.groupdict()
        seconds = sum(float(parts[unit] or 0) * _UNITS[unit] for unit in ("w", "d", "h", "m", "s"))
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be longer than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact short form: ``604800.0`` → ``7d``, ``90.0`` → ``90s``."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: accepts a duration string, holds seconds."""
