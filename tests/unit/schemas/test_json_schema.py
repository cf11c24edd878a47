"""The committed JSON Schema files: up to date with the models, and agreeing with the decoder."""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson
import pytest

from schemas.decoder import decode_event
from schemas.event import Event
from schemas.json_schema import SCHEMA_DIR, SCHEMA_FILES, json_schema, render
from schemas.rfc3339 import parse_rfc3339


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_committed_schema_is_up_to_date(name: str) -> None:
    """Each committed schema file equals the model's current schema (run `python -m schemas.json_schema`)."""
    committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert committed == render(SCHEMA_FILES[name]), f"{name} is stale: run `python -m schemas.json_schema`"


EXAMPLES: list[dict[str, Any]] = [
    {"event_id": "8f1c", "event": "Report Exported", "account_id": "acme", "timestamp": "2026-11-23T06:00:00Z"},
    {
        "event_id": "8f1d",
        "event": "Login",
        "account_id": "acme",
        "user_id": "u-42",
        "timestamp": "2026-11-23T06:00:00.5+01:00",
        "properties": {"format": "csv"},
        "context": {"app": "web"},
    },
    {"event_id": "8f1e", "event": "Login", "account_id": "acme", "timestamp": "2026-11-23T06:00:00"},
    {"event_id": "8f1f", "event": "", "account_id": "acme", "timestamp": "2026-11-23T06:00:00Z"},
    {"event_id": "8f20", "event": "Login", "account_id": "acme", "timestamp": "2026-11-23T06:00:00Z", "extra": 1},
    {"event_id": "8f21", "event": "Login", "timestamp": "2026-11-23T06:00:00Z"},
    {"event_id": "8f22", "event": "Login", "account_id": "acme", "timestamp": "2026-11-23T06:00:00Z", "context": []},
]


@pytest.mark.parametrize("example", EXAMPLES)
def test_event_schema_and_decoder_agree_on_examples(example: dict[str, Any]) -> None:
    """A JSON Schema validator and the decoder accept and reject the same example events."""
    schema_ok = jsonschema.Draft202012Validator(json_schema(SCHEMA_FILES["usage_event.schema.json"])).is_valid(example)
    decoded = decode_event(
        orjson.dumps(example), max_bytes=32768, max_future_skew=300, now=parse_rfc3339("2026-11-24T00:00:00Z")
    )
    assert schema_ok == isinstance(decoded, Event)
