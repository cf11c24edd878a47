"""Reporting a bad line of an events JSONL file (read with ``schemas.jsonl.read_lines``).

Used by ``preempt events validate``; ``preempt publish --file`` reports the same shape.
"""

from __future__ import annotations

from pathlib import Path

from schemas.decoder import Rejection


def describe_rejection(path: Path | str, number: int, rejection: Rejection) -> str:
    """``events.jsonl:12: missing_field (account_id): account_id is required`` — one report line."""
    field = f" ({rejection.field})" if rejection.field else ""
    return f"{path}:{number}: {rejection.reason}{field}: {rejection.detail}"
