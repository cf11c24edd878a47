"""The routing file: typed, frozen models validated at load, with errors that name the file and field.

``RoutingConfig.load(path)`` is called by the notifier at start and by ``preempt routes check``.
The shape follows Alertmanager (``receivers``, ``route``, ``inhibit_rules``) plus ``silences`` and
``quiet_hours``; docs/notifications.md is the reference. A file written for Alertmanager loads
where the concepts match (``alerts.routing.alertmanager``), and every problem of a file — YAML
aside — is reported in one pass: field errors, unsupported Alertmanager keys, unknown names in
matchers and templates (``alerts.routing.names``), and receiver references, together.
"""

from __future__ import annotations

import difflib
import re
import uuid
from datetime import time
from pathlib import Path
from typing import Annotated, Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
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

from alerts.routing.alertmanager import translate
from alerts.routing.matchers import Matcher, matches_all, parse_matchers
from alerts.routing.names import matcher_name_problem, unknown_names
from alerts.templates import check_template
from schemas.alert import Alert, Severity
from schemas.config_yaml import load_yaml_file
from schemas.durations import parse_duration_or_seconds
from schemas.email_address import recipient_addresses, sender_address
from schemas.error_text import error_path, plain_message, unreadable
from schemas.errors import ConfigError
from schemas.secret_url import secret_http_url


def _to_matcher(value: object) -> Matcher | tuple[Matcher, ...]:
    # One entry may be a set ('{owner="a", level!="b"}'); _flatten makes the field a flat tuple.
    if isinstance(value, Matcher):
        return value
    if isinstance(value, dict):  # a silence's matcher object from Alertmanager that alertmanager.py could not read
        raise ValueError(
            f"a matcher is a string like 'severity=\"critical\"', got a mapping {value!r} (a silence also takes "
            "Alertmanager's matcher object: name, value, and optionally isRegex and isEqual)"
        )
    if not isinstance(value, str):
        raise ValueError(f"a matcher is a string like 'severity=\"critical\"', got {value!r}")
    matchers = parse_matchers(value)
    problems = [p for p in (matcher_name_problem(m.name) for m in matchers) if p is not None]
    if problems:
        raise ValueError("; ".join(problems))
    return matchers[0] if len(matchers) == 1 else matchers


