"""The usage-event contract (documented for product engineers in docs/events.md, "The event").

Two shapes of one thing:

* ``UsageEvent`` — the pydantic model at the boundary: SDK, HTTP ingest, JSON Schema export.
* ``Event`` — a slots dataclass for hot loops (decoder output, rule evaluation), with the
  timestamp also as float epoch seconds (``ts``) so windows compare numbers, not datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from schemas.bounds import (
    MAX_KEY_CHARS,
    MAX_NESTING_DEPTH,
    MAX_PROPERTY_VALUES,
    MAX_STRING_CHARS,
    NO_CONTROL_CHARACTERS_PATTERN,
    check_content,
)
from schemas.rfc3339 import parse_rfc3339_datetime

MAX_EVENT_BYTES = 32 * 1024
MAX_EVENT_NAME_CHARS = 128
MAX_ID_CHARS = 256
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$"


def _rfc3339_only(value: object) -> object:
    """Accept RFC 3339 strings (and, from Python, aware datetimes) — never pydantic's looser forms.

    pydantic alone would also take epoch numbers, ``2026-11-23 06:00Z`` or ``+0100`` offsets; the
    contract (and the hot-path decoder, which shares this parser) does not.
    """
    if isinstance(value, str):
        return parse_rfc3339_datetime(value)
    if isinstance(value, datetime):
        return value
    raise ValueError("must be an RFC 3339 timestamp string with an offset, e.g. 2026-11-23T06:00:00Z")


_NO_CONTROL = NO_CONTROL_CHARACTERS_PATTERN
EventName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EVENT_NAME_CHARS, pattern=_NO_CONTROL)]
AccountId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=_NO_CONTROL)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=_NO_CONTROL)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=_NO_CONTROL)]
_CONTENT_BOUNDS = (
    f"at most {MAX_NESTING_DEPTH} levels of nesting, {MAX_PROPERTY_VALUES} keys and array items in properties "
    f"and context together, strings of at most {MAX_STRING_CHARS} characters, keys of at most {MAX_KEY_CHARS}, "
    "integers within ±(2^53 - 1)"
)
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]


class UsageEvent(BaseModel):
    """One product-usage event, keyed in Kafka by ``account_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Preempt usage event")

    event_id: EventId = Field(description="unique per event; used to drop duplicates")
    event: EventName = Field(description="event name, e.g. 'Report Exported'")
    account_id: AccountId = Field(description="the customer account (B2B)")
    user_id: UserId | None = Field(None, description="the acting user")
    timestamp: Timestamp = Field(
        description="RFC 3339 event time with an offset (Z or ±hh:mm), e.g. 2026-11-23T06:00:00Z",
        json_schema_extra={"pattern": RFC3339_PATTERN},
    )
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description=f"event properties (JSON object); {_CONTENT_BOUNDS}",
        json_schema_extra={"maxProperties": MAX_PROPERTY_VALUES},
    )
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="context, e.g. app, library (JSON object; the same bounds as properties)",
        json_schema_extra={"maxProperties": MAX_PROPERTY_VALUES},
    )

    @model_validator(mode="after")
    def _content_bounds(self) -> UsageEvent:
        # The decoder's own check (schemas/bounds.py), so both accept exactly the same events.
        violation = check_content(self.properties, self.context)
        if violation is not None:
            raise ValueError(f"{violation.reason}: {violation.detail}")
        return self

    def to_event(self) -> Event:
        """The hot-path form of this event."""
        ts = self.timestamp.astimezone(UTC)
        return Event(
            event_id=self.event_id,
            event=self.event,
            account_id=self.account_id,
            user_id=self.user_id,
            ts=ts.timestamp(),
            properties=dict(self.properties),
            context=dict(self.context),
        )


@dataclass(slots=True, frozen=True)
class Event:
    """A validated event as rule evaluation sees it. ``ts`` is the event time in epoch seconds (UTC)."""

    event_id: str
    event: str
    account_id: str
    ts: float
    user_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def timestamp(self) -> datetime:
        """The event time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts, tz=UTC)

    def to_json_dict(self) -> dict[str, Any]:
        """The canonical JSON object of this event (the wire contract)."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "event": self.event,
            "account_id": self.account_id,
            "user_id": self.user_id,
            "timestamp": format_ts(self.ts),
            "properties": self.properties,
            "context": self.context,
        }
        if self.user_id is None:
            del out["user_id"]
        return out


def format_ts(ts: float) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z``: ``2026-11-23T06:00:00.120Z``."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
