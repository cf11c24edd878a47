"""``AccountState``: everything the engine remembers about one account, and its compact codec.

Bounds (see docs/rules.md and docs/pipeline.md): ``seen`` holds event ids of the dedup horizon, at
most ``max_seen_ids`` (default :data:`DEFAULT_MAX_SEEN_IDS`), each at most :data:`SEEN_ID_CHARS`
characters (longer ids are kept as a digest, :func:`seen_key`); ``buffer`` holds events not yet
passed by the watermark (about ``allowed_lateness`` worth); each rule's state is bounded by its
kind (bucketed windows).

The encoding is versioned (``"v"``). Seen ids are stored as ``[[id, ts], …]`` (version 1, and
version 2 before the object form) or ``{id: ts, …}`` (version 2 now): both read alike.
Version 2 (written since typed rule state) stores each rule's
state as orjson writes its dataclass (field names as keys); version 1, written before, stored
dicts with one-letter keys. Both are read: each kind's state class reads its own (see
``rules.kinds.base``), so a worker restarted on this code continues from the state the old one
stored. The envelope (account, clock, seen ids, buffer, cooldowns) is the same in both.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from rules.kinds.base import RuleState
from schemas.errors import PreemptError
from schemas.event import Event

STATE_VERSION = 2
"""The version :func:`encode_state` writes."""
READABLE_VERSIONS = frozenset({1, 2})
"""The versions :func:`decode_state` reads."""
DEFAULT_MAX_SEEN_IDS = 5_000
"""Event ids remembered per account for de-duplication (the oldest are forgotten first).

Past the bound a re-sent copy of a forgotten event is still dropped when it is older than the
account's clock (as late); it is counted twice only if more than this many events of one account
arrive within the allowed lateness (plus the future skew) of each other. 5,000 ids of 32 hex
characters encode to about 280 KB: the state stays well under Kafka's 1 MB record limit.
"""
SEEN_ID_CHARS = 64
"""Longer event ids are remembered by a 32-character digest, so one id costs at most ~90 bytes."""


def seen_key(event_id: str) -> str:
    """What ``AccountState.seen`` stores for ``event_id``: itself, or a digest when it is long."""
    if len(event_id) <= SEEN_ID_CHARS:
        return event_id
    return "#" + hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class StateDecodeError(PreemptError):
    """Serialized account state that this engine cannot read (corrupt or of an unknown version)."""


class RuleStateReader(Protocol):
    """What :func:`decode_state` needs of each loaded rule (its evaluator, ``rules.kinds.base.Evaluator``)."""

    def new_state(self) -> RuleState:
        """A fresh state, for a rule that is new or whose definition changed."""
        ...

    def read_state(self, doc: Any, version: int) -> RuleState:
        """The rule's state from its stored form in encoding ``version``."""
        ...


@dataclass(slots=True)
class AccountState:
    """All rules' state for one account (mutable; owned by one caller at a time)."""

    account_id: str | None = None
    finalized_until: float = -math.inf
    seen: dict[str, float] = field(default_factory=dict)
    """Event id (:func:`seen_key`) → event time, in arrival order."""
    buffer: list[tuple[float, str, Event]] = field(default_factory=list)
    rules: dict[str, RuleState] = field(default_factory=dict)
    cooldowns: dict[str, dict[str, float]] = field(default_factory=dict)
    due: float = math.inf
    """Earliest deadline of any rule (a lower bound); derived, so not serialized."""
    seen_order: deque[str] = field(default_factory=deque)
    """The keys of ``seen`` in the same order; derived, so not serialized. The engine forgets ids
    from the front, and walking a dict from its front steps over a hole per key deleted before
    (O(ids) per event on a busy account), so the front is read from here."""

    def __post_init__(self) -> None:
        if len(self.seen_order) != len(self.seen):
            self.seen_order = deque(self.seen)


def buffered_row(ev: Event) -> list[Any]:
    """How :func:`encode_state` writes one buffered event (its size is what the event adds to the state)."""
    return [ev.ts, ev.event_id, ev.event, ev.account_id, ev.user_id, ev.properties, ev.context]


def encode_state(
    state: AccountState,
    fingerprints: Mapping[str, str],
    version: int = STATE_VERSION,
    state_fingerprints: Mapping[str, str] | None = None,
) -> bytes:
    """Serialize to compact JSON bytes; each rule's state is tagged with its rule's fingerprint.

    ``state_fingerprints`` (version 2 only): a second tag per rule, of the fields that decide what
    it remembers (``rules.engine.state_fingerprint``), written third in the rule's entry: a rule
    edited only where people read it (title, playbook…) reads its state back by it. Readers before
    it compare the first tag and ignore the third.

    ``version`` 1 writes what workers from before typed rule state read: for the first release
    with typed state during a rolling upgrade, when a partition can move back to an old worker.
    """
    if version not in READABLE_VERSIONS:
        raise ValueError(f"cannot write account state version {version!r}")
    if version == STATE_VERSION and state_fingerprints:
        rules: dict[str, list[Any]] = {
            rule_id: [fingerprints[rule_id], rs, state_fingerprints[rule_id]] for rule_id, rs in state.rules.items()
        }
    else:
        rules = {
            rule_id: [fingerprints[rule_id], rs if version == STATE_VERSION else rs.to_version_1()]
            for rule_id, rs in state.rules.items()
        }
    doc = {
        "v": version,
        "a": state.account_id,
        "f": None if state.finalized_until == -math.inf else state.finalized_until,
        # Version 2 writes the seen ids as a JSON object (id → event time, in arrival order), which
        # orjson encodes from the dict itself: the list of pairs cost 3-4x as much to build and
        # encode, and the ids are most of a busy account's state. Both forms read as
        # ``dict(doc["s"])`` (workers of either form read the other's states); version 1 keeps the
        # pairs its readers expect.
        "s": state.seen if version == STATE_VERSION else list(state.seen.items()),
        "b": [buffered_row(ev) for _, _, ev in state.buffer],
        "r": rules,
        "c": state.cooldowns,
    }
    return orjson.dumps(doc)


def decode_state(
    data: bytes,
    fingerprints: Mapping[str, str],
    readers: Mapping[str, RuleStateReader],
    state_fingerprints: Mapping[str, str] | None = None,
) -> AccountState:
    """Read bytes from :func:`encode_state`, of this version or an older readable one.

    A rule whose definition changed (different fingerprint, and no matching ``state_fingerprints``
    tag: see :func:`encode_state`) or that is new starts from ``readers[rule_id].new_state()``;
    state of rules no longer loaded is dropped.
    """
    by_state = state_fingerprints or {}
    try:
        doc: dict[str, Any] = orjson.loads(data)
        version = doc.get("v")
        if version not in READABLE_VERSIONS:
            readable = ", ".join(str(v) for v in sorted(READABLE_VERSIONS))
            raise StateDecodeError(f"account state version {version!r}; this engine reads {readable}")
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
            reader = readers[rule_id]
            fits = entry is not None and (
                entry[0] == fingerprint or (len(entry) > 2 and entry[2] == by_state.get(rule_id))
            )
            rules[rule_id] = reader.read_state(entry[1], version) if fits else reader.new_state()
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
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateDecodeError(f"unreadable account state: {type(exc).__name__}: {exc}") from exc
