"""The one protocol every rule kind implements, and the small pieces they share.

Who calls it: only ``rules.engine.RuleEngine``, which feeds each evaluator the events of one
account in event-time order — a rule's deadlines up to time t are always fired
(``advance_to(state, t)``) before an event stamped t is applied (``on_event``). So a kind never
sees time go backwards and never has to sort.

A rule's state is a dataclass of its kind, a subclass of :class:`RuleState`, holding only
JSON-ready values (str keys, lists, tuples, numbers, None, nested state dataclasses), so
``rules.state`` serializes it with orjson as is (field names as keys). Not ``slots=True``: orjson
writes a dataclass with ``__slots__`` about 3x slower than one with a ``__dict__`` (measured: an
account's state encoded in 27 µs instead of 19 µs, and the worker encodes every touched account
after every batch), and without slots the states still take less memory than the dicts before. Per-key state lives in
``state.keys[key]`` where the key is ``""`` for ``group_by: account`` and the user id for
``group_by: user``. A kind with deadlines keeps a :class:`BoundedState`: ``deadline`` is a lower
bound of its earliest deadline (exact after every ``advance_to``).

Each state class reads itself back with ``decode(doc, version)``: version 2 is the dataclass as
orjson wrote it; version 1 is the encoding before typed state (one-letter keys, ``"k"`` the keys,
``"n"`` the deadline bound), still read so that a worker restarted on new code continues from the
state the old one stored (``tests/unit/rules/test_state_golden.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar

import structlog

from rules.findings import MAX_SAMPLE_EVENT_IDS, Finding, make_finding
from rules.measures import is_power_of_ten
from rules.models import Match, RuleBase
from rules.predicates import Matcher
from rules.risk.features import MAX_USERS_PER_DAY
from schemas.event import Event, format_ts
from schemas.observed import Anomaly, report

log = structlog.get_logger(module=__name__)

MAX_USER_KEYS = 2_000
"""The most users a ``group_by: user`` rule keeps state for in one account (and the most users in its
cooldown table). Per-user state lives in the account's one state record, which Kafka refuses past about
1 MB: without a bound an account with thousands of active users outgrew it and was quarantined whole —
every rule of the account, not only the per-user ones, started afresh, again and again. A user who is new
to the account once a rule tracks this many is not evaluated by that rule until one of them leaves
(its silence fires, its windows empty); the rule, the account's other rules and its tracked users go on.
Counted (``preempt_user_events_not_tracked_total{rule}``) and logged (:func:`user_not_tracked`).
Measured (30-character user ids, 32-character event ids): 2,000 users of an ``inactivity`` rule take
166 KB of state; see docs/rules.md, "State"."""

Samples = list[list[Any]]
"""The newest few ``[ts, event_id]`` pairs of contributing events, oldest first."""


@dataclass
class RuleState:
    """One rule's state for one account; each kind subclasses it (mutable, owned by the engine)."""

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        """The state from its stored form: ``version`` 2 as orjson wrote the dataclass, 1 the older dict."""
        raise NotImplementedError(f"{cls.__name__} cannot be read back")

    def to_version_1(self) -> dict[str, Any]:
        """The state in encoding version 1, which workers from before typed state read (rolling upgrades)."""
        raise NotImplementedError(f"{type(self).__name__} has no version 1 form")


@dataclass
class BoundedState(RuleState):
    """The state of a kind with deadlines."""

    deadline: float | None = None
    """A lower bound of the earliest pending deadline (exact after ``advance_to``); None: none pending."""

    def lower_bound(self, deadline: float) -> None:
        """Record a new deadline in the lower bound."""
        current = self.deadline
        if current is None or deadline < current:
            self.deadline = deadline

    def is_due(self, now: float) -> bool:
        """Whether a deadline may have come by ``now`` (``advance_to`` has nothing to do otherwise)."""
        return self.deadline is not None and self.deadline <= now


