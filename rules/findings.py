"""``Finding``: one rule firing for one key, before enrichment into an alert."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from schemas.event import format_ts

MAX_SAMPLE_EVENT_IDS = 5


def alert_id_for(rule_id: str, account_id: str, user_id: str | None, episode: str) -> str:
    """The alert identity: rule, key and episode only — never wall-clock time.

    The parts are joined with ``|``; a ``|`` or ``\\`` inside a part is escaped with ``\\`` so that
    two different keys never join to the same text (account ``a|`` with user ``b`` against account
    ``a`` with user ``|b``). Parts without either character join exactly as before the escaping
    existed, so the ids of alerts already delivered keep their ids unless a part held one.
    """
    text = "|".join(_escaped(part) for part in (rule_id, account_id, user_id or "", episode))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _escaped(part: str) -> str:
    if "|" not in part and "\\" not in part:
        return part
    return part.replace("\\", "\\\\").replace("|", "\\|")


@dataclass(slots=True, frozen=True)
class Finding:
    """One rule firing for one key. ``fired_at`` is the event time of the episode (epoch s)."""

    alert_id: str
    rule_id: str
    kind: str
    account_id: str
    user_id: str | None
    episode: str
    fired_at: float
    window_start: float | None
    window_end: float | None
    evidence: dict[str, Any]
    newest_event_ts: float | None


def make_finding(
    *,
    rule_id: str,
    kind: str,
    account_id: str,
    key: str,
    fired_at: float,
    evidence: dict[str, Any],
    episode: str | None = None,
    window_start: float | None = None,
    window_end: float | None = None,
    newest_event_ts: float | None = None,
) -> Finding:
    """Build a finding; ``key`` is ``""`` for the account or the user id; episode defaults to fired_at."""
    user_id = key or None
    episode = episode if episode is not None else format_ts(fired_at)
    return Finding(
        alert_id=alert_id_for(rule_id, account_id, user_id, episode),
        rule_id=rule_id,
        kind=kind,
        account_id=account_id,
        user_id=user_id,
        episode=episode,
        fired_at=fired_at,
        window_start=window_start,
        window_end=window_end,
        evidence=evidence,
        newest_event_ts=newest_event_ts,
    )
