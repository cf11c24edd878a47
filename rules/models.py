"""The typed rule language (docs/rules.md): one frozen pydantic model per kind.

``Rule`` is a discriminated union on ``kind``; every model forbids unknown fields, so a typo in
a rule file is an error that names the field, never a silently ignored setting.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from rules.measures import check_measure
from rules.paths import check_path
from rules.risk.model import RiskModel
from rules.templates import check_template
from schemas.alert import Severity
from schemas.durations import Cooldown, Duration, format_duration
from schemas.event import MAX_EVENT_NAME_CHARS
from schemas.outcome import DEFAULT_OUTCOME_EVENTS, OutcomeKind

RULE_ID_PATTERN = r"^[a-z0-9-]+$"
MAX_PRIORITY = 1_000_000
"""The largest ``priority`` (a stack rank; 1 is the most important)."""
RuleId = Annotated[str, Field(pattern=RULE_ID_PATTERN, min_length=1, max_length=64)]
Template = Annotated[str, AfterValidator(check_template)]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("a title is required: one line a CSM reads, e.g. '{{ account.name }}: API errors are spiking'")
    return text


Title = Annotated[str, AfterValidator(_not_blank), AfterValidator(check_template)]


def label_text(value: object) -> object:
    """A label value YAML read as a number or a boolean, as the text it was written as (``tier: 1`` is
    ``"1"``, ``page: true`` is ``"true"``), as Prometheus and Alertmanager read label maps: labels are
    text that routes match as text. Anything else is left for the ``str`` check to name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


LabelValue = Annotated[str, BeforeValidator(label_text)]
MeasureText = Annotated[str, AfterValidator(check_measure)]
PropertyPath = Annotated[str, AfterValidator(check_path)]
MAX_WHERE_LIST = 1000


class _Strict(BaseModel):
    # .nan and .inf are YAML floats: a rule holding one would never fire (or always), silently
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


Scalar = str | int | float | bool | None