def _flatten(entries: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
    flat: list[Matcher] = []
    for entry in entries:
        flat.extend(entry if isinstance(entry, tuple) else (entry,))
    return tuple(flat)


def _known_names(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    # "..." is Alertmanager's "group by everything" (alerts.routing.tree.GROUP_BY_ALL).
    problems = [p for p in (matcher_name_problem(n) for n in names or () if n != "...") if p is not None]
    if problems:
        raise ValueError("; ".join(problems))
    return names


def _as_tuple(value: object) -> object:
    return (value,) if isinstance(value, str) else value


def _template(value: object) -> object:
    if isinstance(value, str):
        check_template(value)
        problems = unknown_names(value)
        if problems:
            raise ValueError("template uses " + "; ".join(problems))
    return value


MatcherField = Annotated[Matcher, PlainValidator(_to_matcher), PlainSerializer(str)]
Matchers = Annotated[tuple[MatcherField, ...], AfterValidator(_flatten)]
RoutingTiming = Annotated[float, BeforeValidator(parse_duration_or_seconds), Field(ge=0)]
"""group_wait, group_interval, repeat_interval: a duration or plain seconds, zero allowed."""
Template = Annotated[str, BeforeValidator(_template)]
Names = Annotated[tuple[str, ...], AfterValidator(_known_names)]

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
        return None if value is None else secret_http_url(value)


class EmailReceiver(BaseModel):
    """One email destination; recipients are templates rendered per alert."""

    model_config = _MODEL

    to: Annotated[tuple[Template, ...], BeforeValidator(_as_tuple)] = Field(min_length=1)
    from_: Annotated[str, AfterValidator(sender_address)] | None = Field(
        None, alias="from", description="default PREEMPT_SMTP_FROM"
    )
    subject: Template | None = None
    text: Template | None = None
    html: Template | None = None

    @field_validator("to")
    @classmethod
    def _literal_recipients_are_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A template is rendered per alert (an empty or invalid result dead-letters that alert alone);
        # a fixed entry is checked here, where a typo is one line at start rather than every email lost.
        for entry in value:
            if "{{" not in entry and "{%" not in entry:
                recipient_addresses(entry)
        return value


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
    matchers: Matchers = ()
    group_by: Names | None = None
    group_wait: RoutingTiming | None = None
    group_interval: RoutingTiming | None = None
    repeat_interval: RoutingTiming | None = None
    continue_: bool = Field(False, alias="continue")
    routes: tuple[RouteConfig, ...] = ()

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        # Alertmanager refuses both: "..." already means every name, and a repeated name is a typo.
        if value is not None and "..." in value and len(value) > 1:
            raise ValueError("'...' (every alert alone) cannot be combined with other names; use ['...'] alone")
        repeated = sorted({name for name in value or () if value is not None and value.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repr(n) for n in repeated)} listed more than once")
        return value

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
    source_matchers: Matchers = Field(min_length=1)
    target_matchers: Matchers = Field(min_length=1)
    equal: Names = ()


class Silence(BaseModel):
    """Mute matching alerts between ``starts_at`` and ``ends_at``; ``account_id``/``rule_id`` are shorthands."""

    model_config = _MODEL

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    matchers: Matchers = ()
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


_TIME_OF_DAY = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def _time_of_day(value: object) -> object:
    # "8:00" is how people write eight o'clock; pydantic alone wants "08:00" ("input is too short").
    if isinstance(value, time):
        return value
    match = _TIME_OF_DAY.match(value) if isinstance(value, str) else None
    hour, minute, second = (int(g or 0) for g in match.groups()) if match else (-1, 0, 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        raise ValueError(f"expected a time of day like 08:00 or 20:30, got {value!r}")
    return time(hour, minute, second)


TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]


class QuietHours(BaseModel):
    """Daily quiet hours (and optionally weekends) in the owner's timezone; deferred alerts go out at the end."""

    model_config = _MODEL

    start: TimeOfDay = Field(description="local time quiet hours begin, e.g. 20:00")
    end: TimeOfDay = Field(description="local time they end (the digest time), e.g. 08:00")
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
        problems = reference_errors(
            {
                "receivers": [{"name": r.name} for r in self.receivers],
                "route": self.route.model_dump(by_alias=True),
            }
        )
        if problems:
            raise ValueError("; ".join(problems))
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
            Path(path).stat()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read routing file: {unreadable(exc)}") from None
        data = load_yaml_file(path)  # ConfigError naming the line for invalid YAML or a duplicate key
        if not isinstance(data, dict):
            got = "an empty file" if data is None else f"a {_YAML_KINDS.get(type(data), 'value')}"
            raise ConfigError(f"{path}: expected a mapping with receivers and route, got {got}")
        problems = translate(data)  # Alertmanager spellings; unsupported Alertmanager keys
        # Receiver references are checked on the raw data, so they are reported together with
        # field errors elsewhere in the file rather than only once those are fixed.
        problems += reference_errors(data)
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            problems += _field_errors(exc)
        else:
            if not problems:
                return config
        raise ConfigError("\n".join(f"{path}: {problem}" for problem in dict.fromkeys(problems)))


_YAML_KINDS: dict[type, str] = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}


def _field_errors(exc: ValidationError) -> list[str]:
    errors = exc.errors()
    # A list whose only items failed also reports "too short": noise next to the real error.
    # A model-level error of the whole file is a reference error, already found on the raw data.
    return [
        _format_error(e)
        for e in errors
        if e["loc"]
        and not (e["type"] == "too_short" and any(o is not e and o["loc"][: len(e["loc"])] == e["loc"] for o in errors))
    ]


def reference_errors(data: dict[str, Any]) -> list[str]:
    """Receiver names unique and every route's receiver defined; the root has a receiver and no matchers.

    Works on the raw file (skipping parts too malformed to read: their field errors say why) and,
    through ``RoutingConfig``'s validator, on a validated config.
    """
    problems: list[str] = []
    seen: set[str] = set()
    receivers = data.get("receivers")
    for i, receiver in enumerate(receivers if isinstance(receivers, list | tuple) else ()):
        name = receiver.get("name") if isinstance(receiver, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(f"receivers[{i}].name: duplicate receiver name {name!r}")
        seen.add(name)
    route = data.get("route")
    if not isinstance(route, dict):
        return problems
    if route.get("receiver") is None:
        problems.append("route.receiver: the root route needs a receiver (the default for every alert)")
    if route.get("matchers"):
        problems.append("route.matchers: the root route matches every alert and must not have matchers")
    _check_receivers(route, "route", seen, problems)
    return problems


def _check_receivers(route: dict[str, Any], where: str, known: set[str], problems: list[str]) -> None:
    receiver = route.get("receiver")
    if isinstance(receiver, str) and receiver not in known:
        problems.append(f"{where}.receiver: unknown receiver {receiver!r} (known: {', '.join(sorted(known))})")
    children = route.get("routes")
    for i, child in enumerate(children if isinstance(children, list | tuple) else ()):
        if isinstance(child, dict):
            _check_receivers(child, f"{where}.routes[{i}]", known, problems)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose field the last part of ``loc`` names (``receivers[0].slack_config`` → ReceiverConfig)."""
    model: type[BaseModel] | None = RoutingConfig
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        model = _inner_model(field.annotation) if field is not None else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _unknown_key(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc)
    if model is None:
        return "unknown key"
    known = sorted(f.alias or n for n, f in model.model_fields.items())
    key = str(loc[-1])
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    # `slack:`, `email:` (the receiver types as the docs name them) are `slack_configs`, `email_configs`
    close = close or [k for k in known if k.startswith(f"{key}_")][:1]
    if not close:
        return f"unknown key (allowed here: {', '.join(known)})"
    return f"unknown key: did you mean {close[0]!r}? (allowed here: {', '.join(known)})"


def _format_error(error: Any) -> str:
    parts = tuple(error.get("loc", ()))
    loc = error_path(parts, "")
    msg = _unknown_key(parts) if error.get("type") == "extra_forbidden" and parts else plain_message(error)
    return f"{loc}: {msg}" if loc else msg
