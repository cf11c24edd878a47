"""Feedback from CSMs (``preempt.feedback``): acknowledge, snooze, not helpful."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.alert import AlertIdentifier
from schemas.rfc3339 import parse_rfc3339


class Feedback(BaseModel):
    """One CSM action on an alert, keyed by ``account_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["acknowledge", "snooze", "not_helpful"]
    # Bounded as an alert's ids (256 characters, no control characters): a snooze keeps its rule id in the
    # account's entry of the snoozes table, and a 100 KB one per record made that entry outgrow Kafka's
    # record limit after a few records — the changelog write failed and the notifier stopped.
    alert_id: AlertIdentifier
    rule_id: AlertIdentifier
    account_id: AlertIdentifier
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
