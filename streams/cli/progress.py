"""Progress bars of the ``preempt`` commands: on stderr, and only when stderr is a terminal.

In a log file or a CI log a bar is line noise, so it is off there (tqdm's ``disable=None``). A
terminal that reports no size (a pseudo-terminal opened by ``script`` or a CI runner, whose size
was never set) is taken as 80 × 24: tqdm hid the bar there (0 rows) and drew it 0 columns wide.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from schemas.jsonl import Line

FALLBACK_COLUMNS, FALLBACK_ROWS = 80, 24
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
"""A file smaller than this is read in a few seconds: no bar (it would only flicker)."""


def progress_bar(*, shown: bool = True, **options: Any) -> tqdm:
    """A tqdm bar on stderr; hidden when ``shown`` is false or stderr is not a terminal."""
    stream = sys.stderr
    columns = rows = None  # tqdm asks the terminal (and follows it when resized)
    if shown and stream.isatty():
        try:
            size = os.get_terminal_size(stream.fileno())
        except (OSError, ValueError):
            size = os.terminal_size((0, 0))
        columns = None if size.columns > 0 else FALLBACK_COLUMNS
        rows = None if size.lines > 0 else FALLBACK_ROWS
    return tqdm(file=stream, disable=None if shown else True, ncols=columns, nrows=rows, **options)


def file_progress(path: Path, lines: Iterator[Line], desc: str) -> Iterator[Line]:
    """The lines of ``path`` (``schemas.jsonl.read_file``), with a bar in bytes while a person watches: on a
    terminal, for a file of at least :data:`PROGRESS_MIN_BYTES` (backtest, train and evaluate read such files)."""
    size = path.stat().st_size
    if size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield from lines
        return
    with progress_bar(total=size, unit="B", unit_scale=True, desc=desc, leave=False) as bar:
        for line in lines:
            bar.update(line.size)
            yield line
