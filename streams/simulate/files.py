"""Writing a simulation to JSONL files for ``preempt backtest`` (one JSON object per line)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from schemas.event import Event, format_ts
from schemas.outcome import AccountOutcome, write_outcomes
from streams.simulate.accounts import SimAccount


def account_line(acc: SimAccount) -> bytes:
    """The account record as one JSON line (the ``preempt.accounts`` value)."""
    return orjson.dumps(acc.account.model_dump(mode="json")) + b"\n"


def event_line(event: Event) -> bytes:
    """The event in the canonical wire shape as one JSON line."""
    return orjson.dumps(event.to_json_dict()) + b"\n"


def write_accounts(path: Path, accounts: Iterable[SimAccount]) -> int:
    """Write every account record; returns the bytes written."""
    data = b"".join(account_line(a) for a in accounts)
    path.write_bytes(data)
    return len(data)


def write_events(path: Path, events: Iterable[Event]) -> int:
    """Stream the events to ``path``; returns the bytes written."""
    written = 0
    with path.open("wb") as out:
        for event in events:
            line = event_line(event)
            out.write(line)
            written += len(line)
    return written


def account_outcome(acc: SimAccount, start_ms: int) -> AccountOutcome:
    """The ground truth of one simulated account (``schemas.outcome``) for a run from ``start_ms``."""
    outcome = acc.outcome
    return AccountOutcome(
        account_id=acc.account_id, outcome=outcome.outcome, at=format_ts(outcome.at_ms(start_ms) / 1000)
    )


def write_account_outcomes(path: Path, accounts: Iterable[SimAccount], start_ms: int) -> int:
    """Write every account's outcome as JSONL; returns how many."""
    return write_outcomes(path, (account_outcome(a, start_ms) for a in accounts))
