"""``inactivity``: a key that was active has had no matching event for ``after``.

The deadline is ``last matching event + after``. It fires once per silence (the key's state is
dropped when it fires); the next matching event makes the key active again. An event stamped
exactly at the deadline comes too late: deadlines at t fire before events at t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rules.findings import Finding
from rules.kinds.base import MAX_USER_KEYS, EvaluatorBase, PendingEvents, admits, written_names
from rules.models import InactivityRule
from rules.predicates import Matcher, compile_where
from schemas.durations import format_duration
from schemas.event import Event, format_ts


@dataclass
class InactivityState(PendingEvents):
    """Per active key, ``events``: its last matching event; ``deadline``: the earliest silence."""


class InactivityEvaluator(EvaluatorBase[InactivityState]):
    """Remembers the last matching event per key; the clock fires the silence."""

    rule: InactivityRule

    has_deadlines = True
    state_type = InactivityState

    def __init__(self, rule: InactivityRule) -> None:
        self.rule = rule
        self.event_names = rule.match.event_names
        # the engine routes only events named by the match (``event_names``): the ``where`` is what is left
        self._where = compile_where(rule.match)
        self._per_user = rule.group_by == "user"
        self._after = rule.after
        # what went quiet, for the sentence a rule without a summary gets ("no 'Sensor Ping' event for 2 hours")
        names = written_names(rule.match)
        self._events = list(names) if names is not None else None
        self._events_filtered = bool(rule.match.where)

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        return self._where, self._matched

    def on_event(self, state: InactivityState, event: Event) -> list[Finding]:
        if self._where is not None and not self._where(event):
            return []
        return self._matched(state, event)

    def _matched(self, state: InactivityState, event: Event) -> list[Finding]:
        """``on_event`` for an event that passed the ``where``."""
        key = event.user_id if self._per_user else ""  # key_of, inlined
        if key is None:
            return []
        ts = event.ts
        events = state.events
        if len(events) >= MAX_USER_KEYS and key not in events and not admits(events, self.rule.id, event.account_id):
            return []
        events[key] = (ts, event.event_id)
        deadline = ts + self._after  # state.lower_bound(deadline), inlined
        current = state.deadline
        if current is None or deadline < current:
            state.deadline = deadline
        return []

    def advance_to(self, state: InactivityState, now: float, account_id: str) -> list[Finding]:
        if not state.is_due(now):
            return []
        after = self.rule.after
        findings = []
        for deadline, key, last, last_id in state.pop_due(after, now):
            evidence = {
                "measure": "silence",
                "value": format_duration(after),
                "threshold": after,
                "baseline": None,
                "last_seen": format_ts(last),
                "sample_event_ids": [last_id],
                "events": self._events,
                "events_filtered": self._events_filtered,
            }
            findings.append(self.deadline_finding(account_id, key, deadline, last, evidence))
        return findings