@dataclass
class PendingEvents(BoundedState):
    """Per key, the one event whose deadline — its time plus a fixed span — is pending.

    The state of the kinds whose deadline is a span after an event: ``inactivity`` (the key's last
    matching event) and ``absence`` (the start waiting for its follow-up).
    """

    events: dict[str, tuple[float, str]] = field(default_factory=dict)
    """Key → ``(time, event id)`` of its event."""

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        if version == 1:  # {"k": {key: [ts, event_id]}, "n"?: bound}
            return cls(doc.get("n"), {key: (ts, event_id) for key, (ts, event_id) in doc["k"].items()})
        return cls(doc["deadline"], {key: (ts, event_id) for key, (ts, event_id) in doc["events"].items()})

    def to_version_1(self) -> dict[str, Any]:
        return {"k": {key: list(event) for key, event in self.events.items()}, "n": self.deadline}

    def pop_due(self, span: float, now: float) -> list[tuple[float, str, float, str]]:
        """Remove every key whose deadline is ``<= now``: ``(deadline, key, time, event id)`` in deadline
        then key order. The deadline bound becomes exact."""
        events = self.events
        due = sorted((ts + span, key) for key, (ts, _) in events.items() if ts + span <= now)
        popped = [(deadline, key, *events.pop(key)) for deadline, key in due]
        self.deadline = min((ts + span for ts, _ in events.values()), default=None)
        return popped


S = TypeVar("S", bound=RuleState)


class Evaluator(Protocol[S]):
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

    def new_state(self) -> S:
        """A fresh state for one account."""
        ...

    def read_state(self, doc: Any, version: int) -> S:
        """The state from its stored form (see the module docstring)."""
        ...

    def on_event(self, state: S, event: Event) -> list[Finding]:
        """Apply one event (deadlines before its time were already fired).

        A kind whose class sets ``takes_cooldowns = True`` is called with a third argument,
        ``cooldowns``: the engine's cooldown table of this rule for the account (key → time of
        the last finding let through, or None), to skip building a finding the engine would drop
        (``EvaluatorBase.cooled``). It never changes the state the event leaves.
        """
        ...

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        """How the engine runs an event of this name (one of ``event_names``): a test the event must
        pass for ``on_event`` to do anything (None: no test), and what to call once it has passed,
        with ``on_event``'s arguments and result (``on_event`` itself, or the part after the test)."""
        ...

    def advance_to(self, state: S, now: float, account_id: str) -> list[Finding]:
        """Fire every deadline ``<= now``.

        A kind whose class sets ``takes_deadline_cooldowns = True`` is called with a fourth argument,
        ``cooldowns``, as ``on_event`` is with ``takes_cooldowns``: to hold back what the engine would drop.
        """
        ...

    def next_deadline(self, state: S) -> float | None:
        """A lower bound of the earliest pending deadline; ``None`` when there is none."""
        ...

    def on_finding(self, state: S, finding: Finding) -> list[Finding]:
        """Another rule fired for this account (only ``composite`` listens)."""
        ...


