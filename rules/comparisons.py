"""A computed value against a number the rule author wrote, without float rounding deciding it.

A rule says "reaches ``min``", "``factor`` × the previous window", "``drop_pct`` below the
baseline", "below ``below``": decimal numbers, compared with values the engine computes in binary
floating point. Rounding then lands a value that is exactly at the written limit a hair on the
wrong side of it: ten amounts of ``0.1`` sum to ``0.9999999999999999`` (under ``min: 1``), 80 %
below a baseline of 10 is ``1.9999999999999996`` (over a week of 2), and a score of 70 % of 50
points is ``34.99999999999999`` (below 35). So every such comparison gives the limit a relative
slack of :data:`TOLERANCE`, far below any difference a rule can mean, and "exactly at the limit"
counts as at it, as docs/rules.md promises for each kind.
"""

from __future__ import annotations

TOLERANCE = 1e-12
"""Relative slack of a limit: float64 rounding is about 1e-16 per operation, so thousands of summed terms stay
within it, and a whole-number count or sum only meets a limit it equals (below 1e12)."""


def lowered(limit: float) -> float:
    """``limit`` less its slack: ``value >= lowered(limit)`` reads "value reaches limit",
    ``value < lowered(limit)`` "value is below limit"."""
    return limit - abs(limit) * TOLERANCE


def raised(limit: float) -> float:
    """``limit`` plus its slack: ``value <= raised(limit)`` reads "value is at most limit"."""
    return limit + abs(limit) * TOLERANCE
