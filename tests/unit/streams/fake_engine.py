"""A small stand-in for ``rules.engine.RuleEngine`` that honours the engine contract's surface.

Two rules: ``three-errors`` fires on the third ``Error`` event of an account (once), and
``quiet`` fires when an account that was active sends nothing for ``QUIET_AFTER`` seconds.
Events are buffered until the watermark passes them, exactly as the contract says.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from rules.engine import EventOutcome
from schemas.account import Account
from schemas.alert import Alert, AlertAccount
from schemas.event import Event, format_ts

QUIET_AFTER = 60.0


@dataclass(slots=True)
class FakeFinding:
    alert_id: str
    rule_id: str
    account_id: str
    episode: str
    fired_at: float
    newest_event_ts: float | None


@dataclass
class FakeState:
    seen: list[str] = field(default_factory=list)
    buffered: list[tuple[float, str, str]] = field(default_factory=list)
    finalized_until: float = 0.0
    errors: int = 0
    last_ts: float | None = None
    account_id: str = ""


def _finding(rule_id: str, account_id: str, episode: float, newest: float | None) -> FakeFinding:
    ep = format_ts(episode)
    alert_id = hashlib.sha256(f"{rule_id}|{account_id}||{ep}".encode()).hexdigest()[:32]
    return FakeFinding(alert_id, rule_id, account_id, ep, episode, newest)


class FakeEngine:
    """The contract's RuleEngine surface over two hard-coded rules."""

    suppressed_by_cooldown = 0
    """Findings a cooldown dropped (the fake has no cooldown; a test may set it)."""
    states_restarted: dict[str, int] = {}  # noqa: RUF012 (read only: the fake's rules never restart a state)

    def rules_missing_their_events(self, at_least: int) -> dict[str, int]:
        return {}  # the fake's rules have no model

    def new_state(self) -> FakeState:
        return FakeState()

    def on_event(
        self, state: FakeState, event: Event, watermark: float, late_before: float | None = None
    ) -> tuple[EventOutcome, list[FakeFinding]]:
        if event.event_id in state.seen:
            return EventOutcome.DUPLICATE, []
        if event.ts < max(state.finalized_until, late_before if late_before is not None else watermark):
            return EventOutcome.LATE, []
        state.seen.append(event.event_id)
        state.account_id = event.account_id
        state.buffered.append((event.ts, event.event_id, event.event))
        return EventOutcome.ACCEPTED, self.advance(state, watermark)

    def advance(self, state: FakeState, watermark: float) -> list[FakeFinding]:
        out: list[FakeFinding] = []
        state.buffered.sort()
        while True:
            deadline = None if state.last_ts is None else state.last_ts + QUIET_AFTER
            nxt = state.buffered[0][0] if state.buffered else None
            if deadline is not None and deadline <= watermark and (nxt is None or deadline < nxt):
                out.append(_finding("quiet", state.account_id, deadline, state.last_ts))
                state.last_ts = None
                continue
            if nxt is None or nxt > watermark:
                break
            ts, _, name = state.buffered.pop(0)
            state.last_ts = ts
            if name == "Error":
                state.errors += 1
                if state.errors == 3:
                    out.append(_finding("three-errors", state.account_id, ts, ts))
        state.finalized_until = max(state.finalized_until, watermark)
        return out

    def next_wakeup(self, state: FakeState) -> float | None:
        times = [t for t in (state.buffered[0][0] if state.buffered else None,) if t is not None]
        if state.last_ts is not None:
            times.append(state.last_ts + QUIET_AFTER)
        return min(times) if times else None

    def bound_buffer(self, state: FakeState, max_bytes: int) -> tuple[int, int, list[FakeFinding]]:
        """Apply the oldest buffered events while the buffer (as JSON) takes more than half of ``max_bytes``."""
        size = len(json.dumps(state.buffered))
        if size <= max_bytes:
            return 0, size, []
        state.buffered.sort()
        before, out = len(state.buffered), []
        while state.buffered and len(json.dumps(state.buffered)) > max_bytes // 2:
            out += self.advance(state, state.buffered[0][0])
        return before - len(state.buffered), len(json.dumps(state.buffered)), out

    def dumps(self, state: FakeState) -> bytes:
        return json.dumps(state.__dict__).encode()

    def loads(self, data: bytes) -> FakeState:
        raw: dict[str, Any] = json.loads(data)
        raw["buffered"] = [tuple(b) for b in raw["buffered"]]
        return FakeState(**raw)

    def to_alert(self, finding: FakeFinding, account: Account | None, emitted_at: float) -> Alert:
        ctx = AlertAccount() if account is None else AlertAccount(name=account.name, tier=account.tier)
        return Alert(
            alert_id=finding.alert_id,
            rule_id=finding.rule_id,
            kind="threshold" if finding.rule_id == "three-errors" else "inactivity",
            title=f"{finding.rule_id} for {finding.account_id}",
            severity="high",
            priority=1,
            account_id=finding.account_id,
            account=ctx,
            fired_at=finding.episode,
            emitted_at=format_ts(emitted_at),
        )
