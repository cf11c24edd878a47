"""The one wording of errors a user can fix: validation errors, unreadable files, refused connections.

Who calls it: every place that turns a library's error into a line for a person — the rule and
routing loaders, the JSON-lines readers (events, accounts, outcomes, alerts), the risk model
loader, ``alerts preview``, the ``PREEMPT_*`` settings check, the Kafka reachability probe. Each
adds where the problem is (file, line, rule, field) and may add what its own docs say; this module
says *what is wrong* in words, never in the library's: no "Input should be …", no
``type=value_error``, no pydantic link, no Python exception or codec name.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

Error = Mapping[str, Any]
"""One error of ``pydantic.ValidationError.errors()`` (``type``, ``loc``, ``msg``, ``input``, ``ctx``)."""

_SHOWN_CHARS = 40
"""A value longer than this is named by its type ("a string"), not quoted in full."""
_JSON_POSITION = re.compile(r"line (\d+) column (\d+)")
_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")


def describe_value(value: object) -> str:
    """What a value is, in a config author's words: ``'loud'``, ``1.5``, ``true``, ``a list``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, int | float | str):
        shown = repr(value)
        if len(shown) <= _SHOWN_CHARS:
            return shown
        return "a number" if isinstance(value, int | float) else "a long string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence | set | frozenset):
        return "a list"
    return "a value of another kind"


def kind_of(value: object) -> str:
    """Only the kind of a value: "a number", "a string", "true/false", "a date", "a mapping", "a list", "null"."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return describe_value(value)


def _not(error: Error) -> str:
    """``, not 'loud'`` — the value the field was given (nothing when there was none)."""
    if "input" not in error or error.get("type") == "missing":
        return ""
    return f", not {describe_value(error['input'])}"


def _ctx(error: Error, key: str, default: object = "") -> object:
    ctx = error.get("ctx")
    return ctx.get(key, default) if isinstance(ctx, Mapping) else default


def _bound(error: Error, key: str) -> str:
    """A limit as people write it: 0, not 0.0."""
    value = _ctx(error, key)
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _items(count: object) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _one_of(error: Error) -> str:
    """pydantic's ``"'a', 'b' or 'c'"`` as ``a, b, c``."""
    expected = str(_ctx(error, "expected"))
    return ", ".join(part.strip().strip("'\"") for part in re.split(r",| or ", expected) if part.strip())


def _json(error: Error) -> str:
    return json_syntax(str(_ctx(error, "error")), error.get("input"))


def json_syntax(detail: str, raw: object = None) -> str:
    """A JSON parser's complaint (orjson's, serde's: "invalid literal, expected 'null': line 1 column 1 (char 0)",
    "EOF while parsing a value at line 1 column 0") as what is wrong and where."""
    if isinstance(raw, str | bytes) and not raw.strip():
        return "not JSON: it is empty"
    found = _JSON_POSITION.search(detail)
    where = f" (line {found[1]}, column {found[2]})" if found else ""
    if "EOF" in detail or "end of data" in detail:
        return f"not valid JSON: it ends before the value is complete{where}"
    if "recursion limit" in detail or "depth limit" in detail:
        return f"not valid JSON: nested too deeply{where}"
    if "trailing" in detail or "after document" in detail:
        return f"not valid JSON: more text after the value{where} (one JSON value a line)"
    if "expected ':'" in detail:
        return f"not valid JSON: a key without its ':'{where}"
    return f"not valid JSON{where}"