class EvaluatorBase(Generic[S]):
    """No-op defaults, so each kind writes only what it does."""

    rule: RuleBase
    state_type: type[S]
    """The kind's state class (``new_state`` builds it with no arguments unless overridden)."""
    event_names: frozenset[str] | None = None
    has_deadlines = False
    takes_cooldowns = False
    """True: ``on_event`` accepts ``cooldowns`` (see ``Evaluator.on_event``)."""
    takes_deadline_cooldowns = False
    """True: ``advance_to`` accepts ``cooldowns`` (see ``Evaluator.advance_to``)."""
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

    def new_state(self) -> S:
        return self.state_type()

    def read_state(self, doc: Any, version: int) -> S:
        return self.state_type.decode(doc, version)

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        return None, self.on_event

    def on_event(self, state: S, event: Event) -> list[Finding]:
        raise NotImplementedError(f"{type(self).__name__} has no on_event")

    def advance_to(self, state: S, now: float, account_id: str) -> list[Finding]:
        return []

    def next_deadline(self, state: S) -> float | None:
        value = state.deadline if isinstance(state, BoundedState) else None
        return float(value) if value is not None else None

    def on_finding(self, state: S, finding: Finding) -> list[Finding]:
        return []

    def event_finding(
        self, event: Event, key: str, window_start: float, evidence: dict[str, Any], episode: str | None = None
    ) -> Finding:
        """A finding that ``event`` fires: at its time, for its account, over a window ending at it.

        Its episode is the event's time; without a cooldown (``cooldown: 0s``) two events of one instant
        may both fire, so the event's id joins the episode (as for ``any``) to keep the alert ids apart.
        """
        rule = self.rule
        if episode is None and rule.effective_cooldown == 0:
            episode = f"{format_ts(event.ts)}/{event.event_id}"
        return make_finding(
            rule_id=rule.id,
            kind=rule.kind,
            account_id=event.account_id,
            key=key,
            fired_at=event.ts,
            episode=episode,
            window_start=window_start,
            window_end=event.ts,
            newest_event_ts=event.ts,
            evidence=evidence,
        )

    def deadline_finding(
        self,
        account_id: str,
        key: str,
        deadline: float,
        since: float,
        evidence: dict[str, Any],
        episode: str | None = None,
    ) -> Finding:
        """A finding that the clock fires at ``deadline``, over the window since the event at ``since``."""
        rule = self.rule
        return make_finding(
            rule_id=rule.id,
            kind=rule.kind,
            account_id=account_id,
            key=key,
            fired_at=deadline,
            episode=episode,
            window_start=since,
            window_end=deadline,
            newest_event_ts=since,
            evidence=evidence,
        )

    def key_of(self, event: Event) -> str | None:
        """The key of an event: ``""`` per account, the user id per user (None: no user → skip)."""
        if self.rule.group_by == "user":
            return event.user_id
        return ""


_not_tracked: dict[tuple[str, str, Anomaly], int] = {}
_MAX_THROTTLED = 10_000
"""The most rule and account pairs :func:`user_not_tracked` counts apart (a few rules of the largest accounts)."""
_by_rule: dict[tuple[Anomaly, str], int] = {}  # what user_not_tracked counted, by anomaly and rule (as many as rules)
_AT_LIMIT: dict[Anomaly, tuple[str, int | None]] = {
    Anomaly.USER_NOT_TRACKED: ("per-user rule at its user limit; a new user is not tracked", MAX_USER_KEYS),
    Anomaly.USER_COOLDOWN_NOT_KEPT: (
        "per-user cooldown table at its user limit; alert sent without its cooldown",
        MAX_USER_KEYS,
    ),
    Anomaly.RISK_DAY_SKETCHED: (
        "risk features: a day of the account's users past its exact list, counted by sketch",
        MAX_USERS_PER_DAY,
    ),
    Anomaly.USER_MISSING: ("an event without user_id is not evaluated by a per-user rule (group_by: user)", None),
}


def user_not_tracked(rule_id: str, account_id: str, anomaly: Anomaly = Anomaly.USER_NOT_TRACKED) -> None:
    """Count one event (or cooldown) a per-user rule could not keep for a user beyond :data:`MAX_USER_KEYS`,
    and log it: the first for each rule and account, then the 10th, 100th… with the total so far (``rules``
    reads no clock, so the throttle counts instead of timing)."""
    report(anomaly, rule_id)
    _by_rule[anomaly, rule_id] = _by_rule.get((anomaly, rule_id), 0) + 1
    key = (rule_id, account_id, anomaly)
    if key not in _not_tracked and len(_not_tracked) >= _MAX_THROTTLED:
        key = ("", "", anomaly)  # beyond the table: such pairs share one count, so the log stays throttled
    total = _not_tracked.get(key, 0) + 1
    _not_tracked[key] = total
    if total == 1 or is_power_of_ten(total):
        message, limit = _AT_LIMIT[anomaly]
        bound = {} if limit is None else {"limit": limit}
        log.warning(message, rule_id=rule_id, account_id=account_id[:100], **bound, so_far=total)


