"""The one YAML reader for Preempt's configuration files (rules, routing).

YAML 1.2 core schema (ruamel.yaml, pure-Python safe loader), so what people write is what they
get: ``on``/``off``/``yes``/``no`` stay strings (only ``true``/``false`` are booleans), ``010``
is ten, ``1:30`` is text. A key repeated in one mapping is an error instead of the last one
silently winning. A syntax error names the line where the broken construct starts (an unclosed
quote, a key without its colon), not the line where the parser gave up.

Called by ``rules.loader`` and ``alerts.routing.config`` when they read a file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scanner import ScannerError

from schemas.error_text import unreadable
from schemas.errors import ConfigError


class YamlSyntaxError(ConfigError):
    """A configuration file is not valid YAML (or repeats a key); ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _where(exc: MarkedYAMLError) -> tuple[int | None, str]:
    problem_mark, context_mark = exc.problem_mark, exc.context_mark
    # A scanner error's context is where the unfinished token began (the quote, the key);
    # the problem mark is only where the scanner noticed, often lines later.
    mark = context_mark if isinstance(exc, ScannerError) and context_mark is not None else problem_mark
    if mark is None:
        return None, ""
    return mark.line + 1, f"line {mark.line + 1}, column {mark.column + 1}: "


def _describe(exc: MarkedYAMLError) -> str:
    problem = (exc.problem or "invalid YAML").strip()
    if isinstance(exc, DuplicateKeyError):
        key = problem.split('"')[1] if problem.count('"') >= 2 else "?"
        mapping = f" that starts at line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
        return f"duplicate key {key!r} (each key may appear only once in the mapping{mapping})"
    context = (exc.context or "").strip()
    other = ""
    problem_mark, context_mark = exc.problem_mark, exc.context_mark
    if problem_mark is not None and context_mark is not None and problem_mark.line != context_mark.line:
        if isinstance(exc, ScannerError):
            other = f", noticed at line {problem_mark.line + 1}"
        else:
            other = f" that starts at line {context_mark.line + 1}"
    return problem + (f" ({context}{other})" if context else "")


# A value (after "key:", "- " or inside [ ]) that opens a Jinja template unquoted: YAML reads "{{" as a mapping.
_UNQUOTED_TEMPLATE = re.compile(r"(?:^|[:\[,-])\s*\{[{%]")
_QUOTED = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'")


def _hint(exc: MarkedYAMLError, line: str) -> str:
    """What to do about the slips YAML's own words do not explain: an unquoted template, a tab, a second document."""
    if _UNQUOTED_TEMPLATE.search(_QUOTED.sub('""', line)):
        return (
            "; a value that starts with { is read as a YAML mapping: put a template in quotes, e.g. "
            'title: "{{ account.name }}: …"'
        )
    if "another document" in (exc.problem or ""):  # a "---" line and a second document after it
        return (
            "; a file holds one YAML document: remove the --- line (a rule file holds several rules as a list "
            "under rules:)"
        )
    if "'\\t'" in (exc.problem or ""):  # the scanner's "found character '\t' that cannot start any token"
        return "; indent with spaces: YAML does not allow tabs there"
    return ""


def parse_yaml(text: str, source: str) -> Any:
    """Parse one YAML document; ``source`` (a path) starts every error message.

    Raises ``YamlSyntaxError`` for invalid YAML and duplicate keys.
    """
    yaml = YAML(typ="safe", pure=True)
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        line, where = _where(exc)
        lines = text.splitlines()
        hint = _hint(exc, lines[line - 1] if line is not None and line <= len(lines) else "")
        raise YamlSyntaxError(f"{source}: {where}not valid YAML: {_describe(exc)}{hint}", line) from None
    except YAMLError as exc:
        # e.g. a control character: the library's message continues on a second line with its position
        raise YamlSyntaxError(f"{source}: not valid YAML: {' '.join(str(exc).split())}", None) from None
    except RecursionError:
        # thousands of nested brackets or list levels: the parser recurses once per level
        raise YamlSyntaxError(
            f"{source}: not valid YAML: nested too deeply (thousands of levels of lists or mappings); "
            "a real config needs a handful",
            None,
        ) from None


def load_yaml_file(path: Path) -> Any:
    """Read and parse a YAML file; ``ConfigError`` when it cannot be read, ``YamlSyntaxError`` when invalid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {unreadable(exc)}") from None
    return parse_yaml(text, str(path))