class WhereOps(_Strict):
    """Predicates on one dotted path; every op given must hold. A bare scalar means ``eq``, a bare list ``in``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False, strict=True)

    eq: Scalar = None
    ne: Scalar = None
    gt: float | str | None = None
    gte: float | str | None = None
    lt: float | str | None = None
    lte: float | str | None = None
    in_: list[Scalar] | None = Field(None, alias="in", max_length=MAX_WHERE_LIST)
    not_in: list[Scalar] | None = Field(None, max_length=MAX_WHERE_LIST)
    contains: Scalar = None
    exists: bool = True

    @field_validator("in_")
    @classmethod
    def _in_names_a_value(cls, choices: list[Scalar] | None) -> list[Scalar] | None:
        # no value is one of none: the rule would load and never fire
        if choices == []:
            raise ValueError("an empty list can never match: list the values to match, or leave the op out")
        return choices

    @model_validator(mode="after")
    def _at_least_one(self) -> WhereOps:
        if not self.model_fields_set:
            raise ValueError("give at least one op: eq ne gt gte lt lte in not_in contains exists")
        return self

    @model_validator(mode="after")
    def _can_hold(self) -> WhereOps:
        """Ops that no value can satisfy together: the rule would load and never fire."""
        given = self.model_fields_set
        if "exists" in given and self.exists is False:
            needs_a_value = sorted(("in" if op == "in_" else op) for op in given & _NEEDS_A_VALUE)
            if needs_a_value:
                raise ValueError(
                    f"exists: false with {', '.join(needs_a_value)} never matches: "
                    "a missing value has nothing to compare"
                )
        bounds = {op: getattr(self, op) for op in ("gt", "gte", "lt", "lte") if op in given}
        if len({isinstance(value, str) for value in bounds.values()}) > 1:
            raise ValueError(
                f"{' and '.join(f'{op}: {_shown(v)}' for op, v in bounds.items())} never match together: "
                "a value is a number or a string, not both (quote all the bounds, or none)"
            )
        lower = [(op, v) for op, v in bounds.items() if op in ("gt", "gte")]
        upper = [(op, v) for op, v in bounds.items() if op in ("lt", "lte")]
        for low_op, low in lower:
            for high_op, high in upper:
                if low > high or (low == high and (low_op == "gt" or high_op == "lt")):
                    raise ValueError(
                        f"{low_op}: {_shown(low)} and {high_op}: {_shown(high)} never match together: "
                        "no value lies between them"
                    )
        return self


def _number(value: Any) -> bool:
    return type(value) in (int, float)


_TEXT_ROOTS = frozenset({"event", "event_id", "account_id", "user_id"})


def _operand_never_fits(path: str, ops: WhereOps) -> str | None:
    """Why a predicate on an event field of one fixed type (``event``, ``event_id``, ``account_id``,
    ``user_id``: text; ``ts``: epoch seconds) can never hold, or always holds, for its operand; else None.

    Such a rule loaded and never fired (``ts: {gte: "2026-11-01T00:00:00Z"}`` compares a number with a
    string; ``user_id: 42`` a string with a number), which nobody sees until a churned account's
    alert is missed. ``properties`` and ``context`` hold any JSON, so their operands stay free."""
    if path not in _TEXT_ROOTS and path != "ts":
        return None
    text = path in _TEXT_ROOTS
    what = f"{path} is always text" if text else "ts is the event time in epoch seconds (a number)"
    for op in sorted(ops.model_fields_set - {"exists"}):
        operands = getattr(ops, op)
        listed = isinstance(operands, list)
        for operand in operands if listed else [operands]:
            if isinstance(operand, str) if text else type(operand) in (int, float):
                continue
            name = "in" if op == "in_" else op
            if operand is None and path == "user_id":
                instead = "exists: true" if op in ("ne", "not_in") else "exists: false"
                return f"{name}: null is never equal to a user_id (text when present); write {instead}"
            shown = json.dumps(operand, ensure_ascii=False)  # as YAML reads it: true, null, "2026-11-01"
            if listed:
                outcome = f"the item {shown} is never equal to it"
            else:
                outcome = f"{shown} always holds" if op == "ne" else f"{shown} never matches"
            if text and _number(operand):
                hint = f"; quote it ('{operand}')"
            elif not text and isinstance(operand, str):
                hint = "; compare it with a number, e.g. 1793491200 for 2026-11-01T00:00:00Z"
            else:
                hint = ""
            return f"{name}: {outcome}: {what}{hint}"
    return None


def _shown(value: Any) -> str:
    """An operand as the rule wrote it (a bound read as 10.0 from ``10`` shows as 10)."""
    if type(value) is float and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


_NEEDS_A_VALUE = frozenset({"eq", "gt", "gte", "lt", "lte", "in_", "contains"})
"""Ops that hold only for a value that is there (``ne`` and ``not_in`` also hold for a missing one)."""


def _scalar_means_eq(value: Any) -> Any:
    """A bare value means ``eq``; a bare list means ``in`` (any of them), as ``event: [A, B]`` does for names."""
    if isinstance(value, list):
        return {"in": value}
    return value if isinstance(value, dict) else {"eq": value}


Where = Annotated[WhereOps, BeforeValidator(_scalar_means_eq)]


class Match(_Strict):
    """Which events count: ``event`` (a name or a list; omitted = every event) and ``where``."""

    event: str | list[str] | None = None
    where: dict[PropertyPath, Where] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _names_alone(cls, data: Any) -> Any:
        """A match written as just an event name or a list of names (``start: Signed Up``, ``steps:
        [Payment Failed, Cancel Page Viewed]``) is ``{event: <it>}``: a match is names and an optional
        ``where``, and a newcomer writes the names alone. They were refused ("expected a mapping")."""
        if isinstance(data, str) or (isinstance(data, list) and all(isinstance(name, str) for name in data)):
            return {"event": data}
        return data

    @model_validator(mode="after")
    def _names_not_empty(self) -> Match:
        if isinstance(self.event, list) and not self.event:
            raise ValueError("event: give at least one event name (or leave event out to match all)")
        for name in self.event_names or ():
            # no event carries such a name (the event contract), so the rule would load and never fire
            if not 1 <= len(name) <= MAX_EVENT_NAME_CHARS:
                raise ValueError(
                    f"event: {name[:40]!r} can never match: an event name is 1 to {MAX_EVENT_NAME_CHARS} characters"
                )
        return self

    @model_validator(mode="after")
    def _operands_fit_the_field(self) -> Match:
        for path, ops in self.where.items():
            problem = _operand_never_fits(path, ops)
            if problem is not None:
                raise ValueError(f"where.{path}: {problem}")
        return self

    @property
    def event_names(self) -> frozenset[str] | None:
        """The event names this match accepts; ``None`` means any name."""
        if self.event is None:
            return None
        return frozenset([self.event] if isinstance(self.event, str) else self.event)


class RuleBase(_Strict):
    """Fields every kind has."""

    id: RuleId
    kind: str
    title: Title
    description: str = ""
    severity: Severity
    # Bounded: a stack rank past a million means nothing, and past 2^64 it broke the alert JSON
    # (the backtest died writing it) or reached consumers as a number they cannot read exactly.
    priority: int = Field(ge=1, le=MAX_PRIORITY)
    group_by: Literal["account", "user"] = "account"
    cooldown: Cooldown | None = None
    playbook: Template = ""
    summary: Template = Field("", description="the evidence as one sentence; default: built from the kind")
    labels: dict[str, LabelValue] = Field(default_factory=dict)
    enabled: bool = True

    @property
    def default_cooldown(self) -> float:
        """The cooldown when none is written: the rule's window (kinds override)."""
        return 0.0

    @property
    def effective_cooldown(self) -> float:
        """Minimum seconds between two alerts of this rule for the same key."""
        return self.cooldown if self.cooldown is not None else self.default_cooldown

    @property
    def references(self) -> tuple[str, ...]:
        """Ids of other rules this rule depends on (only ``composite`` has any)."""
        return ()