def at_limit_counts() -> dict[tuple[Anomaly, str], int]:
    """What :func:`user_not_tracked` counted so far in this process, by anomaly and rule: a backtest takes the
    difference over its run to say it in its summary. Counted apart from the log throttle's table, whose pairs
    past its bound share one count: summed from it, they were told as "(other rules)"."""
    return dict(_by_rule)


def admits(keys: dict[str, Any], rule_id: str, account_id: str, is_stale: Callable[[Any], bool] | None = None) -> bool:
    """Whether a rule may add a key (a user new to it) to ``keys`` of one account: False (counted and logged)
    once it holds :data:`MAX_USER_KEYS`. Called only where a key is added, after the kind's own sweep;
    ``is_stale``: keys the kind may forget to make room (only when full)."""
    if len(keys) < MAX_USER_KEYS:
        return True
    if is_stale is not None:
        for key in [k for k, keyed in keys.items() if is_stale(keyed)]:
            del keys[key]
        if len(keys) < MAX_USER_KEYS:
            return True
    user_not_tracked(rule_id, account_id)
    return False


def union_names(*name_sets: frozenset[str] | None) -> frozenset[str] | None:
    """The routing names of several matches together (``None`` if any matches every event)."""
    names: set[str] = set()
    for item in name_sets:
        if item is None:
            return None
        names |= item
    return frozenset(names)


def remember_sample(samples: Samples, event: Event) -> None:
    """Keep the newest few ``[ts, event_id]`` pairs of contributing events."""
    samples.append([event.ts, event.event_id])
    if len(samples) > MAX_SAMPLE_EVENT_IDS:
        del samples[0]


def samples_since(samples: Samples, since: float) -> list[str]:
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


class SweptKeys(Protocol):
    """A state :func:`sweep_older` sweeps: its keys, and the bound it keeps between sweeps."""

    keys: dict[str, Any]
    _fresh_from: float


def sweep_older(state: SweptKeys, newest: Callable[[Any], float], too_old: Callable[[float], bool], now: float) -> None:
    """:func:`sweep_stale` for a kind whose key is stale exactly when ``too_old(newest(key))``: ``newest`` only
    grows while a key is kept (its newest event's bucket or start), ``too_old`` holds for every time older than
    one it holds for, and ``now`` (the event's ``newest``) is at least every key's.

    A sweep remembers the oldest newest of the keys it kept (or ``now``): while that is not too old, no key
    is, and the scan is skipped. Without it a rule at ``MAX_USER_KEYS`` scanned its 2,000 keys for every
    event of every user it does not track (a ``ratio`` over 20,000 users: 2.5 ms an event instead of 6 µs).
    The bound is not stored (``_`` fields are not encoded): a state read back scans once, as before, so the
    keys removed — and the users admitted — are the same whatever the restarts."""
    keys = state.keys
    if len(keys) < SWEEP_AT or not too_old(state._fresh_from):
        return
    fresh_from = now
    stale = []
    for key, keyed in keys.items():
        at = newest(keyed)
        if too_old(at):
            stale.append(key)
        elif at < fresh_from:
            fresh_from = at
    for key in stale:
        del keys[key]
    state._fresh_from = fresh_from


def written_names(match: Match) -> tuple[str, ...] | None:
    """The event names of ``match`` in the order the rule lists them (None: any event)."""
    if match.event is None:
        return None
    return (match.event,) if isinstance(match.event, str) else tuple(match.event)


def counted_events(match: Match, window: float) -> dict[str, Any]:
    """What a measured kind's evidence says about what it counted, for the sentence a CSM reads when the
    rule has no ``summary``: ``12 'API Error' events in 7 days``, not ``12 matching events``. ``events`` are
    the match's names as written (None: any event), ``events_filtered`` whether its ``where`` narrows them,
    ``window_seconds`` the rule's window (the alert's own window is bucket-aligned: 6 days 22 hours)."""
    names = written_names(match)
    return {
        "events": list(names) if names is not None else None,
        "events_filtered": bool(match.where),
        "window_seconds": window,
    }
