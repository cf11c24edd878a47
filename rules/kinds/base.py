"""The one protocol every rule kind implements, and the small pieces they share.

Who calls it: only ``rules.engine.RuleEngine``, which feeds each evaluator the events of one
account in event-time order — a rule's deadlines up to time t are always fired
(``advance_to(state, t)``) before an event stamped t is applied (``on_event``). So a kind never
sees time go backwards and never has to sort.

A rule's state is a plain JSON-ready dict (str keys, lists, numbers, None): the engine
serializes it as is. Per-key state lives under ``state["k"][key]`` where the key is ``""`` for
``group_by: account`` and the user id for ``group_by: user``. ``state["n"]``, when a kind has
deadlines, is a lower bound of its earliest deadline (exact after every ``advance_to``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from rules.findings import MAX_SAMPLE_EVENT_IDS, Finding
from rules.models import RuleBase
from schemas.event import Event

RuleState = dict[str, Any]


class Evaluator(Protocol):
    """One rule's behaviour: pure functions of (state, event or time) → findings."""

    @property
    def rule(self) -> RuleBase:
        """The validated rule this evaluator runs."""
        ...

    @property
    def event_names(self) -> frozenset[str] | None:
        """Event names that can matter to this rule (routing); ``None`` means every event."""
        ...

    @property
    def has_deadlines(self) -> bool:
        """Whether ``advance_to`` can ever fire or change anything."""
        ...

    def new_state(self) -> RuleState:
        """A fresh state for one account."""
        ...

    def on_event(self, state: RuleState, event: Event) -> list[Finding]:
        """Apply one event (deadlines before its time were already fired).

        A kind whose class sets ``takes_cooldowns = True`` is called with a third argument,
        ``cooldowns``: the engine's cooldown table of this rule for the account (key → time of
        the last finding let through, or None), to skip building a finding the engine would drop
        (``EvaluatorBase.cooled``). It never changes the state the event leaves.
        """
        ...

    def advance_to(self, state: RuleState, now: float, account_id: str) -> list[Finding]:
        """Fire every deadline ``<= now``."""
        ...

    def next_deadline(self, state: RuleState) -> float | None:
        """A lower bound of the earliest pending deadline; ``None`` when there is none."""
        ...

    def on_finding(self, state: RuleState, finding: Finding) -> list[Finding]:
        """Another rule fired for this account (only ``composite`` listens)."""
        ...


class EvaluatorBase:
    """No-op defaults, so each kind writes only what it does."""

    rule: RuleBase
    event_names: frozenset[str] | None = None
    has_deadlines = False
    takes_cooldowns = False
    """True: ``on_event`` accepts ``cooldowns`` (see ``Evaluator.on_event``)."""
    suppressed = 0
    """Findings not built because ``cooled`` said the engine's cooldown would drop them."""

    def cooled(self, cooldowns: Mapping[str, float] | None, key: str, fired_at: float) -> bool:
        """Whether the engine's cooldown will drop a finding for ``key`` at ``fired_at`` (counted).

        The same test as ``RuleEngine._emit``: called by kinds before they build a finding, since
        building one (alert id hash, evidence, samples) costs more than the rest of an event.
        """
        if cooldowns is not None:
            last = cooldowns.get(key)
            cooldown = self.rule.effective_cooldown
            if last is not None and cooldown > 0 and fired_at - last < cooldown:
                self.suppressed += 1
                return True
        return False

    def new_state(self) -> RuleState:
        return {"k": {}}

    def advance_to(self, state: RuleState, now: float, account_id: str) -> list[Finding]:
        return []

    def next_deadline(self, state: RuleState) -> float | None:
        value = state.get("n")
        return float(value) if value is not None else None

    def on_finding(self, state: RuleState, finding: Finding) -> list[Finding]:
        return []

    def key_of(self, event: Event) -> str | None:
        """The key of an event: ``""`` per account, the user id per user (None: no user → skip)."""
        if self.rule.group_by == "user":
            return event.user_id
        return ""


def union_names(*name_sets: frozenset[str] | None) -> frozenset[str] | None:
    """The routing names of several matches together (``None`` if any matches every event)."""
    names: set[str] = set()
    for item in name_sets:
        if item is None:
            return None
        names |= item
    return frozenset(names)


def remember_sample(samples: list[list[Any]], event: Event) -> None:
    """Keep the newest few ``[ts, event_id]`` pairs of contributing events."""
    samples.append([event.ts, event.event_id])
    if len(samples) > MAX_SAMPLE_EVENT_IDS:
        del samples[0]


def samples_since(samples: list[list[Any]], since: float) -> list[str]:
    """Event ids of the remembered samples at or after ``since``."""
    return [str(event_id) for ts, event_id in samples if ts >= since]


SWEEP_AT = 32
"""Once a rule holds more keys than this, adding a key first drops the keys that went stale."""


def sweep_stale(keys: dict[str, Any], is_stale: Callable[[Any], bool]) -> None:
    """Drop stale per-key states (e.g. users whose events all left the window): bounds the state.

    Called when a key is added; it only removes keys that can no longer affect any result.
    """
    if len(keys) >= SWEEP_AT:
        for key in [k for k, keyed in keys.items() if is_stale(keyed)]:
            del keys[key]


def lower_bound(state: RuleState, deadline: float) -> None:
    """Record a new deadline in the rule's lower bound ``state["n"]``."""
    current = state.get("n")
    if current is None or deadline < current:
        state["n"] = deadline
