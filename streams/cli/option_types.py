"""Click option types the ``preempt`` commands share.

click's ``FloatRange`` lets ``nan`` and ``inf`` through (every comparison with ``nan`` is false,
and ``inf`` is above any minimum), and a command then failed deep inside with a traceback
("cannot convert float NaN to integer") or silently used the nonsense value.

click's ``Path(exists=True)`` says "File 'x' does not exist" for a file it may not look at (in a
folder without the x permission): the file is there, and the message sends the user looking for it.
"""

from __future__ import annotations

import math
import os
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


class InputPath(click.Path):
    """A ``click.Path`` for input files that tells "not there" from "not allowed to look"."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The path, as ``click.Path`` converts it; a path that cannot be looked at fails saying so."""
        if self.exists and not (self.allow_dash and str(value) == "-"):
            try:
                os.stat(value)
            except PermissionError as exc:
                self.fail(
                    f"cannot look at {os.fsdecode(value)}: {exc.strerror} (a folder on the way is closed to this user)",
                    param,
                    ctx,
                )
            except (OSError, ValueError):
                pass  # missing and the like: click's own message
        return super().convert(value, param, ctx)
