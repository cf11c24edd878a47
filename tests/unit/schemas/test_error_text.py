"""Errors in words: pydantic's checks, unreadable files and refused connections, never in the libraries' voice."""

from __future__ import annotations

import re
import socket
from datetime import datetime
from typing import Annotated, Any, Literal

import pytest
from kafka.errors import KafkaTimeoutError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.decoder import Rejection, decode_event
from schemas.error_text import connection_failure, first_problem, plain_message, unreadable

JARGON = re.compile(r"Input should|type=|errors\.pydantic|Value error|Field required|Errno|codec|[A-Z][a-z]+Error\b")


class _Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Literal["critical", "high", "low"] = "low"
    priority: Annotated[int, Field(ge=1, le=1000)] = 1
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    target: Annotated[float, Field(allow_inf_nan=False)] = 1.0
    name: Annotated[str, Field(min_length=1)] = "x"
    tags: list[str] = []
    at: datetime | None = None
    required: str


def _message(**data: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        _Sample.model_validate({"required": "r", **data})
    return first_problem(caught.value.errors())


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"severity": "urgent"}, "severity: expected one of critical, high, low, not 'urgent'"),
        ({"priority": 0}, "priority: must be at least 1, not 0"),
        ({"priority": 5000}, "priority: must be at most 1000, not 5000"),
        ({"priority": "one"}, "priority: expected a whole number, not 'one'"),
        ({"priority": 1.5}, "priority: expected a whole number, not 1.5"),
        ({"threshold": 1.5}, "threshold: must be less than 1, not 1.5"),
        ({"threshold": 0}, "threshold: must be more than 0, not 0"),
        ({"threshold": [1]}, "threshold: expected a number, not a list"),
        ({"target": float("nan")}, "target: expected a finite number, not nan"),
        ({"name": ""}, "name: must not be empty"),
        ({"name": 5}, "name: expected text, not 5"),
        ({"tags": "a"}, "tags: expected a list, e.g. [a, b], not 'a'"),
        (
            {"at": "tomorrow"},
            "at: expected an RFC 3339 date and time with an offset, e.g. 2026-11-23T06:00:00Z, not 'tomorrow'",
        ),
        ({"colour": "red"}, "colour: unknown field (check the spelling)"),
    ],
)
def test_every_common_check_reads_as_a_sentence(data: dict[str, Any], text: str) -> None:
    """'Input should be greater than or equal to 1' and the like read as what the value must be, and what it was."""
    message = _message(**data)
    assert message == text
    assert not JARGON.search(message)


def test_a_missing_field_and_the_count_of_the_others() -> None:
    """pydantic's 'Field required' and a 'problem(s)' count read as words."""
    with pytest.raises(ValidationError) as caught:
        _Sample.model_validate({"priority": 0, "name": ""})
    assert first_problem(caught.value.errors()) == "priority: must be at least 1, not 0 (and 2 more problems)"
    with pytest.raises(ValidationError) as one:
        _Sample.model_validate({})
    assert first_problem(one.value.errors()) == "required: required"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"", "(file): not JSON: it is empty"),
        (b"\x89PNG", "(file): not valid JSON (line 1, column 1)"),
        (b'{"required": ', "(file): not valid JSON: it ends before the value is complete (line 1, column 13)"),
    ],
)
def test_json_that_does_not_parse_says_where(raw: bytes, text: str) -> None:
    """'Invalid JSON: EOF while parsing a value at line 1 column 0' (serde's words) reads as what is wrong and where."""
    with pytest.raises(ValidationError) as caught:
        _Sample.model_validate_json(raw)
    assert first_problem(caught.value.errors()) == text


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b'{"a": 1} x', "not valid JSON: more text after the value (line 1, column 10) (one JSON value a line)"),
        (b'{"a":', "not valid JSON: it ends before the value is complete (line 1, column 6)"),
        (b"nope", "not valid JSON (line 1, column 1)"),
        (b'{"a" 1}', "not valid JSON: a key without its ':' (line 1, column 6)"),
        (b"[" * 2000, "not valid JSON: nested too deeply (line 1, column 1026)"),
    ],
)
def test_an_event_line_that_is_not_json_says_where_not_in_the_parsers_words(raw: bytes, text: str) -> None:
    """orjson's "invalid literal, expected 'null': line 1 column 1 (char 0)" read as a parser's internals."""
    rejection = decode_event(raw, max_bytes=1 << 20, max_future_skew=60.0, now=0.0)
    assert isinstance(rejection, Rejection)
    assert rejection.detail == text


def test_a_check_this_module_does_not_know_still_has_no_pydantic_voice() -> None:
    """A type not in the table keeps its message, without 'Input should be' or 'Value error, '."""
    assert plain_message({"type": "uuid_type", "msg": "Input should be a valid UUID", "input": 3}) == (
        "expected a valid UUID, not 3"
    )
    assert plain_message({"type": "value_error", "msg": "Value error, window must be whole days"}) == (
        "window must be whole days"
    )


def test_a_binary_file_is_named_as_such_not_by_the_codec() -> None:
    """ "'utf-8' codec can't decode byte 0xf4 in position 0: invalid continuation byte" said nothing a user acts on."""
    try:
        b"\xf4\x00".decode()
    except UnicodeDecodeError as exc:
        text = unreadable(exc)
    assert text.startswith("not UTF-8 text (byte 0xf4 at position 0): a binary or compressed file?")
    assert unreadable(FileNotFoundError(2, "No such file or directory")) == "No such file or directory"


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (
            ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)"),
            "connection refused: nothing listens there",
        ),
        (
            OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 1)"),
            "connection refused: nothing listens there",
        ),
        (socket.gaierror(-2, "Name or service not known"), "the host name does not resolve"),
        (TimeoutError(), "no answer"),
        (KafkaTimeoutError(), "the connection failed"),
        (KafkaTimeoutError("Failed to update metadata after 60.0 secs."), "Failed to update metadata after 60.0 secs."),
        (OSError(113, "No route to host"), "no route to host"),
    ],
)
def test_a_failed_connection_reads_without_errno_or_exception_names(exc: BaseException, text: str) -> None:
    """'[Errno 111] Connect call failed' and kafka-python's 'KafkaTimeoutError: …' read as what happened."""
    assert connection_failure(exc) == text