class _Windowed(RuleBase):
    window: Duration

    @property
    def default_cooldown(self) -> float:
        return self.window


class _Sliding(_Windowed):
    """The kinds over sliding windows (``rules.windows.BucketSpec.sliding``): under a minute they are
    counted in 1-second buckets, so such a window is a whole number of seconds (a 250 ms window
    covered a whole second)."""

    @field_validator("window")
    @classmethod
    def _whole_seconds_under_a_minute(cls, window: float) -> float:
        if window < 60 and window != int(window):
            raise ValueError(
                f"{format_duration(window)}: a sliding window under a minute is counted in whole seconds "
                "(1-second buckets); write e.g. '1s', '30s' or '45s'"
            )
        return window


class ThresholdRule(_Sliding):
    """Fires when the measure over the last ``window`` reaches ``min``."""

    kind: Literal["threshold"]
    match: Match
    measure: MeasureText = "count"
    min: float = Field(gt=0)


class RatioRule(_Sliding):
    """Fires when matching / ``denominator`` events over ``window`` reach ``min_ratio``."""

    kind: Literal["ratio"]
    match: Match
    denominator: Match
    min_ratio: float = Field(gt=0)
    min_denominator: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _reachable(self) -> RatioRule:
        # Every event the match counts also counts in the denominator (its names are among the denominator's,
        # which has no where): the ratio is at most 1, and a min_ratio above it, as "20" for 20 %, never fires.
        names, of = self.match.event_names, self.denominator.event_names
        within = not self.denominator.where and (of is None or (names is not None and names <= of))
        if within and self.min_ratio > 1:
            raise ValueError(
                f"min_ratio {_shown(self.min_ratio)} is never reached: every event the match counts is also a "
                "denominator event, so the ratio is at most 1; write a fraction (0.2 for 20 %)"
            )
        return self


class SpikeRule(_Sliding):
    """Fires when the measure over ``window`` is ≥ ``factor`` × the window before, and ≥ ``min``."""

    kind: Literal["spike"]
    match: Match
    measure: MeasureText = "count"
    factor: float = Field(gt=1)
    min: float = Field(1, gt=0)


