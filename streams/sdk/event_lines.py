"""Reporting a bad line of an events JSONL file (read with ``schemas.jsonl.read_lines``).

Used by ``preempt events validate``; ``preempt publish --file`` reports the same shape.
"""

from __future__ import annotations

from pathlib import Path

from schemas.bounds import visible_controls
from schemas.decoder import Rejection


def describe_rejection(path: Path | str, number: int, rejection: Rejection) -> str:
    """``events.jsonl:12: missing_field (account_id): account_id is required`` — one report line."""
    return describe(path, number, rejection.reason, rejection.field, rejection.detail)


def describe(path: Path | str, number: int, reason: str, field: str | None, detail: str) -> str:
    """One report line from its parts; control characters (a field name is the sender's) shown as ``\\xNN``."""
    named = f" ({field})" if field else ""
    return visible_controls(f"{path}:{number}: {reason}{named}: {detail}")
