"""``absence``: a ``start`` event is not followed by an ``expect`` event within ``within``.

While a start is pending, further starts are ignored (the first one sets the deadline) — unless the
event is an ``expect`` too, which clears the pending start and starts the next wait from itself. An
``expect`` at or after the start clears it — also one stamped at the same instant that the engine
applied first (events of one instant go in ``event_id`` order, so a start and its expect both
stamped ``2026-03-01T00:00:00Z``, as a day-granular import writes them, must not depend on their
ids): each key remembers the instant of its latest expect that found nothing pending (only the
newest instant can still matter). Otherwise an ``expect`` with no pending start does nothing. The
deadline is ``start + within``; an expect stamped exactly at it is too late.

The evidence names what was expected (``expected``: the ``expect`` event names, None for any event;
``expected_filtered``: whether its ``where`` narrows them) and after what (``start``), so that the
alert can say "no 'Invoice Paid' within 3 days of 'Invoice Payment Failed'". The alert id does not
depend on them: it comes from the rule, the key and the start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from rules.findings import Finding
from rules.kinds.base import SWEEP_AT, EvaluatorBase, PendingEvents, admits, union_names, written_names
from rules.models import AbsenceRule
from rules.predicates import Matcher, compile_match, compile_where
from schemas.durations import format_duration
from schemas.event import Event, format_ts


@dataclass
class AbsenceState(PendingEvents):
    """Per key with a pending start, ``events``: the start; ``deadline``: the earliest follow-up due."""

    expected: dict[str, float] = field(default_factory=dict)
    """Key → the instant of its latest expect (bounded: see ``_remember_expect``)."""

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        state = super().decode(doc, version)
        if version != 1:
            state.expected = dict(doc.get("expected") or {})  # absent in states written before it
        return state


class AbsenceEvaluator(EvaluatorBase[AbsenceState]):
    """One pending start per key; the clock fires the missing follow-up."""

    rule: AbsenceRule

    has_deadlines = True
    state_type = AbsenceState

    def __init__(self, rule: AbsenceRule) -> None:
        self.rule = rule
        self.event_names = union_names(rule.start.event_names, rule.expect.event_names)
        self._start = compile_match(rule.start)
        self._expect = compile_match(rule.expect)
        self._per_user = rule.group_by == "user"
        # What the alert says was missing (and after what): the names as the rule lists them, for a
        # sentence a CSM reads ("no 'Invoice Paid' within 3 days of 'Invoice Payment Failed'").
        self._expected_names = written_names(rule.expect)
        self._start_names = written_names(rule.start)

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        starts = self.rule.start.event_names
        if starts is not None and name not in starts:
            # an event of this name can only be an expect: the engine tests the expect's where first
            return compile_where(self.rule.expect), self._expected
        return None, self.on_event

    def _expected(self, state: AbsenceState, event: Event) -> list[Finding]:
        """``on_event`` for an event that passed the expect's test and cannot be a start."""
        key = event.user_id if self._per_user else ""  # key_of, inlined
        if key is None:
            return []
        state.events.pop(key, None)
        # remembered for a start of the same instant applied after it, whether or not it cleared an older start
        self._remember_expect(state.expected, key, event.ts)
        return []

    def on_event(self, state: AbsenceState, event: Event) -> list[Finding]:
        key = self.key_of(event)
        if key is None:
            return []
        pending = state.events
        if key in pending:
            if not self._expect(event):
                return []
            del pending[key]
            self._remember_expect(state.expected, key, event.ts)
            if not self._start(event):
                return []
            # The follow-up is a start too (``start`` and ``expect`` both match it: "an invoice every month",
            # start: Invoice Paid, expect: Invoice Paid): it starts the next wait, or every other gap went unwatched.
            pending[key] = (event.ts, event.event_id)
            state.lower_bound(event.ts + self.rule.within)
            return []
        if self._start(event):
            if state.expected.get(key) == event.ts:  # its expect came at the same instant, applied first
                return []
            if not admits(pending, self.rule.id, event.account_id):  # a user beyond MAX_USER_KEYS
                return []
            pending[key] = (event.ts, event.event_id)
            state.lower_bound(event.ts + self.rule.within)
        elif self._expect(event):
            self._remember_expect(state.expected, key, event.ts)
        return []

    @staticmethod
    def _remember_expect(expected: dict[str, float], key: str, ts: float) -> None:
        """An expect's instant, for a start stamped at the same instant (applied after it).

        Only the newest instant matters (no event can come at an older one): past ``SWEEP_AT`` keys the
        older instants are dropped, so a per-user rule keeps a bounded map."""
        if len(expected) >= SWEEP_AT and key not in expected:
            for stale in [k for k, at in expected.items() if at < ts]:
                del expected[stale]
        expected[key] = ts

    def advance_to(self, state: AbsenceState, now: float, account_id: str) -> list[Finding]:
        if not state.is_due(now):
            return []
        within = self.rule.within
        findings = []
        for deadline, key, start, start_id in state.pop_due(within, now):
            evidence = {
                "measure": "missing follow-up",
                "value": format_duration(within),
                "threshold": within,
                "baseline": None,
                "started_at": format_ts(start),
                "expected": list(self._expected_names) if self._expected_names is not None else None,
                "expected_filtered": bool(self.rule.expect.where),
                "start": list(self._start_names) if self._start_names is not None else None,
                "sample_event_ids": [start_id],
            }
            findings.append(self.deadline_finding(account_id, key, deadline, start, evidence, format_ts(start)))
        return findings
