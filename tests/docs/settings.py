"""The generated table of docs/settings.md: every ``PREEMPT_*`` variable, its default and its meaning.

The rows come from ``streams.runtime.settings.Settings`` (each field's default and ``description``) and
are compared with the doc by ``tests/docs/test_settings_reference.py``, so a setting added, renamed or
re-described in the code shows up in the reference. ``python -m tests.docs.settings --write`` (part of
``make docs``) rewrites the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from streams.cli.settings_errors import env_name
from streams.runtime.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "settings.md"
BEGIN = "<!-- generated:settings (python -m tests.docs.settings --write) -->"
END = "<!-- end:settings -->"


def _default(field: FieldInfo) -> str:
    """The default as a reader would write it in the environment; — for none."""
    value: Any = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is PydanticUndefined or value is None or value in ((), {}, ""):
        return "—"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, Path):
        try:
            return f"`{value.relative_to(REPO).as_posix()}`"
        except ValueError:
            return f"`{value.as_posix()}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{list(value)!r}`".replace("'", '"')
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def table() -> str:
    """One row per setting, in the order ``Settings`` declares them."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{env_name(name)}` | {_default(field)} | {meaning} |")
    return "\n".join(rows)


def block_in(text: str) -> str | None:
    """The generated table as the doc has it, or None when its markers are missing."""
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def rewrite(text: str) -> str:
    """``text`` with the table between the markers regenerated."""
    head, rest = text.split(BEGIN, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{rest.split(END, 1)[1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the generated table of docs/settings.md")
    args = parser.parse_args()
    text = DOC.read_text(encoding="utf-8")
    fresh = rewrite(text)
    if args.write:
        if fresh != text:
            DOC.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != text:
        print("docs/settings.md has drifted: run python -m tests.docs.settings --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
