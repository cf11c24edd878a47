"""``RuleEngine``: every enabled rule over one account's events, in event time.

Who calls it: the rules worker (per record and on its timer) and the backtest — both only
through this surface (the worker types it as ``RuleEnginePort`` in ``streams/worker/processor.py``;
docs/rules.md, "Event time, lateness and deadlines", is the user's view). The engine is pure:
time comes in as the caller's watermark, state comes in as an ``AccountState`` the caller keeps.

Time semantics, in one place:

* An event is buffered and applied only once the watermark has passed it (``ts < watermark``),
  in ``(ts, event_id)`` order, so any reordering within the allowed lateness and any split into
  batches gives the same result.
* Deadlines (inactivity, absence, drop window ends, score ticks) fire when the watermark
  reaches them (``deadline <= watermark``), and before any event stamped at the same instant.
* An event older than the watermark already applied to its account (or than the caller's
  watermark) is LATE and ignored; an event id seen at most the dedup horizon (of event time)
  before the event is a DUPLICATE.
* Cooldown: a rule's finding for a key within ``cooldown`` of its previous one is suppressed.
* ``composite`` rules receive the other rules' findings (after cooldown) for the account.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable
from enum import StrEnum
from typing import Any, cast

import orjson
import structlog

from rules.findings import Finding
from rules.kinds import build_evaluator
from rules.kinds.base import MAX_USER_KEYS, Evaluator, EvaluatorBase, user_not_tracked
from rules.loader import RuleSet
from rules.models import RuleBase
from rules.predicates import Matcher
from rules.state import (
    DEFAULT_MAX_SEEN_IDS,
    READABLE_VERSIONS,
    SEEN_ID_CHARS,
    STATE_VERSION,
    AccountState,
    buffered_row,
    decode_state,
    encode_state,
    seen_key,
)
from rules.templates import render_template, rule_context, template_problem, unknown_account_view
from schemas.account import Account
from schemas.alert import Alert, AlertAccount, AlertWindow, Evidence, visible_name
from schemas.event import Event, format_ts
from schemas.observed import Anomaly

__all__ = ["AccountState", "EventOutcome", "Finding", "RuleEngine"]

MAX_ROUTE_CACHE = 10_000
MAX_ALERT_BYTES = 512 * 1024
"""An alert's JSON may be at most this large. Templates may print up to a million characters each and a
rule may list any number of event names, so without a bound one rule could build an alert Kafka refuses
(over about 1 MB): the worker's send would fail on every retry of the batch. Such a finding is
dead-lettered by the worker (``alert_build_failed``) and counted by the backtest, never sent."""

_heappush = heapq.heappush
_heappop = heapq.heappop
_DeadlineOf = Callable[[Any], float | None]

log = structlog.get_logger(module=__name__)


def _takes_deadline_cooldowns(ev: Any) -> bool:
    """Whether the kind's ``advance_to`` takes the cooldown table (``EvaluatorBase.takes_deadline_cooldowns``)."""
    return bool(getattr(ev, "takes_deadline_cooldowns", False))


def _read_deadline(state: Any) -> float | None:
    value = state.deadline
    return float(value) if value is not None else None


_READ_DEADLINE: _DeadlineOf = _read_deadline
"""A kind whose deadline is ``EvaluatorBase.next_deadline``: the engine reads ``state.deadline`` itself."""
_Step = tuple[str, Matcher | None, Callable[..., list[Finding]], bool, _DeadlineOf | None]
"""One routed evaluator: rule id, the test an event must pass to reach it (None: none), what to call
then (``Evaluator.routed``), whether that takes the cooldown table, and how to read its next
deadline (None: it has no deadlines)."""


def _deadline_of(ev: Evaluator[Any]) -> _DeadlineOf | None:
    if not ev.has_deadlines:
        return None
    if getattr(type(ev), "next_deadline", None) is EvaluatorBase.next_deadline:
        return _READ_DEADLINE
    return ev.next_deadline


PRESENTATION_FIELDS = frozenset(
    {"title", "description", "severity", "priority", "playbook", "summary", "labels", "cooldown"}
)
"""Rule fields that shape the alerts people read, not what the rule remembers: editing them keeps the
rule's state (the engine's cooldown table is kept per rule id whatever changes)."""


