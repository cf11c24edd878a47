"""One line per bad ``PREEMPT_*`` variable: which variable, what it holds, what it should hold.

Called by the ``preempt`` group's error handler (``streams/cli/main.py``) when building ``Settings``
fails, so every command reports a bad environment the same way and never with a traceback.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from pydantic import SecretStr, ValidationError
from pydantic.types import PathType
from pydantic_settings import SettingsError

from schemas.error_text import plain_message
from streams.runtime.settings import Settings

_ENV_PREFIX = "PREEMPT_"
_SETTINGS_ERROR_FIELD = re.compile(r'field "(?P<field>[^"]+)"')
_TYPE_WORDS: dict[object, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "text",
    Path: "a path",
    SecretStr: "a secret (text)",
}


def env_name(field: str) -> str:
    """``max_event_bytes`` → ``PREEMPT_MAX_EVENT_BYTES``."""
    return _ENV_PREFIX + field.upper()


def _is_secret(annotation: object) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def expected(annotation: object) -> str:
    """The type of a settings field in words: ``int`` → "an integer", ``tuple[X, ...]`` → "a JSON list"."""
    if annotation in _TYPE_WORDS:
        return _TYPE_WORDS[annotation]
    origin = typing.get_origin(annotation)
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if origin is typing.Literal:
        return "one of " + ", ".join(str(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:  # e.g. pydantic's FilePath = Annotated[Path, PathType("file")]
        base, *metadata = typing.get_args(annotation)
        kinds = {item.path_type for item in metadata if isinstance(item, PathType)}
        if kinds:
            return " or ".join(f"the path of an existing {kind}" for kind in sorted(kinds))
        return expected(base)
    if origin in (tuple, list, set, frozenset):
        return "a JSON list"
    if origin is dict:
        return "a JSON object"
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return expected(args[0])
    return getattr(annotation, "__name__", str(annotation))


def _field_default(field: str) -> str:
    info = Settings.model_fields[field]
    default: Any = info.get_default(call_default_factory=True)
    if isinstance(default, Path):
        return repr(str(default))  # not PosixPath('.preempt-data')
    return "none" if default is None or default == () else repr(default)


def _line(field: str, detail: str, value: object | None) -> str:
    info = Settings.model_fields.get(field)
    if info is None:
        return f"{env_name(field)}: {detail}"
    shown = "" if value is None or _is_secret(info.annotation) else f"={value!r}"
    # "expected a whole number, not 'abc'" says the type already; "must be at least 0, not -5" does not
    kind = "" if detail.startswith("expected ") else f"; expected {expected(info.annotation)}"
    return (
        f"{env_name(field)}{shown} is not valid: {detail}{kind}. Fix it or unset it (default: {_field_default(field)})"
    )


def describe_settings_error(exc: ValidationError | SettingsError) -> str:
    """The message for a ``Settings()`` failure: one line per bad variable."""
    if isinstance(exc, SettingsError):
        found = _SETTINGS_ERROR_FIELD.search(str(exc))
        if found is None:
            return f"invalid PREEMPT_* setting: {exc}"
        return _line(found["field"], "cannot be parsed (a list or mapping is written as JSON)", None)
    lines = []
    for error in exc.errors():
        loc = error.get("loc")
        # the line shows the value itself (or hides it: a secret), so the message does not repeat it
        message = plain_message({key: value for key, value in error.items() if key != "input"})
        if not loc:  # a check across several settings (e.g. SASL_SSL without credentials) names them itself
            lines.append(f"invalid settings: {message}")
            continue
        lines.append(_line(str(loc[0]), message[:1].lower() + message[1:], error.get("input")))
    return "\n".join(lines)


def is_settings_error(exc: BaseException) -> TypeGuard[ValidationError | SettingsError]:
    """True for the errors ``Settings()`` raises on a bad environment (not for other models' errors)."""
    if isinstance(exc, SettingsError):
        return True
    return isinstance(exc, ValidationError) and exc.title == Settings.__name__


def misspelt_settings(environ: Mapping[str, str]) -> list[str]:
    """A note for each ``PREEMPT_*`` variable that is no setting but nearly spells one (``PREEMPT_BROKERS``).

    Unknown variables are ignored (other tools share the prefix: scripts, tests), so a typo silently
    left the setting at its default; a near miss of a real name is named instead.
    """
    known = sorted(env_name(field) for field in Settings.model_fields)
    notes = []
    for name in sorted(environ):
        if not name.startswith(_ENV_PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.9)
        if close:
            notes.append(f"note: {name} is not a Preempt setting and is ignored; did you mean {close[0]}?")
    return notes
