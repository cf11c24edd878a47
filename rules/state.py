"""``AccountState``: everything the engine remembers about one account, and its compact codec.

Bounds (see docs/rules.md): ``seen`` holds event ids of the dedup horizon, at most
``max_seen_ids``; ``buffer`` holds events not yet passed by the watermark (about
``allowed_lateness`` worth); each rule's state is bounded by its kind (bucketed windows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from rules.kinds.base import RuleState
from schemas.errors import PreemptError
from schemas.event import Event

STATE_VERSION = 1


class StateDecodeError(PreemptError):
    """Serialized account state that this engine cannot read (corrupt or of an unknown version)."""


@dataclass(slots=True)
class AccountState:
    """All rules' state for one account (mutable; owned by one caller at a time)."""

    account_id: str | None = None
    finalized_until: float = -math.inf
    seen: dict[str, float] = field(default_factory=dict)
    buffer: list[tuple[float, str, Event]] = field(default_factory=list)
    rules: dict[str, RuleState] = field(default_factory=dict)
    cooldowns: dict[str, dict[str, float]] = field(default_factory=dict)
    due: float = math.inf
    """Earliest deadline of any rule (a lower bound); derived, so not serialized."""


def encode_state(state: AccountState, fingerprints: Mapping[str, str]) -> bytes:
    """Serialize to compact JSON bytes; each rule's state is tagged with its rule's fingerprint."""
    doc = {
        "v": STATE_VERSION,
        "a": state.account_id,
        "f": None if state.finalized_until == -math.inf else state.finalized_until,
        "s": list(state.seen.items()),
        "b": [
            [ev.ts, ev.event_id, ev.event, ev.account_id, ev.user_id, ev.properties, ev.context]
            for _, _, ev in state.buffer
        ],
        "r": {rule_id: [fingerprints[rule_id], rs] for rule_id, rs in state.rules.items()},
        "c": state.cooldowns,
    }
    return orjson.dumps(doc)


def decode_state(data: bytes, fingerprints: Mapping[str, str], fresh: Mapping[str, RuleState]) -> AccountState:
    """Read bytes from :func:`encode_state`.

    A rule whose definition changed (different fingerprint) or that is new starts from
    ``fresh[rule_id]``; state of rules no longer loaded is dropped.
    """
    try:
        doc: dict[str, Any] = orjson.loads(data)
        if doc.get("v") != STATE_VERSION:
            raise StateDecodeError(f"account state version {doc.get('v')!r}; this engine reads {STATE_VERSION}")
        buffer = [
            (
                ts,
                event_id,
                Event(
                    event_id=event_id, event=name, account_id=acct, ts=ts, user_id=user, properties=props, context=ctx
                ),
            )
            for ts, event_id, name, acct, user, props, ctx in doc["b"]
        ]
        rules: dict[str, RuleState] = {}
        stored = doc["r"]
        for rule_id, fingerprint in fingerprints.items():
            entry = stored.get(rule_id)
            rules[rule_id] = entry[1] if entry is not None and entry[0] == fingerprint else fresh[rule_id]
        cooldowns = {rule_id: table for rule_id, table in doc["c"].items() if rule_id in fingerprints}
        return AccountState(
            account_id=doc["a"],
            finalized_until=-math.inf if doc["f"] is None else float(doc["f"]),
            seen=dict(doc["s"]),
            buffer=buffer,
            rules=rules,
            cooldowns=cooldowns,
        )
    except StateDecodeError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StateDecodeError(f"unreadable account state: {type(exc).__name__}: {exc}") from exc
