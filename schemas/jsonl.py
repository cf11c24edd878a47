"""Reading JSON-lines files: one record per line, numbered from 1 for error reports.

The one reader of every JSONL input (events, accounts, alerts, outcomes): the backtest and
``preempt evaluate``/``train``, ``preempt events validate``, ``preempt publish --file``, the
simulator. Blank lines are skipped (``on_blank`` hears of each, so a progress bar or a count can
include them), so a trailing newline or a spacer line is never reported as a bad record. Parsing
the line is the caller's: each has its own decoder and its own words for a bad line, which
:func:`first_error` helps keep to one ``field: message`` shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from pydantic import ValidationError

from schemas.error_text import plain_message, unreadable
from schemas.errors import PreemptError


class Line(NamedTuple):
    """One non-blank line: its 1-based number and its bytes without the newline."""

    number: int
    raw: bytes
    size: int
    """Bytes the line took in the file, newline included (for progress bars)."""


BOM = b"\xef\xbb\xbf"
# How compressed files begin: read as text they gave one "invalid_utf8"/"not JSON" per line (thousands).
COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
}


class CompressedInputError(PreemptError):
    """A JSONL input that is a compressed file: one line saying how to read it instead of an error per line."""


class NotJsonLinesError(PreemptError):
    """A JSONL input that is one JSON document (an array, an indented object): one line saying how to convert
    it instead of an ``invalid_json`` per line of the document."""


class InputReadError(PreemptError):
    """A JSONL input whose reading failed part-way (an I/O error of the disk or the network file system):
    one line naming it and how far it got, not the ``OSError`` traceback."""


def read_lines(stream: BinaryIO, on_blank: Callable[[int], None] | None = None, name: object = None) -> Iterator[Line]:
    """The non-blank lines of ``stream``; ``on_blank(size)`` is called for each blank one. Errors name it
    ``name`` (default: the stream's own name).

    A UTF-8 byte order mark at the start of the file (as spreadsheet and CRM exports write one) is
    part of the file, not of its first record: it is dropped. A read that fails (an I/O error)
    raises :class:`InputReadError`, one line for the command to print.
    """
    if name is None:
        name = getattr(stream, "name", "the input")
    number = 0
    try:
        for number, line in enumerate(stream, start=1):
            raw = line.rstrip(b"\r\n")
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if number == 1:
                _refuse_compressed(raw, name)
                _refuse_document(raw, name)
            if not raw.strip():
                if on_blank is not None:
                    on_blank(len(line))
                continue
            yield Line(number, raw, len(line))
    except OSError as exc:  # from reading the stream only: a caller's own errors never enter a generator
        where = "stdin" if name in ("<stdin>", 0) else name
        got = f" past line {number}" if number else ""
        raise InputReadError(
            f"{where}: cannot read it{got}: {unreadable(exc)}; "
            "check the disk or file system it is on, then run the command again"
        ) from None


def _refuse_compressed(first: bytes, name: object) -> None:
    for magic, kind in COMPRESSED.items():
        if first.startswith(magic):
            if name in ("<stdin>", 0):
                raise CompressedInputError(f"stdin is {kind}-compressed, not JSON lines; decompress it first")
            command = "unzip" if kind == "zip" else f"{kind} -d" if kind == "zstd" else f"{kind} -dk"
            raise CompressedInputError(
                f"{name} is {kind}-compressed, not JSON lines; decompress it first ({command} {name})"
            )


def _refuse_document(first: bytes, name: object) -> None:
    """A first line that is only ``[`` or ``{`` starts a JSON document written over several lines (a JSON
    export, ``json.dump(..., indent=2)``): no line of it is a record on its own."""
    opening = first.strip()
    if opening not in (b"[", b"{"):
        return
    command = "jq -c '.[]'" if opening == b"[" else "jq -c ."
    what = "is one JSON document spread over several lines, not JSON lines (one JSON object a line)"
    if name in ("<stdin>", 0):
        raise NotJsonLinesError(f"stdin {what}; convert it first ({command})")
    path = Path(str(name))
    target = path.with_suffix(".jsonl") if path.suffix != ".jsonl" else path.with_name(f"{path.stem}.lines.jsonl")
    raise NotJsonLinesError(f"{name} {what}; convert it first ({command} {name} > {target})")


def read_file(path: Path, on_blank: Callable[[int], None] | None = None) -> Iterator[Line]:
    """The non-blank lines of the file at ``path`` (opened when iteration starts, closed at its end).

    ``OSError`` (missing, unreadable) is raised from the first iteration, for the caller to word.
    """
    with path.open("rb") as stream:
        yield from read_lines(stream, on_blank, name=str(path))


def first_error(exc: ValidationError) -> str:
    """``field.path: message`` of a line's first validation error; the message alone for the line as a whole
    (the caller has already said "line N")."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":  # pydantic's "Extra inputs are not permitted"
        return f"{where}: unknown field (not part of this record; check the spelling, or the file)"
    return f"{where}: {plain_message(first)}" if where else plain_message(first)
