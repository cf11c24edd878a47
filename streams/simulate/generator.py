"""The deterministic event generator: accounts × days → events in (nearly) timestamp order.

Determinism: every account draws from its own ``random.Random`` seeded from ``(seed, account_id)``
and the days are generated in order, so the same seed, start and size always produce the same
events with the same ids. No clock is read here; the caller passes ``start_ms``.

Order: each day's events are sorted and released once no later day can produce an earlier one.
A few high-volume client events (page views, feature use, API calls) are stamped up to 2.5 s
before their neighbours, the way a browser SDK flushes a batch late; that stays well inside the
default ``allowed_lateness`` of 5 s.

Lifecycle (``lifecycle=True``, what ``preempt simulate --outcomes-output`` turns on): each
account's story ends with its outcome (``streams.simulate.outcomes``). A churned account sends
nothing after it churns, and the outcome itself is sent as an event — ``Subscription Cancelled``,
``Subscription Renewed``, ``Subscription Contracted`` or ``Subscription Expanded`` (the names of
``schemas.outcome.DEFAULT_OUTCOME_EVENTS``) — when it falls inside the run. Without it the
stories stay open-ended, as before, and the events are unchanged.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from schemas.event import Event
from schemas.outcome import DEFAULT_OUTCOME_EVENTS
from streams.simulate import catalogue as c
from streams.simulate.accounts import build_accounts
from streams.simulate.behaviour import RawEvent, api_day, emit, licence_report, usage_day
from streams.simulate.episodes import billing, expansion, nps, onboarding
from streams.simulate.local_time import DAY_MS, local_day

MAX_JITTER_MS = 2_500
_JITTER_P = 0.04
_JITTERED = frozenset({c.DASHBOARD_VIEWED, c.FEATURE_USED, c.SEARCH_PERFORMED, c.API_REQUEST})

_OUTCOME_EVENT = {kind: name for name, kind in DEFAULT_OUTCOME_EVENTS.items()}
_DAY_STEPS = (onboarding, usage_day, api_day, billing, nps, expansion, licence_report)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate. ``days=None`` runs on forever (live mode)."""

    seed: int
    accounts: int
    start_ms: int
    days: int | None
    lifecycle: bool = False


class Simulation:
    """Accounts and their events for one config; iterate ``events()`` once."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        # Story dates scale with the length of the run; a live run uses a 30-day story arc.
        self.accounts = build_accounts(config.seed, config.accounts, config.days or 30, config.start_ms)
        self._id_prefix = f"{config.seed}:{config.start_ms}:"
        self._jitter = random.Random(f"preempt-simulate/{config.seed}/jitter")
        self._churned_at: dict[int, int] = (
            {a.index: a.outcome.at_ms(config.start_ms) for a in self.accounts if a.outcome.churned}
            if config.lifecycle
            else {}
        )

    def events(self, on_day: Callable[[int], None] | None = None) -> Iterator[Event]:
        """Every event of the run, ordered by time (up to the small SDK jitter).

        ``on_day(day)`` is called after each simulated day is generated (progress bars).
        """
        cfg = self.config
        end_ms = None if cfg.days is None else cfg.start_ms + cfg.days * DAY_MS
        pending: list[RawEvent] = []
        day = 0
        while cfg.days is None or day < cfg.days:
            day_start = cfg.start_ms + day * DAY_MS
            for acc in self.accounts:
                local = local_day(acc.account.timezone, day_start)
                for step in _DAY_STEPS:
                    step(acc, day, local, pending)
                if cfg.lifecycle and acc.outcome.day == day:
                    outcome = acc.outcome
                    props = {"reason": outcome.reason, "mrr": acc.account.mrr}
                    emit(
                        acc,
                        pending,
                        outcome.at_ms(cfg.start_ms),
                        _OUTCOME_EVENT[outcome.outcome],
                        None,
                        props,
                        "billing",
                    )
            pending.sort()
            # Later days only produce events at or after their own start.
            release_before = day_start + DAY_MS
            cut = bisect.bisect_left(pending, release_before, key=_time_of)
            ready, pending = pending[:cut], pending[cut:]
            yield from self._to_events(ready, end_ms)
            if on_day is not None:
                on_day(day)
            day += 1

    def _to_events(self, raws: list[RawEvent], end_ms: int | None) -> Iterator[Event]:
        accounts = self.accounts
        jitter = self._jitter
        start_ms = self.config.start_ms
        churned_at = self._churned_at
        for t_ms, index, seq, name, user_id, props, app in raws:
            if end_ms is not None and t_ms >= end_ms:
                return
            if t_ms > churned_at.get(index, t_ms):
                continue  # a churned account is gone
            acc = accounts[index]
            if name in _JITTERED and jitter.random() < _JITTER_P:
                t_ms = max(start_ms, t_ms - jitter.randint(50, MAX_JITTER_MS))
            event_id = hashlib.blake2b(f"{self._id_prefix}{acc.account_id}:{seq}".encode(), digest_size=12).hexdigest()
            yield Event(
                event_id=event_id,
                event=name,
                account_id=acc.account_id,
                ts=t_ms / 1000,
                user_id=user_id,
                properties=props,
                context={"app": app},
            )


def _time_of(raw: RawEvent) -> int:
    return raw[0]
