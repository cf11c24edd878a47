"""Feedback from CSMs (``preempt.feedback``): acknowledge, snooze, not helpful."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Feedback(BaseModel):
    """One CSM action on an alert, keyed by ``account_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["acknowledge", "snooze", "not_helpful"]
    alert_id: str
    rule_id: str
    account_id: str
    user: str | None = Field(None, description="who acted (Slack user id or name)")
    at: str = Field(description="RFC 3339 wall-clock time of the action")
    snooze_until: str | None = None
