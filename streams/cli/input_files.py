"""A click callback for input-file options: ``-`` (stdin) or a pipe is copied to a temporary file first.

``preempt backtest --events <(zcat events.jsonl.gz)`` hands the command ``/dev/fd/63``, a pipe that
can be read once. Several commands read an input twice (``train`` reads the events once for its
vocabulary and once for its samples; ``evaluate`` looks at the first line of ``--outcomes`` to tell
an outcomes file from an events file; ``backtest`` and ``publish`` check that there is an event at
all before they start): from a pipe the second read lost what the first had buffered — whole lines,
or all of it, silently. A regular file is used as it is.

``-`` reads stdin (``zcat events.jsonl.gz | preempt backtest --events -``), as ``events validate``
and ``alerts preview`` do; one option of a command can take it. The copy is a :class:`NamedCopy`:
messages name it as the user did (``<stdin>``, ``/dev/fd/63``), not as the temporary file, which is
gone when the command ends ("/tmp/preempt-x1y2/stdin:17: missing_field", "gzip -dk /tmp/…").
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path, PosixPath
from typing import BinaryIO

import click

from schemas.error_text import unreadable

_STDIN_TAKEN = "preempt.stdin_taken_by"


class NamedCopy(PosixPath):
    """The path of a temporary copy that prints as what it is a copy of; the file system sees the copy."""

    shown: str | None = None

    def __str__(self) -> str:
        return self.shown or super().__str__()

    def __fspath__(self) -> str:
        return super().__str__()


def rereadable(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """``value`` when it is a regular file; else a temporary copy of what it holds, deleted when the command ends."""
    if value is None:
        return value
    from_stdin = str(value) == "-"
    if not from_stdin and value.is_file():
        return value
    if from_stdin:
        taken = ctx.meta.get(_STDIN_TAKEN)
        if taken is not None:
            raise click.BadParameter(f"stdin is already the input of {taken}; give a file here", ctx, param)
        ctx.meta[_STDIN_TAKEN] = "/".join(param.opts) or param.name
    folder = Path(tempfile.mkdtemp(prefix="preempt-"))
    ctx.call_on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
    copy = NamedCopy(folder / ("stdin" if from_stdin else value.name))
    copy.shown = "<stdin>" if from_stdin else str(value)
    try:
        with copy.open("wb") as out, _source(value, from_stdin) as source:
            shutil.copyfileobj(source, out, 1 << 20)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise click.BadParameter(f"cannot read {value}: {unreadable(exc)}", ctx, param) from None
    return copy


def _source(value: Path, from_stdin: bool) -> contextlib.AbstractContextManager[BinaryIO]:
    # stdin stays open: it is the process's, not this copy's
    return contextlib.nullcontext(click.get_binary_stream("stdin")) if from_stdin else value.open("rb")
