"""Accounts (``preempt.accounts``, compacted, key = ``account_id``) — the context every alert carries.

Besides who owns the account (for routing and alert text), a record may carry the commercial
facts a CRM or billing system knows and usage events do not: ``seats`` bought, the date the
account became a customer (``customer_since``) and the date its current contract renews or ends
(``renewal_date``). All are optional, so records written before they existed stay valid. The
``risk`` rule kind reads them (``rules.risk.features``: days to renewal, tenure, seat use,
MRR, tier and plan); nothing else depends on them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _calendar_date(value: Any) -> Any:
    """A ``YYYY-MM-DD`` string (or a ``date``) and nothing else: no times, no epoch numbers."""
    if isinstance(value, datetime) or not isinstance(value, str | date):
        raise ValueError(f"expected a date as YYYY-MM-DD, got {value!r}")
    if isinstance(value, str):
        if not _ISO_DATE.fullmatch(value):
            raise ValueError(f"expected a date as YYYY-MM-DD, got {value!r}")
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date ({exc})") from None
    return value


# Bounds on the text an account record carries into every alert of the account: an unbounded
# field (a 600 KB name) made each alert larger than Kafka's 1 MB record limit, and the rules
# worker stopped on it again after every restart. Generous for any CRM's values.
MAX_TEXT_CHARS = 256
MAX_URL_CHARS = 2048
MAX_TAGS = 64
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Url = Annotated[str, Field(max_length=MAX_URL_CHARS)]

CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]
"""A calendar date, ``YYYY-MM-DD`` on the wire."""


def _null_is_none_on_record(value: Any) -> Any:
    """``null`` for ``owner``, ``links`` or ``tags`` — how CRM exports write "none on record" — is the
    same as leaving the field out; refused, it cost the account's whole record (name, tier, owner)."""
    return {} if value is None else value


def _null_is_no_tags(value: Any) -> Any:
    return [] if value is None else value


Tags = Annotated[list[Text], Field(max_length=MAX_TAGS)]


class Owner(BaseModel):
    """The CSM who owns the account."""

    # a number where text goes (a CRM's numeric name or Slack id) is its text, as for the account's own fields
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    name: Text | None = None
    email: Text | None = None
    slack: Text | None = Field(None, description="Slack member id (U…) or channel (#cs-acme)")


def owner_identity(owner: Mapping[str, Any]) -> str | None:
    """Who an owner is, for counting owners: the email (case and spaces aside), else the Slack id, else the name.

    Names are not identities: two CSMs called "Alex Kim" are two owners, and one CSM written "Ann Lee" on one
    record and "ann lee " on another is one (their email says so). None: no owner on record.
    """
    for field, prefix in (("email", "email:"), ("slack", "slack:"), ("name", "name:")):
        value = owner.get(field)
        if value is not None and not isinstance(value, dict | list):
            text = " ".join(str(value).split())
            if text:
                return prefix + (text.casefold() if field != "slack" else text)
    return None


class AccountLinks(BaseModel):
    """Deep links for the CSM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crm: Url | None = None
    admin: Url | None = None


class Account(BaseModel):
    """One customer account."""

    # A number where text goes (a CRM export's "tier": 1, "plan": 2024, "account_id": 42) is its text ("1"):
    # refused, it cost the account's whole record (name, owner), so its alerts went out without an owner.
    model_config = ConfigDict(extra="forbid", frozen=True, title="Preempt account", coerce_numbers_to_str=True)

    account_id: str = Field(min_length=1, max_length=256)
    name: Text | None = None
    tier: Text | None = Field(None, description="e.g. enterprise, growth, starter")
    plan: Text | None = None
    mrr: float | None = Field(None, ge=0, allow_inf_nan=False, description="monthly recurring revenue")
    seats: int | None = Field(None, ge=0, le=10_000_000, description="seats (licences) the customer pays for")
    customer_since: CalendarDate | None = Field(
        None, description="the date the account became a customer (YYYY-MM-DD); tenure is counted from it"
    )
    renewal_date: CalendarDate | None = Field(
        None,
        description=(
            "the date the current contract renews or ends (YYYY-MM-DD, UTC); keep it current: "
            "a date in the past counts as unknown"
        ),
    )
    owner: Annotated[Owner, BeforeValidator(_null_is_none_on_record, json_schema_input_type=Owner | None)] = Field(
        default_factory=Owner
    )
    timezone: Text | None = Field(
        None,
        description=(
            "IANA zone of the owner, for quiet hours and the times in alerts; none: the routing file's "
            "quiet_hours.timezone for quiet hours, UTC for times"
        ),
    )
    tags: Annotated[Tags, BeforeValidator(_null_is_no_tags, json_schema_input_type=Tags | None)] = Field(
        default_factory=list
    )
    links: Annotated[
        AccountLinks, BeforeValidator(_null_is_none_on_record, json_schema_input_type=AccountLinks | None)
    ] = Field(default_factory=AccountLinks)
