"""Durations in routing files: ``30s``, ``5m``, ``4h``, ``7d``, ``1h30m``, ISO 8601 ``PT10M``, or plain seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_COMPOUND = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_ISO = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ``ValueError`` naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 30s, 5m, 4h, 7d or PT10M")
    text = value.strip()
    iso = _ISO.match(text.upper())
    if iso and text.upper() not in ("P", "PT"):
        d, h, m, s = (float(iso[k] or 0) for k in ("d", "h", "m", "s"))
        return d * 86400 + h * 3600 + m * 60 + s
    if text and _COMPOUND.sub("", text) == "":
        return sum(float(n) * _UNITS[u] for n, u in _COMPOUND.findall(text))
    raise ValueError(f"invalid duration {value!r}: expected e.g. 30s, 5m, 4h, 7d, 1h30m or PT10M")
