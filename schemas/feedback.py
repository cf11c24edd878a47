"""Feedback from CSMs (``preempt.feedback``): acknowledge, snooze, not helpful."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.rfc3339 import parse_rfc3339


class Feedback(BaseModel):
    """One CSM action on an alert, keyed by ``account_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["acknowledge", "snooze", "not_helpful"]
    alert_id: str
    rule_id: str
    account_id: str
    user: str | None = Field(None, description="who acted (Slack user id or name)")
    at: str = Field(description="RFC 3339 wall-clock time of the action")
    snooze_until: str | None = Field(None, description="RFC 3339 end of a snooze")

    @field_validator("snooze_until")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        # The notifier turns it into a time when it records the snooze: refuse it here, at the boundary.
        if value is not None:
            parse_rfc3339(value)
        return value
