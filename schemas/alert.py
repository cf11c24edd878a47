"""The alert contract on ``preempt.alerts``: what the rules worker emits and the notifier consumes."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from schemas.bounds import NO_CONTROL_CHARACTERS_PATTERN
from schemas.event import MAX_ID_CHARS

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def _null_as(empty: object) -> BeforeValidator:
    # An optional part of the alert sent as JSON null (another producer's "nothing here") reads as
    # absent, so the notifier sends the alert with its fallbacks instead of dead-lettering it.
    return BeforeValidator(lambda value: type(empty)() if value is None else value)


NullAsEmptyDict = _null_as({})


def visible_name(value: Any) -> Any:
    """A name with nothing to see — spaces, zero-width or other format characters only — is no name (None):
    shown as such, "   " or "\u200b" made a header ":  usage dropped" and an empty Account field, where a
    missing name shows the account id."""
    if isinstance(value, str) and all(c.isspace() or unicodedata.category(c) == "Cf" for c in value):
        return None
    return value


class AlertWindow(BaseModel):
    """The event-time span the evidence covers (RFC 3339 strings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str | None = None
    end: str | None = None


class Evidence(BaseModel):
    """Why the rule fired: the measure, its value, the threshold and sample events."""

    model_config = ConfigDict(extra="allow", frozen=True)

    measure: str | None = None
    value: float | int | str | None = None
    threshold: float | int | None = None
    baseline: float | None = None
    sample_event_ids: Annotated[list[str], _null_as([])] = Field(default_factory=list)


class AlertAccount(BaseModel):
    """The account context copied into the alert at emit time."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: Annotated[str | None, BeforeValidator(visible_name)] = None
    tier: str | None = None
    plan: str | None = None
    mrr: float | None = None
    timezone: str | None = None
    owner: Annotated[dict[str, Any], NullAsEmptyDict] = Field(default_factory=dict)
    links: Annotated[dict[str, Any], NullAsEmptyDict] = Field(default_factory=dict)

    @property
    def local_timezone(self) -> str | None:
        """The zone the account's times are shown and quiet hours kept in: the account's, else its owner's
        (None: unknown; callers fall back to UTC or the routing file's default)."""
        owner_tz = self.owner.get("timezone")
        return self.timezone or (str(owner_tz) if owner_tz else None)


AlertIdentifier = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=NO_CONTROL_CHARACTERS_PATTERN)
]
"""``alert_id``, ``rule_id``, ``account_id``: never empty (an empty ``alert_id`` made every such alert of an
account a "duplicate" of the first one, suppressed), no control characters, as event ids."""


class Alert(BaseModel):
    """An intervention alert, keyed in Kafka by ``account_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Preempt alert")

    alert_id: AlertIdentifier
    rule_id: AlertIdentifier
    kind: str
    title: str
    severity: Severity
    priority: int = Field(ge=1)
    account_id: AlertIdentifier
    user_id: str | None = None
    account: Annotated[AlertAccount, NullAsEmptyDict] = Field(default_factory=AlertAccount)
    fired_at: str = Field(description="event time of the episode that fired")
    emitted_at: str | None = Field(None, description="wall clock when emitted; not part of identity")
    window: Annotated[AlertWindow, NullAsEmptyDict] = Field(default_factory=AlertWindow)
    evidence: Annotated[Evidence, NullAsEmptyDict] = Field(default_factory=Evidence)
    playbook: Annotated[str, _null_as("")] = ""
    labels: Annotated[dict[str, str], NullAsEmptyDict] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _a_title_to_read(cls, data: Any) -> Any:
        """A blank title (a rule's title template that named a value this finding lacks renders empty, or a
        hand-written alert) becomes ``Acme: alert from rule my-rule``: every channel shows the title, and a
        blank one made a Slack text "[HIGH]  (acme): …", a "Preempt alert" header, an email subject
        "[HIGH] acme:" and a console line "[HIGH] " with nothing to act on."""
        if not isinstance(data, dict):
            return data
        title, rule_id = data.get("title"), data.get("rule_id")
        if not isinstance(title, str) or not isinstance(rule_id, str):
            return data
        # blank to a reader: only spaces, control or format characters (the channels drop the latter: a title
        # "\x1b" made an empty Slack header, which Slack refuses)
        if any(unicodedata.category(ch)[0] not in "CZ" for ch in title):
            return data
        account = data.get("account")
        name = account.get("name") if isinstance(account, dict) else getattr(account, "name", None)
        if not isinstance(name, str) or not name.strip():
            name = data.get("account_id")
        what = f"alert from rule {rule_id}"
        return {**data, "title": f"{name}: {what}" if isinstance(name, str) and name.strip() else what}

    def log_ids(self) -> dict[str, str]:
        """``alert_id``, ``rule_id`` and ``account_id``: what a log line about this alert carries (DESIGN.md §9)."""
        return {"alert_id": self.alert_id, "rule_id": self.rule_id, "account_id": self.account_id}