class DropRule(_Windowed):
    """At each window end: fires when the window's measure is ``drop_pct`` below the baseline."""

    kind: Literal["drop"]
    match: Match
    measure: MeasureText = "count"
    baseline_windows: int = Field(4, ge=1, le=104)
    drop_pct: float = Field(gt=0, le=100)
    min_baseline: float = Field(1, ge=0)


class InactivityRule(RuleBase):
    """Fires when a key that was active has no matching event for ``after``."""

    kind: Literal["inactivity"]
    match: Match
    after: Duration

    @property
    def default_cooldown(self) -> float:
        return self.after


class AbsenceRule(RuleBase):
    """Fires when a ``start`` event is not followed by an ``expect`` event within ``within``."""

    kind: Literal["absence"]
    start: Match
    expect: Match
    within: Duration

    @property
    def default_cooldown(self) -> float:
        return self.within


class SequenceRule(RuleBase):
    """Fires when the ``steps`` happen in order within ``within``."""

    kind: Literal["sequence"]
    steps: list[Match] = Field(min_length=2, max_length=10)
    within: Duration

    @property
    def default_cooldown(self) -> float:
        return self.within


class AnyRule(RuleBase):
    """Fires on every matching event (subject to ``cooldown``, default none)."""

    kind: Literal["any"]
    match: Match


