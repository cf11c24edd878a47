"""Reading events from JSONL files, one event per line, with line numbers for error reports.

Used by ``preempt events validate`` and ``preempt publish --file``. Blank lines are skipped (and
counted), so a trailing newline or a spacer line is never reported as a bad event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from schemas.decoder import Rejection


@dataclass(frozen=True, slots=True)
class Line:
    """One non-blank line of a JSONL file: its 1-based number and its bytes without the newline."""

    number: int
    raw: bytes
    size: int  # bytes the line took in the file, newline included (for progress bars)


def read_lines(stream: BinaryIO, on_blank: Callable[[int], None] | None = None) -> Iterator[Line]:
    """The non-blank lines of ``stream``; ``on_blank(size)`` is called for each blank one."""
    for number, line in enumerate(stream, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            if on_blank is not None:
                on_blank(len(line))
            continue
        yield Line(number=number, raw=raw, size=len(line))


def describe_rejection(path: Path | str, number: int, rejection: Rejection) -> str:
    """``events.jsonl:12: missing_field (account_id): account_id is required`` — one report line."""
    field = f" ({rejection.field})" if rejection.field else ""
    return f"{path}:{number}: {rejection.reason}{field}: {rejection.detail}"
