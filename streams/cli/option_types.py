"""Click option types the ``preempt`` commands share.

click's ``FloatRange`` lets ``nan`` and ``inf`` through (every comparison with ``nan`` is false,
and ``inf`` is above any minimum), and a command then failed deep inside with a traceback
("cannot convert float NaN to integer") or silently used the nonsense value.
"""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloatRange(click.FloatRange):
    """A ``FloatRange`` that refuses ``nan`` and ``±inf`` with a usage error naming the option."""

    name = "float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The number, if it is finite and within the range; otherwise ``self.fail`` (exit 2, one line)."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number