def _user_routed(ev: Evaluator[Any], name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
    """``ev.routed(name)``; for a per-user rule the call first counts and skips an event without ``user_id``
    (``preempt_user_events_without_user_total{rule}``, a throttled WARNING, the backtest's note): the kinds skip
    it too, but silently, and a rule whose events carry the user elsewhere (``properties.userId``) never fired
    with nothing to say why. Only events that passed the rule's ``where`` test, where the engine tests it first,
    reach the call."""
    gate, on_event = ev.routed(name)
    if ev.rule.group_by != "user":
        return gate, on_event
    rule_id = ev.rule.id

    def per_user(state: Any, event: Event, *rest: Any) -> list[Finding]:
        if event.user_id is None:
            user_not_tracked(rule_id, event.account_id, Anomaly.USER_MISSING)
            return []
        return on_event(state, event, *rest)

    return gate, per_user


STATE_NEUTRAL_FIELDS = frozenset({"outcome_events"})
"""Rule fields that decide whether an alert goes out but not what the state remembers or how it is laid out
(``risk``'s ``outcome_events``, added 2026-12-03: left out of both tags, so a risk rule's stored states — weeks of
features — are still read by the version that added it and by the one before, and after an edit of the names)."""


def _rule_digest(rule: RuleBase, left_out: frozenset[str]) -> str:
    """A hash of ``rule``'s fields but ``left_out``: the tags its stored states carry."""
    return hashlib.sha256(rule.model_dump_json(exclude=set(left_out)).encode()).hexdigest()[:16]


def state_fingerprint(rule: RuleBase) -> str:
    """The tag of a rule's stored state: a hash of every field but :data:`PRESENTATION_FIELDS` and
    :data:`STATE_NEUTRAL_FIELDS`, so a state is read back only by a rule that evaluates events the same way."""
    return _rule_digest(rule, frozenset(PRESENTATION_FIELDS) | STATE_NEUTRAL_FIELDS)


class EventOutcome(StrEnum):
    """What happened to an event offered to :meth:`RuleEngine.on_event`.

    The values are the ``outcome`` labels of ``preempt_events_total`` (the worker counts them).
    """

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"


_ACCEPTED = EventOutcome.ACCEPTED
_DUPLICATE = EventOutcome.DUPLICATE
_LATE = EventOutcome.LATE


class RuleEngine:
    """Evaluates a ``RuleSet`` for one account at a time; holds no per-account data itself."""

    def __init__(
        self,
        rules: RuleSet,
        dedup_horizon: float = 86400.0,
        max_seen_ids: int = DEFAULT_MAX_SEEN_IDS,
        state_version: int = STATE_VERSION,
    ) -> None:
        # No allowed lateness here: the caller's clock owns it and hands the engine a watermark.
        if dedup_horizon < 0:
            raise ValueError("dedup_horizon must be >= 0")
        if state_version not in READABLE_VERSIONS:
            raise ValueError(f"state_version must be one of {sorted(READABLE_VERSIONS)}")
        self.rules = rules
        self.state_version = state_version
        """The encoding :meth:`dumps` writes (1 only while workers from before typed rule state run)."""
        self.dedup_horizon = dedup_horizon
        self.max_seen_ids = max_seen_ids
        self._suppressed = 0
        enabled = rules.enabled
        self._rules: dict[str, RuleBase] = {rule.id: rule for rule in enabled}
        self._evaluators: list[Evaluator[Any]] = [build_evaluator(rule) for rule in enabled]
        self._event_evaluators = [ev for ev in self._evaluators if ev.rule.kind != "composite"]
        self._clocked = [ev for ev in self._evaluators if ev.has_deadlines]
        self._clocked_steps = [
            (ev.rule.id, ev, _deadline_of(ev), _takes_deadline_cooldowns(ev)) for ev in self._clocked
        ]
        self._order = {ev.rule.id: index for index, ev in enumerate(self._evaluators)}
        self._listeners: dict[str, list[Evaluator[Any]]] = {}
        for ev in self._evaluators:
            for ref in ev.rule.references:
                self._listeners.setdefault(ref, []).append(ev)
        self._cooldown = {rule.id: rule.effective_cooldown for rule in enabled}
        # STATE_NEUTRAL_FIELDS are left out here too: a field added since is then no edit to the rule for the
        # workers before it, nor for a version 1 state (which has no second tag)
        self._fingerprints = {rule.id: _rule_digest(rule, STATE_NEUTRAL_FIELDS) for rule in enabled}
        # Written beside the whole rule's fingerprint (which workers before it compare), so that a rule
        # whose title, playbook… was edited still reads its state (rules.state.encode_state).
        self._state_fingerprints = {rule.id: state_fingerprint(rule) for rule in enabled}
        self._routes: dict[str, tuple[_Step, ...]] = {}
        self._by_id = {ev.rule.id: ev for ev in self._evaluators}

    @property
    def suppressed_by_cooldown(self) -> int:
        """Findings dropped by cooldown since this engine was built (for the caller's metrics).

        Counts both the findings the engine dropped and those a kind did not build because the
        cooldown table it was handed said they would be dropped (``EvaluatorBase.cooled``).
        """
        return self._suppressed + sum(getattr(ev, "suppressed", 0) for ev in self._evaluators)

    @property
    def suppressed_after_churn(self) -> int:
        """Alerts a kind did not send since this engine was built because the account had churned (``risk``
        after one of its ``outcome_events`` of a churn; for the caller's metrics)."""
        return sum(getattr(ev, "after_churn", 0) for ev in self._evaluators)

    @property
    def states_restarted(self) -> dict[str, int]:
        """Per rule id, the account states a kind started afresh since this engine was built because they were
        kept under another layout (``risk``: a model file replaced by one with another vocabulary)."""
        counts = {ev.rule.id: int(getattr(ev, "restarted", 0)) for ev in self._evaluators}
        return {rule_id: n for rule_id, n in counts.items() if n}

    def rules_missing_their_events(self, at_least: int) -> dict[str, int]:
        """Per rule id, how many events a kind folded in (at least ``at_least``) without one of the event names its
        model learned from (``risk``: a model of another product's events, or of names renamed since)."""
        out: dict[str, int] = {}
        for ev in self._evaluators:
            seen = int(getattr(ev, "events_seen", 0))
            if seen >= at_least and getattr(ev, "learned_events_seen", 1) == 0:
                out[ev.rule.id] = seen
        return out

    def bind_accounts(self, lookup: Callable[[str], Account | None]) -> None:
        """Where the kinds that read account records (``risk`` with account features) find them: the
        record of an account id, or None when unknown — the accounts table in the worker, the
        accounts file in a backtest. Unbound, every account is unknown to them."""
        for ev in self._evaluators:
            bind = getattr(ev, "bind_accounts", None)
            if bind is not None:
                bind(lookup)

    # --- state ---------------------------------------------------------------------------------
    def new_state(self) -> AccountState:
        """All rules' state for one account (mutable)."""
        return AccountState(rules={ev.rule.id: ev.new_state() for ev in self._evaluators})

    def dumps(self, state: AccountState) -> bytes:
        """Compact, versioned bytes of the state (in encoding ``state_version``)."""
        return encode_state(state, self._fingerprints, self.state_version, self._state_fingerprints)

    def loads(self, data: bytes) -> AccountState:
        """The state from :meth:`dumps`; rules added or changed since start from fresh state."""
        state = decode_state(data, self._fingerprints, self._by_id, self._state_fingerprints)
        state.due = self._earliest_deadline(state)
        return state

    # --- time ----------------------------------------------------------------------------------
    def on_event(
        self, state: AccountState, event: Event, watermark: float, late_before: float | None = None
    ) -> tuple[EventOutcome, list[Finding]]:
        """Offer one event of this state's account, then advance to ``watermark``.

        ``late_before``: the caller's clock as the event arrived, when it is ahead of the
        ``watermark`` the account is advanced to (the stream worker advances a batch's accounts
        once, after the batch, but judges each event against its partition's clock as it stood
        when the event was read, the earlier events of the batch counted, as the backtest does).
        An event stamped before it is late. Default: ``watermark``.
        """
        if state.account_id is None:
            state.account_id = event.account_id
        finalized = state.finalized_until
        clock = finalized if finalized > watermark else watermark
        if late_before is not None and late_before > clock:
            clock = late_before
        seen = state.seen
        event_id = event.event_id
        key = event_id if len(event_id) <= SEEN_ID_CHARS else seen_key(event_id)  # long ids: a digest
        ts = event.ts
        first_seen = seen.get(key)
        if first_seen is not None and ts - first_seen <= self.dedup_horizon:
            outcome = _DUPLICATE
        elif ts < clock:
            outcome = _LATE
        else:
            order = state.seen_order
            if first_seen is not None:
                # An id seen more than the horizon before this event (not yet forgotten: ids are
                # forgotten as new ones arrive) is a new event reusing it, whether or not other
                # events came in between; it moves to the end of the arrival order (rare: O(n)).
                del seen[key]
                order.remove(key)
            seen[key] = ts
            order.append(key)
            if seen[order[0]] < clock - self.dedup_horizon or len(order) > self.max_seen_ids:
                self._forget_old_ids(state, clock)
            if watermark <= finalized:  # advance() would do nothing
                _heappush(state.buffer, (ts, event_id, event))
                return _ACCEPTED, []
            # Apply what the watermark has passed, then buffer this event: it is not among them
            # (ts >= watermark), and the buffer is then usually empty, which ends the loop sooner.
            try:
                return _ACCEPTED, self._advance(state, watermark)
            finally:
                _heappush(state.buffer, (ts, event_id, event))
        if watermark <= finalized:  # advance() would do nothing
            return outcome, []
        return outcome, self._advance(state, watermark)

    def advance(self, state: AccountState, watermark: float) -> list[Finding]:
        """Apply buffered events before ``watermark`` and deadlines up to it, in time order."""
        if watermark <= state.finalized_until:
            return []
        return self._advance(state, watermark)

    def bound_buffer(self, state: AccountState, max_bytes: int) -> tuple[int, int, list[Finding]]:
        """Keep the account's buffered events (those the watermark has not passed yet) within
        ``max_bytes`` of encoded state: when they take more, apply the oldest of them now, ahead of
        the watermark, until the rest take at most half of it. Returns how many were applied, the
        bytes still buffered, and the findings.

        Who calls it: the rules worker, for an account whose events arrive faster than its state
        can hold them for the allowed lateness (a client stuck in a retry loop, thousands of events
        a second): otherwise its state outgrows the record limit and is quarantined, losing its
        windows, cooldowns and the very alert the burst should raise. The account's own clock
        (``finalized_until``) moves to the newest applied event's time, so a later event older than
        that is late for this account (counted as such); other accounts are not affected. The backtest
        does not bound its buffers: events in time order give the same findings either way, so it
        can differ from the stream only for such an account whose events also arrive out of order.
        """
        buffer = state.buffer
        if not buffer:
            return 0, 0, []
        entries = sorted(buffer)  # oldest first, as advance() applies them
        sizes = [len(orjson.dumps(buffered_row(ev))) + 1 for _, _, ev in entries]
        total = sum(sizes)
        if total <= max_bytes:
            return 0, total, []
        keep_bytes, kept = max_bytes // 2, 0
        while kept < len(entries) and keep_bytes >= sizes[len(entries) - 1 - kept]:
            keep_bytes -= sizes[len(entries) - 1 - kept]
            kept += 1
        # Applied: every event up to the newest of the oldest ones, with its ties (the same
        # timestamp cannot be split: events are applied in (ts, event_id) order below a watermark).
        # At least one is (the whole buffer did not fit in max_bytes, so not in half of it).
        newest_applied = entries[len(entries) - kept - 1][0]
        findings = self._advance(state, math.nextafter(newest_applied, math.inf))
        # The account's clock stands at the applied events' time, not just past it: a later event
        # stamped the same instant (a burst often shares one) is still accepted, not late.
        state.finalized_until = newest_applied
        remaining = sum(len(orjson.dumps(buffered_row(ev))) + 1 for _, _, ev in state.buffer)
        return len(entries) - len(state.buffer), remaining, findings

    def next_wakeup(self, state: AccountState) -> float | None:
        """The earliest watermark at which :meth:`advance` could do something; None if idle.

        A buffered event at ts is applied by any watermark above ts, so its wakeup is the float just
        above ts: at ts itself ``advance`` does nothing, and a wakeup of ts had the worker advance the
        account, find it due again at once and go round until its time slice ran out, at every batch
        whose watermark was the oldest buffered event's time (1.38 million calls for 3,000 events one
        at a time). A deadline d fires at d.
        """
        earliest = min(state.due, math.nextafter(state.buffer[0][0], math.inf)) if state.buffer else state.due
        return None if earliest == math.inf else earliest

    # --- inside --------------------------------------------------------------------------------
    def _advance(self, state: AccountState, watermark: float) -> list[Finding]:
        """``advance`` past its first test (also the tail of ``on_event``: the hot loop, inlined)."""
        out: list[Finding] = []
        buffer = state.buffer
        if buffer and buffer[0][0] < watermark:
            rules: dict[str, Any] = state.rules
            while True:
                ts, _, event = _heappop(buffer)
                if state.due <= ts:  # a deadline is due first (rare: skips the call otherwise)
                    self._clock(state, ts, out)
                route = self._routes.get(event.event)
                if route is None:
                    route = self._route(event.event)
                last_gate = None
                passed = True
                for rule_id, gate, on_event, uses_cooldowns, deadline_of in route:
                    if gate is not None:
                        if gate is not last_gate:  # rules with the same where in a row: one test per event
                            last_gate = gate
                            passed = gate(event)
                        if not passed:  # the event cannot matter to this rule
                            continue
                    rule_state = rules[rule_id]
                    if uses_cooldowns:  # lets the kind skip building a finding cooldown would drop
                        findings = on_event(rule_state, event, state.cooldowns.get(rule_id))
                    else:
                        findings = on_event(rule_state, event)
                    if findings:
                        for finding in findings:
                            self._emit(state, finding, out)
                    if deadline_of is not None:
                        deadline = rule_state.deadline if deadline_of is _READ_DEADLINE else deadline_of(rule_state)
                        if deadline is not None and deadline < state.due:
                            state.due = float(deadline)
                if not buffer or buffer[0][0] >= watermark:
                    break
        if state.due <= watermark:
            self._clock(state, watermark, out)
        state.finalized_until = watermark
        return out

    def _forget_old_ids(self, state: AccountState, clock: float) -> None:
        """Forget the oldest ids (arrival order) while older than the horizon or beyond the cap."""
        seen, order = state.seen, state.seen_order
        cutoff = clock - self.dedup_horizon
        while order and (seen[order[0]] < cutoff or len(order) > self.max_seen_ids):
            del seen[order.popleft()]

    def _route(self, name: str) -> tuple[_Step, ...]:
        """What an event of this name runs, computed once per name (dispatch by event name)."""
        route = self._routes.get(name)
        if route is None:
            route = tuple(
                (ev.rule.id, *_user_routed(ev, name), bool(getattr(ev, "takes_cooldowns", False)), _deadline_of(ev))
                for ev in self._event_evaluators
                if ev.event_names is None or name in ev.event_names
            )
            if len(self._routes) < MAX_ROUTE_CACHE:
                self._routes[name] = route
        return route

    def _earliest_deadline(self, state: AccountState) -> float:
        earliest = math.inf
        for ev in self._clocked:
            deadline = ev.next_deadline(state.rules[ev.rule.id])
            if deadline is not None and deadline < earliest:
                earliest = deadline
        return earliest

    def _clock(self, state: AccountState, now: float, out: list[Finding]) -> None:
        if state.due > now:  # the common case: no rule has a deadline yet
            return
        fired: list[Finding] = []
        account_id = state.account_id or ""
        rules: dict[str, Any] = state.rules
        earliest = math.inf
        for rule_id, ev, deadline_of, takes_cooldowns in self._clocked_steps:
            rule_state = rules[rule_id]
            if deadline_of is _READ_DEADLINE:  # EvaluatorBase.next_deadline, inlined
                value = rule_state.deadline
                deadline = None if value is None else float(value)
            else:
                deadline = ev.next_deadline(rule_state)
            if deadline is not None and deadline <= now:
                if takes_cooldowns:  # the kind holds back what cooldown would drop (``risk``: fires once it is over)
                    fired.extend(cast(Any, ev).advance_to(rule_state, now, account_id, state.cooldowns.get(rule_id)))
                else:
                    fired.extend(ev.advance_to(rule_state, now, account_id))
                deadline = ev.next_deadline(rule_state)
            if deadline is not None and deadline < earliest:
                earliest = deadline
        state.due = earliest  # what _earliest_deadline gives: each rule's deadline after its advance_to
        if fired:
            fired.sort(key=lambda f: (f.fired_at, self._order[f.rule_id], f.user_id or ""))
            for finding in fired:
                self._emit(state, finding, out)

    def _emit(self, state: AccountState, finding: Finding, out: list[Finding]) -> None:
        cooldown = self._cooldown[finding.rule_id]
        if cooldown > 0:
            table = state.cooldowns.setdefault(finding.rule_id, {})
            key = finding.user_id or ""
            last = table.get(key)
            if last is not None and finding.fired_at - last < cooldown:
                self._suppressed += 1
                return
            if last is None and len(table) >= MAX_USER_KEYS:  # a per-user rule's table of the most users
                for stale in [k for k, at in table.items() if finding.fired_at - at >= cooldown]:
                    del table[stale]
            if last is not None or len(table) < MAX_USER_KEYS:
                table[key] = finding.fired_at
                if len(table) > 16:  # forget keys whose cooldown is over (bounds the table)
                    for stale in [k for k, at in table.items() if finding.fired_at - at >= cooldown]:
                        del table[stale]
            else:  # still full of users in their cooldown: alert without recording it (counted, logged)
                user_not_tracked(finding.rule_id, finding.account_id, Anomaly.USER_COOLDOWN_NOT_KEPT)
        out.append(finding)
        for listener in self._listeners.get(finding.rule_id, ()):
            for combined in listener.on_finding(state.rules[listener.rule.id], finding):
                self._emit(state, combined, out)

    # --- alerts --------------------------------------------------------------------------------
    def to_alert(self, finding: Finding, account: Account | None, emitted_at: float) -> Alert:
        """The alert of a finding, enriched with the account and rendered title and playbook."""
        rule = self._rules[finding.rule_id]
        window = AlertWindow(
            start=format_ts(finding.window_start) if finding.window_start is not None else None,
            end=format_ts(finding.window_end) if finding.window_end is not None else None,
        )
        account_view = _account_view(finding.account_id, account)
        context: dict[str, Any] = {
            "account": account_view,
            "evidence": finding.evidence,
            "rule": rule_context(rule),
            "window": {"start": window.start, "end": window.end},
            "user": {"id": finding.user_id},
        }
        title, title_error = render_template(rule.title, context)
        playbook, playbook_error = render_template(rule.playbook, context, markdown=True)
        evidence = dict(finding.evidence)
        failed = [("title", title_error), ("playbook", playbook_error)]
        if rule.summary:
            summary, summary_error = render_template(rule.summary, context)
            evidence["summary"] = " ".join(summary.split())
            failed.append(("summary", summary_error))
        for field, error in failed:
            if error is None:
                continue
            # CSMs read the evidence: what is wrong, in words; the exception's class only in the log.
            evidence.setdefault("template_error", f"the rule's {field} template {template_problem(error)}")
            log.warning(
                "alert template could not be rendered; its text is rendered leniently",
                rule_id=rule.id,
                account_id=finding.account_id,
                alert_id=finding.alert_id,
                field=field,
                error=f"{type(error).__name__}: {error}"[:500],
            )
        alert = Alert(
            alert_id=finding.alert_id,
            rule_id=finding.rule_id,
            kind=finding.kind,
            title=title,
            severity=rule.severity,
            priority=rule.priority,
            account_id=finding.account_id,
            user_id=finding.user_id,
            account=AlertAccount(
                name=account.name if account else None,
                tier=account.tier if account else None,
                plan=account.plan if account else None,
                mrr=account.mrr if account else None,
                timezone=account.timezone if account else None,
                owner=account.owner.model_dump(exclude_none=True) if account else {},
                links=account.links.model_dump(exclude_none=True) if account else {},
            ),
            fired_at=format_ts(finding.fired_at),
            emitted_at=format_ts(emitted_at),
            window=window,
            evidence=Evidence(**evidence),
            playbook=playbook,
            labels=dict(rule.labels),
        )
        size = len(alert.model_dump_json())
        if size > MAX_ALERT_BYTES:
            raise AlertTooLargeError(
                f"alert of rule {finding.rule_id!r} would be {size:,} bytes, over the {MAX_ALERT_BYTES:,} an alert may "
                "be (Kafka refuses records over about 1 MB): shorten its title, summary or playbook template, or "
                "its list of event names"
            )
        return alert


class AlertTooLargeError(ValueError):
    """A finding whose alert would be too large to send: the stream dead-letters it, the backtest counts it."""


def _account_view(account_id: str, account: Account | None) -> dict[str, Any]:
    """What templates see as ``account``; the name falls back to the id for unknown accounts."""
    if account is None:
        return unknown_account_view(account_id)
    view = account.model_dump()
    view["name"] = visible_name(account.name) or account_id
    return view
