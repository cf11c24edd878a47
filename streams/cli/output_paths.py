"""Checks for ``--output``-style options: refuse a file that cannot be written, or that is an input, up front.

A command that replays or generates for minutes must not find out at the end that its output
folder does not exist; the check runs while the options are parsed, before any work. An output
that names one of the command's inputs (``backtest --events ev.jsonl --output ev.jsonl``) would
replace the input with the result, and two outputs naming one file would leave only the last:
both are refused before anything is read or written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from streams.runtime.output_files import STDOUT_REFUSED, clobbering


def writable_output(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Return ``value`` when its folder exists and is writable; otherwise raise ``BadParameter``."""
    if value is None:
        return None
    if str(value) == "-":  # inputs take - for stdin; here it made a file named "-" in the current folder
        raise click.BadParameter(STDOUT_REFUSED, ctx, param)
    folder = value.parent if str(value.parent) else Path()
    try:
        if value.is_dir():
            raise click.BadParameter(f"{value} is a folder; give a file name inside it", ctx, param)
        if not folder.is_dir():
            raise click.BadParameter(f"folder {folder} does not exist; create it first (mkdir -p {folder})", ctx, param)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise click.BadParameter(f"folder {folder} is not writable", ctx, param)
        if value.exists() and not os.access(value, os.W_OK):  # found out only after the replay or the training
            raise click.BadParameter(
                f"{value} exists and is read-only; give another file name, or make it writable (chmod u+w {value})",
                ctx,
                param,
            )
    except OSError as exc:  # a folder on the way that this user may not enter (no x permission)
        raise click.BadParameter(
            f"cannot look at {value}: {exc.strerror or exc} (a folder on the way is closed to this user)", ctx, param
        ) from None
    return value


def refuse_overwriting_inputs(outputs: Mapping[str, Path | None], inputs: Mapping[str, Path | None]) -> None:
    """Raise ``UsageError`` when an output (option name → path) is an input or another output
    (``streams.runtime.output_files.clobbering``); called by a command before it reads or writes anything."""
    problem = clobbering(outputs, inputs)
    if problem is not None:
        raise click.UsageError(problem)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into one line, ``cannot write PATH: REASON``.

    The checks above cannot see a full disk or a file system that refuses the file (``/proc``,
    a read-only mount, a quota); the write finds out, and the user gets the reason, not a traceback.
    """
    try:
        yield
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


@contextmanager
def written_whole(paths: Sequence[Path]) -> Iterator[dict[Path, Path]]:
    """Write each of ``paths`` through a temporary file beside it (the same folder, so the same file system):
    the block gets ``{path: file to write}``; when it ends normally every temporary file is renamed over its path,
    and when it raises — Ctrl-C included — they are removed, so an interrupted command leaves no partial file
    and any earlier file of that name as it was.

    A path that is a link is written through to the file it names (the link stays). One that names something
    other than a regular file (``/dev/null``, ``/dev/full``, a named pipe) is written directly: a rename would
    replace the device or pipe itself with a regular file."""
    temporary: dict[Path, Path] = {}
    renamed: dict[Path, Path] = {}
    try:
        for path in paths:
            target = Path(os.path.realpath(path))
            if target.exists() and not target.is_file():
                temporary[path] = path
                continue
            # named before it is made, so a Ctrl-C between the two cannot leave it behind
            temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
            temporary[path] = temp
            renamed[temp] = target
            with writing(path):
                os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, as to open()
        yield temporary
        for temp, target in renamed.items():
            with writing(target):
                os.replace(temp, target)
    except BaseException:
        for temp in renamed:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
