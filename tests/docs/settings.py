"""The generated table of docs/settings.md: every ``PREEMPT_*`` variable, its default and its meaning.

The rows come from ``streams.runtime.settings.Settings`` (each field's default and ``description``) and
are compared with the doc by ``tests/docs/test_settings_reference.py``, so a setting added, renamed or
re-described in the code shows up in the reference. ``python -m tests.docs.settings --write`` (part of
``make docs``) rewrites the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from streams.cli.settings_errors import env_name
from streams.runtime.settings import Settings
from tests.docs import generated

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "settings.md"
MODULE = "tests.docs.settings"


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


BLOCKS = {"settings": table}


def block_in(text: str) -> str | None:
    """The generated table as the doc has it, or None when its markers are missing."""
    return generated.blocks_in(text, BLOCKS, MODULE).get("settings")


def main() -> int:
    return generated.main(DOC, BLOCKS, MODULE, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
