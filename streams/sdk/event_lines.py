"""Reporting a bad line of an events JSONL file (read with ``schemas.jsonl.read_lines``).

Used by ``preempt events validate``; ``preempt publish --file`` reports the same shape.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from schemas.account import Account
from schemas.bounds import visible_controls
from schemas.decoder import Rejection

ACCOUNTS_FILE = (
    "; it holds account records, not events: give it to `preempt backtest --accounts` "
    "(their schema: `preempt events schema --account`)"
)


def describe_rejection(path: Path | str, number: int, rejection: Rejection) -> str:
    """``events.jsonl:12: missing_field (account_id): account_id is required`` — one report line."""
    return describe(path, number, rejection.reason, rejection.field, rejection.detail)


def describe(path: Path | str, number: int, reason: str, field: str | None, detail: str) -> str:
    """One report line from its parts; control characters (a field name is the sender's) shown as ``\\xNN``."""
    named = f" ({field})" if field else ""
    return visible_controls(f"{path}:{number}: {reason}{named}: {detail}")


def accounts_file_note(first_line: bytes | None) -> str:
    """``ACCOUNTS_FILE`` when a file none of whose lines is an event begins with an account record (more than a
    bare ``account_id``): the file of the wrong kind, named once after its per-line reasons; else ``""``."""
    if first_line is None:
        return ""
    try:
        account = Account.model_validate_json(first_line)
    except ValidationError:
        return ""
    return ACCOUNTS_FILE if account.model_fields_set - {"account_id"} else ""
