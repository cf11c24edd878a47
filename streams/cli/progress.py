"""Progress bars of the ``preempt`` commands: on stderr, and only when stderr is a terminal.

In a log file or a CI log a bar is line noise, so it is off there (tqdm's ``disable=None``). A
terminal that reports no size (a pseudo-terminal opened by ``script`` or a CI runner, whose size
was never set) is taken as 80 × 24: tqdm hid the bar there (0 rows) and drew it 0 columns wide.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm

FALLBACK_COLUMNS, FALLBACK_ROWS = 80, 24


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
