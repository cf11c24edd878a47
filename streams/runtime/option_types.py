"""Click option types the ``preempt`` commands share.

click's ``FloatRange`` lets ``nan`` and ``inf`` through (every comparison with ``nan`` is false,
and ``inf`` is above any minimum), and a command then failed deep inside with a traceback
("cannot convert float NaN to integer") or silently used the nonsense value.

click's ranges said "'abc' is not a valid float range." and "is not in the range 0<=x<=65535": both say
what to give in words here.

click's ``Path(exists=True)`` says "File 'x' does not exist" for a file it may not look at (in a
folder without the x permission): the file is there, and the message sends the user looking for it.
"""

from __future__ import annotations

import math
import os
from typing import Any, cast

import click


class _WordedRange:
    """A range said in words — "give a whole number from 0 to 65535 (got '99999')", "[0 or more]" in the help — not
    click's "'abc' is not a valid float range." or "is not in the range 0<=x<=65535". Mixed into click's ranges."""

    noun = "number"

    def _describe_range(self) -> str:
        bounds = cast("click.IntRange | click.FloatRange", self)
        low = None if bounds.min is None else f"more than {bounds.min}" if bounds.min_open else f"{bounds.min} or more"
        high = None if bounds.max is None else f"less than {bounds.max}" if bounds.max_open else f"{bounds.max} or less"
        if low and high:
            closed = not (bounds.min_open or bounds.max_open)
            return f"from {bounds.min} to {bounds.max}" if closed else f"{low}, {high}"
        return low or high or "any"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The number, if it is one and within the range; otherwise ``self.fail`` (exit 2, one line)."""
        try:
            return super().convert(value, param, ctx)  # type: ignore[misc]  # click's range, after this mixin
        except click.BadParameter:
            cast("click.ParamType", self).fail(
                f"give a {self.noun}, {self._describe_range()} (got {value!r})", param, ctx
            )


class WholeNumberRange(_WordedRange, click.IntRange):
    """``click.IntRange`` said in words."""

    name = "integer"
    noun = "whole number"


class FiniteFloatRange(_WordedRange, click.FloatRange):
    """A ``FloatRange`` said in words that refuses ``nan`` and ``±inf`` with a usage error naming the option."""

    name = "number"

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
