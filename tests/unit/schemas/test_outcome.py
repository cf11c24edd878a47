"""Outcomes: the JSONL reader/writer, one outcome per account, and outcomes announced by events."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.event import Event
from schemas.outcome import (
    AccountOutcome,
    OutcomeFileError,
    collect,
    outcomes_from_events,
    parse_outcome_event_option,
    read_outcomes,
    write_outcomes,
)


def _o(account: str, outcome: str, at: str) -> AccountOutcome:
    return AccountOutcome(account_id=account, outcome=outcome, at=at)  # type: ignore[arg-type]


def test_written_outcomes_read_back(tmp_path: Path) -> None:
    """What write_outcomes writes, read_outcomes reads, one per account."""
    path = tmp_path / "outcomes.jsonl"
    written = [_o("a", "churned", "2026-03-01T12:00:00Z"), _o("b", "renewed", "2026-04-01T00:00:00Z")]
    assert write_outcomes(path, written) == 2
    outcomes = read_outcomes(path)
    assert outcomes.by_account == {"a": written[0], "b": written[1]}
    assert outcomes.churned == {"a": written[0].ts}


def test_a_churn_outranks_renewals_and_the_first_churn_counts() -> None:
    """Renewed then churned is churned; two churns keep the earlier; two renewals keep the later."""
    outcomes = collect(
        [
            _o("a", "renewed", "2026-01-01T00:00:00Z"),
            _o("a", "churned", "2026-05-01T00:00:00Z"),
            _o("a", "churned", "2026-03-01T00:00:00Z"),
            _o("b", "renewed", "2026-01-01T00:00:00Z"),
            _o("b", "expanded", "2026-02-01T00:00:00Z"),
        ]
    )
    assert outcomes.by_account["a"].at == "2026-03-01T00:00:00Z"
    assert outcomes.by_account["b"].outcome == "expanded"


def test_a_bad_line_names_file_line_and_field(tmp_path: Path) -> None:
    """An unknown outcome is an error naming the file, the line and the field."""
    path = tmp_path / "outcomes.jsonl"
    path.write_text(
        '{"account_id": "a", "outcome": "churned", "at": "2026-03-01T00:00:00Z"}\n\n'
        '{"account_id": "b", "outcome": "left", "at": "2026-03-01T00:00:00Z"}\n'
    )
    with pytest.raises(OutcomeFileError, match=r"outcomes.jsonl: line 3: outcome"):
        read_outcomes(path)


def test_a_timestamp_without_offset_is_rejected() -> None:
    """``at`` is RFC 3339 with an offset, like every timestamp in Preempt."""
    with pytest.raises(ValueError, match="RFC 3339"):
        _o("a", "churned", "2026-03-01T00:00:00")


def test_outcome_events_become_outcomes() -> None:
    """Subscription Cancelled / Renewed events are read as churned / renewed; other events are ignored."""
    events = [
        Event("1", "Subscription Renewed", "a", 1_000.0),
        Event("2", "Login", "a", 2_000.0),
        Event("3", "Subscription Cancelled", "b", 3_000.0),
    ]
    outcomes = outcomes_from_events(events)
    assert {a: o.outcome for a, o in outcomes.by_account.items()} == {"a": "renewed", "b": "churned"}
    assert outcomes.churned == {"b": 3_000.0}


def test_outcome_event_names_are_configurable() -> None:
    """A product that says "Account Closed" maps it to churned with NAME=OUTCOME."""
    name, kind = parse_outcome_event_option("Account Closed=churned")
    assert (name, kind) == ("Account Closed", "churned")
    outcomes = outcomes_from_events([Event("1", "Account Closed", "a", 5.0)], {name: kind})
    assert outcomes.churned == {"a": 5.0}
    with pytest.raises(ValueError, match="NAME=OUTCOME"):
        parse_outcome_event_option("Account Closed=gone")
