"""Accounts (``preempt.accounts``, compacted, key = ``account_id``) — the context every alert carries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Owner(BaseModel):
    """The CSM who owns the account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    email: str | None = None
    slack: str | None = Field(None, description="Slack member id (U…) or channel (#cs-acme)")


class AccountLinks(BaseModel):
    """Deep links for the CSM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crm: str | None = None
    admin: str | None = None


class Account(BaseModel):
    """One customer account."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Preempt account")

    account_id: str = Field(min_length=1, max_length=256)
    name: str | None = None
    tier: str | None = Field(None, description="e.g. enterprise, growth, starter")
    plan: str | None = None
    mrr: float | None = Field(None, ge=0, description="monthly recurring revenue")
    owner: Owner = Field(default_factory=Owner)
    timezone: str = Field("UTC", description="IANA zone of the owner, for quiet hours")
    tags: list[str] = Field(default_factory=list)
    links: AccountLinks = Field(default_factory=AccountLinks)
