"""The routing file: typed, frozen models validated at load, with errors that name the file and field.

``RoutingConfig.load(path)`` is called by the notifier at start and by ``preempt routes check``.
The shape follows Alertmanager (``receivers``, ``route``, ``inhibit_rules``) plus ``silences`` and
``quiet_hours``; docs/notifications.md is the reference.
"""

from __future__ import annotations

import uuid
from datetime import time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from alerts.routing.durations import parse_duration
from alerts.routing.matchers import Matcher, matches_all
from alerts.templates import check_template
from schemas.alert import Alert, Severity
from schemas.errors import ConfigError


def _to_matcher(value: object) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a matcher is a string like 'severity=\"critical\"', got {value!r}")
    return Matcher.parse(value)


def _as_tuple(value: object) -> object:
    return (value,) if isinstance(value, str) else value


def _template(value: object) -> object:
    if isinstance(value, str):
        check_template(value)
    return value


MatcherField = Annotated[Matcher, PlainValidator(_to_matcher), PlainSerializer(str)]
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Template = Annotated[str, BeforeValidator(_template)]

# hide_input_in_errors: a webhook URL is a secret, and str(ValidationError) would otherwise echo it.
_MODEL = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True)


class SlackReceiver(BaseModel):
    """One Slack destination: a bot-token channel (``chat.postMessage``) or an incoming webhook."""

    model_config = _MODEL

    channel: Template | None = Field(
        None, description="channel id/name or member id; templated, e.g. '{{ account.owner.slack }}' (bot token)"
    )
    webhook_url: SecretStr | None = Field(None, description="incoming webhook; default PREEMPT_SLACK_WEBHOOK_URL")
    title: Template | None = Field(None, description="header template override")
    text: Template | None = Field(None, description="fallback/summary text template override")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        # The message must not echo the value: it is a secret.
        if value is not None and not value.get_secret_value().lower().startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL (value hidden)")
        return value


class EmailReceiver(BaseModel):
    """One email destination; recipients are templates rendered per alert."""

    model_config = _MODEL

    to: Annotated[tuple[Template, ...], BeforeValidator(_as_tuple)] = Field(min_length=1)
    from_: str | None = Field(None, alias="from", description="default PREEMPT_SMTP_FROM")
    subject: Template | None = None
    text: Template | None = None
    html: Template | None = None


class ConsoleReceiver(BaseModel):
    """Print a readable preview to stdout (the demo's receiver)."""

    model_config = _MODEL

    text: Template | None = None


class ReceiverConfig(BaseModel):
    """A named receiver: any number of Slack, email and console destinations."""

    model_config = _MODEL

    name: str = Field(min_length=1)
    slack_configs: tuple[SlackReceiver, ...] = ()
    email_configs: tuple[EmailReceiver, ...] = ()
    console_configs: tuple[ConsoleReceiver, ...] = ()


class RouteConfig(BaseModel):
    """A node of the routing tree; unset timing and grouping fields inherit from the parent."""

    model_config = _MODEL

    name: str | None = Field(None, description="shown by `preempt routes test` as the reason")
    receiver: str | None = None
    matchers: tuple[MatcherField, ...] = ()
    group_by: tuple[str, ...] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(False, alias="continue")
    routes: tuple[RouteConfig, ...] = ()

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be greater than zero")
        return value


class InhibitRule(BaseModel):
    """Mute alerts matching ``target_matchers`` while an alert matching ``source_matchers`` is active
    and both have equal values for every name in ``equal``."""

    model_config = _MODEL

    name: str | None = None
    source_matchers: tuple[MatcherField, ...] = Field(min_length=1)
    target_matchers: tuple[MatcherField, ...] = Field(min_length=1)
    equal: tuple[str, ...] = ()


