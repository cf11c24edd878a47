"""A click callback for input-file options: a pipe is copied to a temporary file first.

``preempt backtest --events <(zcat events.jsonl.gz)`` hands the command ``/dev/fd/63``, a pipe that
can be read once. Several commands read an input twice (``train`` reads the events once for its
vocabulary and once for its samples; ``evaluate`` looks at the first line of ``--outcomes`` to tell
an outcomes file from an events file; ``backtest`` and ``publish`` check that there is an event at
all before they start): from a pipe the second read lost what the first had buffered — whole lines,
or all of it, silently. A regular file is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import click


def rereadable(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """``value`` when it is a regular file; else a temporary copy of what it holds, deleted when the command ends."""
    if value is None or value.is_file():
        return value
    handle, name = tempfile.mkstemp(prefix="preempt-", suffix=f"-{value.name}")
    copy = Path(name)
    ctx.call_on_close(lambda: copy.unlink(missing_ok=True))
    try:
        with os.fdopen(handle, "wb") as out, value.open("rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)
    except OSError as exc:
        with contextlib.suppress(OSError):
            copy.unlink()
        raise click.BadParameter(f"cannot read {value}: {exc.strerror or exc}", ctx, param) from None
    return copy
