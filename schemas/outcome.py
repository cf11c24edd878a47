"""Outcomes: the ground truth per account that alerts are measured against (docs/prescient.md, "Outcomes").

One JSON object a line::

    {"account_id": "acme", "outcome": "churned", "at": "2027-02-14T00:00:00Z"}

``outcome`` is ``churned`` or ``renewed``, or the softer ``contracted`` (renewed smaller) and
``expanded`` (renewed larger). ``preempt simulate --outcomes-output`` writes such a file; real
deployments can instead send outcomes as ordinary events (:data:`DEFAULT_OUTCOME_EVENTS`), which
:func:`outcomes_from_events` turns into the same records. Both paths end in
:func:`read_outcomes` / :func:`outcomes_from_events`, the one reader every command uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.error_text import unreadable
from schemas.errors import PreemptError
from schemas.event import Event, format_ts
from schemas.jsonl import first_error, read_file
from schemas.rfc3339 import parse_rfc3339

OutcomeKind = Literal["churned", "renewed", "contracted", "expanded"]
OUTCOME_KINDS: tuple[str, ...] = ("churned", "renewed", "contracted", "expanded")

DEFAULT_OUTCOME_EVENTS: dict[str, OutcomeKind] = {
    "Subscription Cancelled": "churned",
    "Subscription Renewed": "renewed",
    "Subscription Contracted": "contracted",
    "Subscription Expanded": "expanded",
}
"""Event name → outcome, for outcomes that arrive as events (override per command)."""


class OutcomeFileError(PreemptError):
    """An outcomes file (or an events file read for outcomes) cannot be used; names file and line."""


class AccountOutcome(BaseModel):
    """What happened to one account, and when (RFC 3339 with an offset)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Preempt account outcome")

    account_id: str = Field(min_length=1, max_length=256)
    outcome: OutcomeKind
    at: str = Field(description="RFC 3339 time of the outcome, e.g. 2027-02-14T00:00:00Z")

    @field_validator("at")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        parse_rfc3339(value)
        return value

    @property
    def ts(self) -> float:
        """``at`` in epoch seconds."""
        return parse_rfc3339(self.at)

    @property
    def churned(self) -> bool:
        """Whether the account left."""
        return self.outcome == "churned"


@dataclass(frozen=True, slots=True)
class Outcomes:
    """One outcome per account: the first churn if there is one, else the latest other outcome."""

    by_account: Mapping[str, AccountOutcome]

    def churn_time(self, account_id: str) -> float | None:
        """When the account churned, or None."""
        outcome = self.by_account.get(account_id)
        return outcome.ts if outcome is not None and outcome.churned else None

    @property
    def churned(self) -> dict[str, float]:
        """account id → churn time, for every churned account."""
        return {a: o.ts for a, o in self.by_account.items() if o.churned}


def _keep(current: AccountOutcome | None, new: AccountOutcome) -> AccountOutcome:
    """Which of two outcomes of one account counts: a churn beats the rest; earlier churn first."""
    if current is None:
        return new
    if current.churned != new.churned:
        return current if current.churned else new
    if current.churned:
        return current if current.ts <= new.ts else new
    return current if current.ts >= new.ts else new


def collect(outcomes: Iterable[AccountOutcome]) -> Outcomes:
    """Reduce several records per account (renewed twice, then churned) to one each."""
    by_account: dict[str, AccountOutcome] = {}
    for outcome in outcomes:
        by_account[outcome.account_id] = _keep(by_account.get(outcome.account_id), outcome)
    return Outcomes(by_account)


def read_outcomes(path: Path) -> Outcomes:
    """Read an outcomes JSONL file; ``OutcomeFileError`` names the file and line of the first problem."""
    return collect(_outcome_lines(path))


def _outcome_lines(path: Path) -> Iterator[AccountOutcome]:
    try:
        for line in read_file(path):
            try:
                yield AccountOutcome.model_validate_json(line.raw)
            except ValidationError as exc:
                raise OutcomeFileError(
                    f"{path}: line {line.number}: {first_error(exc)} "
                    '(expected {"account_id": …, "outcome": "churned"|"renewed", "at": RFC 3339})'
                ) from None
    except OSError as exc:
        raise OutcomeFileError(f"{path}: cannot read: {unreadable(exc)}") from None


def outcome_line(outcome: AccountOutcome) -> bytes:
    """One outcome as one JSON line."""
    return orjson.dumps(outcome.model_dump(mode="json")) + b"\n"


def write_outcomes(path: Path, outcomes: Iterable[AccountOutcome]) -> int:
    """Write outcomes as JSONL; returns how many."""
    count = 0
    with path.open("wb") as out:
        for outcome in outcomes:
            out.write(outcome_line(outcome))
            count += 1
    return count


def outcome_of_event(event: Event, names: Mapping[str, OutcomeKind]) -> AccountOutcome | None:
    """The outcome an event announces (``Subscription Cancelled`` → churned), or None."""
    kind = names.get(event.event)
    if kind is None:
        return None
    return AccountOutcome(account_id=event.account_id, outcome=kind, at=format_ts(event.ts))


def outcomes_from_events(events: Iterable[Event], names: Mapping[str, OutcomeKind] | None = None) -> Outcomes:
    """Outcomes announced by events, e.g. ``Subscription Cancelled`` (names: :data:`DEFAULT_OUTCOME_EVENTS`)."""
    mapping = DEFAULT_OUTCOME_EVENTS if names is None else names
    return collect(o for o in (outcome_of_event(e, mapping) for e in events) if o is not None)


def parse_outcome_event_option(value: str) -> tuple[str, OutcomeKind]:
    """``"Subscription Cancelled=churned"`` → the pair; ``ValueError`` with a sentence otherwise."""
    name, sep, kind = value.rpartition("=")
    if not sep or not name.strip() or kind not in OUTCOME_KINDS:
        raise ValueError(f"{value!r}: write EVENT NAME=OUTCOME with OUTCOME one of {', '.join(OUTCOME_KINDS)}")
    return name.strip(), kind  # type: ignore[return-value]