_NUMBER = "expected a number"
_DATETIME = "expected an RFC 3339 date and time with an offset, e.g. 2026-11-23T06:00:00Z"
_MESSAGES: dict[str, Callable[[Error], str]] = {
    "missing": lambda e: "required",
    "extra_forbidden": lambda e: "unknown field (check the spelling)",
    "string_type": lambda e: f"expected text{_not(e)}",
    "int_type": lambda e: f"expected a whole number{_not(e)}",
    "int_parsing": lambda e: f"expected a whole number{_not(e)}",
    "int_from_float": lambda e: f"expected a whole number{_not(e)}",
    "float_type": lambda e: f"{_NUMBER}{_not(e)}",
    "float_parsing": lambda e: f"{_NUMBER}{_not(e)}",
    "finite_number": lambda e: f"expected a finite number{_not(e)}",
    "bool_type": lambda e: f"expected true or false{_not(e)}",
    "bool_parsing": lambda e: f"expected true or false{_not(e)}",
    "list_type": lambda e: f"expected a list, e.g. [a, b]{_not(e)}",
    "tuple_type": lambda e: f"expected a list, e.g. [a, b]{_not(e)}",
    "set_type": lambda e: f"expected a list, e.g. [a, b]{_not(e)}",
    "dict_type": lambda e: f"expected a mapping (key: value){_not(e)}",
    "model_type": lambda e: f"expected a mapping (key: value){_not(e)}",
    "model_attributes_type": lambda e: f"expected a mapping (key: value){_not(e)}",
    "literal_error": lambda e: f"expected one of {_one_of(e)}{_not(e)}",
    "enum": lambda e: f"expected one of {_one_of(e)}{_not(e)}",
    "greater_than": lambda e: f"must be more than {_bound(e, 'gt')}{_not(e)}",
    "greater_than_equal": lambda e: f"must be at least {_bound(e, 'ge')}{_not(e)}",
    "less_than": lambda e: f"must be less than {_bound(e, 'lt')}{_not(e)}",
    "less_than_equal": lambda e: f"must be at most {_bound(e, 'le')}{_not(e)}",
    "multiple_of": lambda e: f"must be a multiple of {_ctx(e, 'multiple_of')}{_not(e)}",
    "string_too_short": lambda e: (
        "must not be empty"
        if _ctx(e, "min_length") in (1, "")
        else f"must be at least {_ctx(e, 'min_length')} characters long"
    ),
    "string_too_long": lambda e: f"must be at most {_ctx(e, 'max_length')} characters long",
    "too_short": lambda e: f"needs at least {_items(_ctx(e, 'min_length', 1))}",
    "too_long": lambda e: f"holds at most {_items(_ctx(e, 'max_length'))}",
    "string_pattern_mismatch": lambda e: f"{describe_value(e.get('input'))} is not written as this field expects",
    "datetime_type": lambda e: f"{_DATETIME}{_not(e)}",
    "datetime_parsing": lambda e: f"{_DATETIME}{_not(e)}",
    "datetime_from_date_parsing": lambda e: f"{_DATETIME}{_not(e)}",
    "timezone_aware": lambda e: "needs a timezone, e.g. 2026-12-01T08:00:00Z",
    "date_type": lambda e: f"expected a date, e.g. 2026-11-23{_not(e)}",
    "date_parsing": lambda e: f"expected a date, e.g. 2026-11-23{_not(e)}",
    "date_from_datetime_parsing": lambda e: f"expected a date, e.g. 2026-11-23{_not(e)}",
    "date_from_datetime_inexact": lambda e: f"expected a date without a time, e.g. 2026-11-23{_not(e)}",
    "url_parsing": lambda e: f"not a URL{_not(e)}: write it like https://example.com/path",
    "url_scheme": lambda e: f"this URL's scheme is not accepted{_not(e)}: write it like https://example.com/path",
    "json_invalid": _json,
    "json_type": lambda e: f"expected JSON text{_not(e)}",
    "union_tag_not_found": lambda e: f"missing {_ctx(e, 'discriminator', 'kind')}",
    "union_tag_invalid": lambda e: (
        f"unknown {_ctx(e, 'discriminator', 'kind')} {describe_value(_ctx(e, 'tag'))}; use one of "
        f"{str(_ctx(e, 'expected_tags')).replace(chr(39), '')}"
    ),
}


def plain_message(error: Error) -> str:
    """One validation error in words: "must be at most 1, not 1.5", "expected one of json, console, not 'xml'"."""
    kind = str(error.get("type", ""))
    word = _MESSAGES.get(kind)
    if word is not None:
        return word(error)
    message = " ".join(str(error.get("msg", "invalid")).split())
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input should be "):  # a check this table does not know yet: still no pydantic voice
        message = "expected " + message.removeprefix("Input should be ") + _not(error)
    return message


def error_path(loc: Sequence[int | str], whole: str = "(file)") -> str:
    """``receivers[0].slack_configs[1].channel``; ``whole`` when the error is about the document itself."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or whole


def first_problem(errors: Sequence[Error], whole: str = "(file)") -> str:
    """``field.path: what is wrong`` of the first error, and how many more there are."""
    first = errors[0]
    more = len(errors) - 1
    also = "" if not more else f" (and {more} more problem{'s' if more > 1 else ''})"
    return f"{error_path(first.get('loc', ()), whole)}: {plain_message(first)}{also}"


def unreadable(exc: OSError | UnicodeDecodeError) -> str:
    """Why a file could not be read, in words: the system's ("No such file or directory", "Permission denied",
    "Is a directory"), or "not UTF-8 text (…)" — never ``UnicodeDecodeError``'s "'utf-8' codec can't decode"."""
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}): a binary or "
            "compressed file? give the text file (decompress it first)"
        )
    return (exc.strerror or "the system refused to read it").rstrip(".")


def connection_failure(exc: BaseException) -> str:
    """Why a connection failed, in words (no exception name, no errno): "connection refused", "no answer"."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens there"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, TimeoutError):
        return "no answer"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    text = "" if text == name else text.removeprefix(f"{name}: ")  # kafka-python's errors start with their class
    if "Connect call failed" in text or "Errno 111" in text:  # asyncio's several attempts, all refused
        return "connection refused: nothing listens there"
    text = _ERRNO.sub("", text)
    return text[:300] if text else "the connection failed"