class ScoreComponent(_Strict):
    """One part of a score: a measure over the window or the latest value of a property.

    Its points scale linearly from ``zero_at`` (no points) to ``target`` (full points), clamped;
    ``target`` below ``zero_at`` scores "fewer is better" (errors).
    """

    name: str = Field(min_length=1, max_length=64)
    weight: float = Field(gt=0)
    match: Match
    measure: MeasureText | None = None
    latest: PropertyPath | None = None
    target: float
    zero_at: float = 0.0
    default: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _design_spellings(cls, data: Any) -> Any:
        """Read the spellings DESIGN.md's kinds table gives a component ("measure or latest value,
        target/scale") as the fields they stand for: ``measure: latest:<path>`` is ``latest: <path>``
        (the measure grammar's ``<form>:<path>``) and ``scale`` is ``target`` (the value that earns full
        points). A rule written from that table loaded with "unknown field 'scale'" before."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        measure = data.get("measure")
        if isinstance(measure, str) and measure.strip().startswith("latest:"):
            if "latest" in data:
                raise ValueError("give the latest value's path once: latest: <path> or measure: latest:<path>")
            data["latest"] = measure.strip().removeprefix("latest:").strip()
            del data["measure"]
        if "scale" in data:
            if "target" in data:
                raise ValueError("give target or scale (the same thing: the value that earns full points), not both")
            data["target"] = data.pop("scale")
        return data

    @model_validator(mode="after")
    def _one_source(self) -> ScoreComponent:
        if (self.measure is None) == (self.latest is None):
            raise ValueError("give exactly one of measure (over the window) or latest (a property path)")
        if self.target == self.zero_at:
            raise ValueError("target and zero_at must differ")
        return self


class ScoreRule(_Windowed):
    """An engagement score 0–100, computed every ``every``; fires below ``below`` or on a fall."""

    kind: Literal["score"]
    match: Match | None = None
    components: list[ScoreComponent] = Field(min_length=1, max_length=20)
    every: Duration = 86400.0
    below: float | None = Field(None, gt=0, le=100)
    drop_points: float | None = Field(None, gt=0, le=100)

    @model_validator(mode="after")
    def _consistent(self) -> ScoreRule:
        if self.below is None and self.drop_points is None:
            raise ValueError("give below, drop_points, or both")
        ratio = self.window / self.every
        if not ratio.is_integer() or ratio < 1 or ratio > 400:
            raise ValueError("window must be a whole multiple of every, at most 400 of them")
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError("component names must be unique")
        return self


class CompositeRule(RuleBase):
    """Fires when every rule in ``all_of`` fired for the same account within ``within``."""

    kind: Literal["composite"]
    group_by: Literal["account"] = "account"  # a composite combines alerts per account
    all_of: list[RuleId] = Field(min_length=2, max_length=10)
    within: Duration

    @model_validator(mode="after")
    def _distinct(self) -> CompositeRule:
        if len(set(self.all_of)) != len(self.all_of):
            raise ValueError("all_of names a rule twice")
        return self

    @property
    def default_cooldown(self) -> float:
        return self.within

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(self.all_of)


class RiskRule(RuleBase):
    """Fires when a learned model's calibrated churn risk for the account reaches ``threshold``.

    ``model`` is a file made by ``preempt train``, relative to the rule file; the loader reads it
    (``rules.loader``) and keeps it on the rule. Scored at every UTC midnight. After firing, the
    rule re-arms only once the risk falls below ``threshold − hysteresis`` (default 0.05, or half the
    threshold when that is smaller: a threshold of 0.05 or below is valid without writing one);
    ``cooldown`` (default 30 days) spaces alerts further: a crossing within it is held back (the rule stays armed)
    and alerts at the first tick after it if the risk is still at or above ``threshold``. No alert before the
    account has ``warmup`` of history.

    ``outcome_events`` names the events that announce an account's outcome, as ``preempt evaluate
    --outcome-event`` does (default: ``Subscription Cancelled`` churned, ``Subscription Renewed`` /
    ``Contracted`` / ``Expanded``): after a churn event the rule no longer alerts the account (counted
    as suppressed, ``after_churn``) until an event of another outcome (a reactivation); ``{}`` turns
    this off.
    """

    kind: Literal["risk"]
    group_by: Literal["account"] = "account"  # risk is a property of the account
    model: str = Field(min_length=1, description="path to the model JSON, relative to the rule file")
    threshold: float = Field(gt=0, lt=1)
    hysteresis: float = Field(0.05, ge=0, lt=1)
    warmup: Duration = 14 * 86400.0
    top_features: int = Field(3, ge=1, le=10)
    match: Match | None = None
    outcome_events: dict[Annotated[str, Field(min_length=1, max_length=MAX_EVENT_NAME_CHARS)], OutcomeKind] = Field(
        default_factory=lambda: dict(DEFAULT_OUTCOME_EVENTS),
        description="event name -> outcome; after a churned one the rule does not alert the account",
    )
    _loaded_model: RiskModel | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _default_hysteresis(cls, data: Any) -> Any:
        """Without ``hysteresis``, 0.05 — or half the threshold when it is 0.05 or less, which 0.05 would equal
        or exceed (a threshold above 0.05 keeps 0.05, as before: its rules re-arm as they did)."""
        if isinstance(data, dict) and "hysteresis" not in data:
            threshold = data.get("threshold")
            if isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 < threshold <= 0.05:
                return {**data, "hysteresis": threshold / 2}
        return data

    @model_validator(mode="after")
    def _hysteresis_below_threshold(self) -> RiskRule:
        if self.hysteresis >= self.threshold:
            raise ValueError("hysteresis must be smaller than threshold")
        return self

    @property
    def default_cooldown(self) -> float:
        return 30 * 86400.0

    @property
    def loaded_model(self) -> RiskModel | None:
        """The model the loader read for this rule (None for a rule built without a file)."""
        return self._loaded_model

    def attach_model(self, model: RiskModel) -> None:
        """Keep the model read from ``model`` (called by the loader, which knows the rule's file)."""
        self._loaded_model = model


Rule = Annotated[
    ThresholdRule
    | RatioRule
    | SpikeRule
    | DropRule
    | InactivityRule
    | AbsenceRule
    | SequenceRule
    | AnyRule
    | ScoreRule
    | CompositeRule
    | RiskRule,
    Field(discriminator="kind"),
]
"""Any rule; pydantic picks the model from ``kind``."""

KINDS = (
    "threshold",
    "ratio",
    "spike",
    "drop",
    "inactivity",
    "absence",
    "sequence",
    "any",
    "score",
    "composite",
    "risk",
)
