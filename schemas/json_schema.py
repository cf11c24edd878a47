"""JSON Schema export of the public contracts, committed under ``schemas/`` for product engineers.

``python -m schemas.json_schema`` rewrites the committed files; a unit test fails when they are
stale. ``preempt events schema`` prints the event schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.account import Account
from schemas.event import MAX_EVENT_BYTES, UsageEvent

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "usage_event.schema.json": UsageEvent,
    "account.schema.json": Account,
}
_NOTES: dict[type[BaseModel], str] = {
    UsageEvent: (
        f"Kafka topic preempt.events, key = account_id (UTF-8), value = this object as JSON "
        f"(at most {MAX_EVENT_BYTES} bytes), header content-type: application/json. Timestamps more "
        "than PREEMPT_MAX_FUTURE_SKEW_SECONDS (default 300) ahead of the receiver's clock are rejected."
    ),
    Account: "Kafka topic preempt.accounts (compacted), key = account_id (UTF-8), value = this object as JSON.",
}


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``model``, with the Kafka framing in ``$comment``."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:preempt:schema:{_file_of(model)}",
        "$comment": _NOTES[model],
    }
    schema.update(model.model_json_schema(mode="validation"))
    return schema


def render(model: type[BaseModel]) -> str:
    """The committed text of ``model``'s schema: sorted-free, indented, newline-terminated."""
    return json.dumps(json_schema(model), indent=2, ensure_ascii=False) + "\n"


def _file_of(model: type[BaseModel]) -> str:
    return next(name for name, m in SCHEMA_FILES.items() if m is model)


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every committed schema file; returns the paths written."""
    written = []
    for name, model in SCHEMA_FILES.items():
        path = directory / name
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(f"wrote {path}")  # noqa: T201 - a developer tool's output