class Silence(BaseModel):
    """Mute matching alerts between ``starts_at`` and ``ends_at``; ``account_id``/``rule_id`` are shorthands."""

    model_config = _MODEL

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    matchers: tuple[MatcherField, ...] = ()
    account_id: str | None = None
    rule_id: str | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime = Field(description="expiry (RFC 3339 with a zone)")
    reason: str = Field(min_length=1)
    created_by: str | None = None

    @model_validator(mode="after")
    def _not_everything(self) -> Silence:
        if not self.matchers and self.account_id is None and self.rule_id is None:
            raise ValueError("a silence needs account_id, rule_id or matchers (it would mute every alert)")
        if self.starts_at is not None and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self

    def matches(self, alert: Alert) -> bool:
        """True when the alert fits this silence's account, rule and matchers (ignoring time)."""
        if self.account_id is not None and alert.account_id != self.account_id:
            return False
        if self.rule_id is not None and alert.rule_id != self.rule_id:
            return False
        return matches_all(self.matchers, alert)

    def active_at(self, now: float) -> bool:
        """True when ``now`` (epoch seconds) is inside the silence's time span."""
        start = self.starts_at.timestamp() if self.starts_at is not None else float("-inf")
        return start <= now < self.ends_at.timestamp()


class QuietHours(BaseModel):
    """Daily quiet hours (and optionally weekends) in the owner's timezone; deferred alerts go out at the end."""

    model_config = _MODEL

    start: time = Field(description="local time quiet hours begin, e.g. 20:00")
    end: time = Field(description="local time they end (the digest time), e.g. 08:00")
    weekends: bool = Field(False, description="Saturday and Sunday are quiet all day")
    timezone: str = Field("UTC", description="used when the account has no timezone")
    bypass_severities: tuple[Severity, ...] = Field(("critical",), description="severities never deferred")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _span(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self

    def applies_to(self, alert: Alert) -> bool:
        """False for severities that bypass quiet hours."""
        return alert.severity not in self.bypass_severities


class RoutingConfig(BaseModel):
    """The whole routing file. Receivers are referenced by name and checked here, at load."""

    model_config = _MODEL

    receivers: tuple[ReceiverConfig, ...] = Field(min_length=1)
    route: RouteConfig
    inhibit_rules: tuple[InhibitRule, ...] = ()
    silences: tuple[Silence, ...] = ()
    quiet_hours: QuietHours | None = None

    @model_validator(mode="after")
    def _references(self) -> RoutingConfig:
        names = [r.name for r in self.receivers]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise ValueError(f"receivers[{i}].name: duplicate receiver name {name!r}")
            seen.add(name)
        if self.route.receiver is None:
            raise ValueError("route.receiver: the root route needs a receiver (the default for every alert)")
        if self.route.matchers:
            raise ValueError("route.matchers: the root route matches every alert and must not have matchers")
        _check_receivers(self.route, "route", seen)
        return self

    def receiver(self, name: str) -> ReceiverConfig:
        """The receiver called ``name`` (raises ``KeyError`` when there is none)."""
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(name)

    @classmethod
    def load(cls, path: Path) -> RoutingConfig:
        """Read and validate a routing YAML file; raises ``ConfigError`` naming the file and field."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read routing file: {exc.strerror or exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping with receivers and route, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors()
            # A list whose only items failed also reports "too short": noise next to the real error.
            errors = [
                e
                for e in errors
                if not (
                    e["type"] == "too_short"
                    and any(o is not e and o["loc"][: len(e["loc"])] == e["loc"] for o in errors)
                )
            ]
            raise ConfigError(f"{path}: " + "; ".join(_format_error(e) for e in errors)) from None


def _check_receivers(route: RouteConfig, where: str, known: set[str]) -> None:
    if route.receiver is not None and route.receiver not in known:
        raise ValueError(f"{where}.receiver: unknown receiver {route.receiver!r} (known: {', '.join(sorted(known))})")
    for i, child in enumerate(route.routes):
        _check_receivers(child, f"{where}.routes[{i}]", known)


def _format_error(error: Any) -> str:
    loc = ""
    for part in error.get("loc", ()):
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = str(error.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg
