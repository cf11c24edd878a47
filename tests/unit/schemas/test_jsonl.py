"""The one JSONL reader: non-blank lines numbered from 1, sizes for progress, blank lines reported aside."""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import itertools
import json
import lzma
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas.jsonl import (
    CompressedInputError,
    InputReadError,
    Line,
    NotJsonLinesError,
    first_error,
    read_file,
    read_lines,
)


def test_lines_keep_their_file_numbers_and_lose_their_newlines() -> None:
    """Blank and whitespace-only lines are skipped; numbers still count them; CRLF is stripped."""
    stream = io.BytesIO(b'{"a": 1}\n\n   \n{"b": 2}\r\n{"c": 3}')
    assert list(read_lines(stream)) == [
        Line(1, b'{"a": 1}', 9),
        Line(4, b'{"b": 2}', 10),
        Line(5, b'{"c": 3}', 8),
    ]


def test_a_byte_order_mark_at_the_start_of_the_file_is_dropped() -> None:
    """A UTF-8 BOM before the first record (a CRM or spreadsheet export) is not part of the record; later ones
    stay; its size still counts."""
    bom = b"\xef\xbb\xbf"
    assert [line.raw for line in read_lines(io.BytesIO(bom + b'{"a": 1}\n' + bom + b"x\n"))] == [
        b'{"a": 1}',
        bom + b"x",
    ]
    assert list(read_lines(io.BytesIO(bom + b"\n2\n"))) == [Line(2, b"2", 2)]
    data = bom + b'{"a": 1}\r\n' + bom + b'{"b": 2}\n'  # its size still counts
    assert list(read_lines(io.BytesIO(data))) == [Line(1, b'{"a": 1}', 13), Line(2, bom + b'{"b": 2}', 12)]
    assert list(read_lines(io.BytesIO(bom + b"\n"), on_blank=lambda size: None)) == []


def test_blank_lines_are_reported_with_their_size() -> None:
    """``on_blank`` hears each skipped line's size, so a progress bar can reach the file size."""
    blanks: list[int] = []
    data = b"x\n\n  \r\ny\n"
    lines = list(read_lines(io.BytesIO(data), on_blank=blanks.append))
    assert blanks == [1, 4]
    assert sum(line.size for line in lines) + sum(blanks) == len(data)


def test_read_file_opens_and_reads_a_path(tmp_path: Path) -> None:
    """``read_file`` yields the same lines from a file on disk."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n1\n2\n")
    assert [(line.number, line.raw) for line in read_file(path)] == [(2, b"1"), (3, b"2")]


def test_read_file_raises_oserror_for_the_caller_to_word(tmp_path: Path) -> None:
    """A missing file raises ``OSError`` when iteration starts, not a half-made result."""
    with pytest.raises(OSError, match="missing"):
        list(read_file(tmp_path / "missing.jsonl"))


def test_first_error_names_the_field_or_the_line() -> None:
    """A validation error becomes ``field.path: message``; an error of the whole line is its message alone (it read
    "line 1: (line): not valid JSON" after the caller's own "line 1")."""

    class Point(BaseModel):
        x: int

    with pytest.raises(ValidationError) as field_error:
        Point.model_validate_json(b'{"x": "no"}')
    assert first_error(field_error.value) == "x: expected a whole number, not 'no'"
    with pytest.raises(ValidationError) as line_error:
        Point.model_validate_json(b"[1]")
    assert first_error(line_error.value) == "expected a mapping (key: value), not a list"


@pytest.mark.parametrize(
    ("compress", "kind", "command"),
    [
        (gzip.compress, "gzip", "gzip -dk"),
        (bz2.compress, "bzip2", "bzip2 -dk"),
        (lzma.compress, "xz", "xz -dk"),
    ],
)
def test_a_compressed_file_is_one_error_naming_how_to_decompress_it(
    tmp_path: Path, compress: Callable[[bytes], bytes], kind: str, command: str
) -> None:
    """A gzip/bzip2/xz file given as JSONL is refused at its first line (it gave one 'invalid_utf8' per line)."""
    path = tmp_path / "events.jsonl.z"
    path.write_bytes(compress(b'{"event_id": "e1"}\n' * 1000))
    with pytest.raises(CompressedInputError) as caught:
        list(read_file(path))
    assert str(caught.value) == f"{path} is {kind}-compressed, not JSON lines; decompress it first ({command} {path})"


def test_a_compressed_stdin_is_named_stdin() -> None:
    """Piped compressed bytes (`cat x.gz | preempt events validate -`) are named stdin, with no command to run."""
    stream = io.BytesIO(gzip.compress(b"{}\n"))
    stream.name = "<stdin>"  # type: ignore[misc]
    with pytest.raises(CompressedInputError, match=r"^stdin is gzip-compressed, not JSON lines; decompress it first$"):
        list(read_lines(stream))


@pytest.mark.parametrize(
    ("document", "command"),
    [
        (json.dumps([{"event_id": "e1"}, {"event_id": "e2"}], indent=2), "jq -c '.[]'"),
        (json.dumps({"event_id": "e1", "event": "Login"}, indent=2), "jq -c ."),
    ],
    ids=["array", "object"],
)
def test_a_pretty_printed_json_document_is_one_error_naming_how_to_convert_it(
    tmp_path: Path, document: str, command: str
) -> None:
    """A JSON array or an indented JSON object (what a JSON export or `json.dump(..., indent=2)` writes)
    given as JSONL is refused at its first line: it gave one 'invalid_json' per line of the document."""
    path = tmp_path / "events.json"
    path.write_text(document + "\n")
    with pytest.raises(NotJsonLinesError) as caught:
        list(read_file(path))
    assert str(caught.value) == (
        f"{path} is one JSON document spread over several lines, not JSON lines (one JSON object a line); "
        f"convert it first ({command} {path} > {tmp_path / 'events.jsonl'})"
    )


class _FailingDisk(io.RawIOBase):
    """A file whose disk fails (EIO) once ``good`` bytes have been read."""

    name = "events.jsonl"

    def __init__(self, good: bytes) -> None:
        self.good = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self.good:
            raise OSError(errno.EIO, "Input/output error")
        size = min(len(buffer), len(self.good))
        buffer[:size] = self.good[:size]
        self.good = self.good[size:]
        return size


def test_a_read_that_fails_part_way_is_one_error_saying_how_far_it_got() -> None:
    """A disk or network file system error part-way through the file escaped as an OSError traceback
    from the line loop of every command; it is one error naming the file and the last line read."""
    lines = read_lines(io.BufferedReader(_FailingDisk(b'{"a": 1}\n{"a": 2}\n'), buffer_size=9))
    assert [line.number for line in itertools.islice(lines, 2)] == [1, 2]
    with pytest.raises(InputReadError, match=r"^events.jsonl: cannot read it past line 2: Input/output error; "):
        next(lines)
