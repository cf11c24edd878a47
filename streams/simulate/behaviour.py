"""Everyday behaviour of one account on one simulated day: user sessions, API traffic, the nightly
licence report. Persona stories (``streams.simulate.episodes``) bend it: decay, silence, outages.
"""

from __future__ import annotations

import math
import random
from typing import Any

from streams.simulate import catalogue as c
from streams.simulate.accounts import SimAccount, SimUser
from streams.simulate.local_time import HOUR_MS, LocalDay
from streams.simulate.personas import Incident

# (t_ms, account index, sequence within the account, event, user_id, properties, app)
RawEvent = tuple[int, int, int, str, str | None, dict[str, Any], str]

_ACTIONS = (c.DASHBOARD_VIEWED, c.FEATURE_USED, c.SEARCH_PERFORMED, c.REPORT_EXPORTED, c.COMMENT_ADDED)
_ACTION_WEIGHTS = (30, 32, 12, 8, 6)
_WEEKEND_P = 0.08


def emit(
    acc: SimAccount,
    out: list[RawEvent],
    t_ms: int,
    event: str,
    user_id: str | None,
    properties: dict[str, Any],
    app: str = "web",
) -> None:
    """Record one event of ``acc``; the per-account sequence number makes its id unique."""
    acc.events += 1
    out.append((t_ms, acc.index, acc.events, event, user_id, properties, app))


def activity_factor(acc: SimAccount, user: SimUser, day: int) -> float:
    """How much of their usual activity ``user`` shows on ``day`` (0 = none), per the persona plan."""
    plan = acc.plan
    if user.invited_day is not None and day < user.invited_day:
        return 0.0
    if plan.dark_day is not None and day >= plan.dark_day:
        return 0.0
    if plan.champion_quiet_day is not None and user is acc.users[0] and day >= plan.champion_quiet_day:
        return 0.0
    if plan.decay_day is not None and day >= plan.decay_day and (plan.recover_day is None or day < plan.recover_day):
        return max(0.04, math.exp(-(day - plan.decay_day) / 2.5))
    if not plan.onboarding_completes and plan.joined_day is not None and day > plan.joined_day + 1:
        return 0.3
    return 1.0


def usage_day(acc: SimAccount, day: int, local: LocalDay, out: list[RawEvent]) -> None:
    """Every user's sessions on ``day``."""
    rng = acc.rng
    for user in acc.users:
        factor = activity_factor(acc, user, day)
        if factor <= 0.0:
            continue
        base_p = _WEEKEND_P if local.weekend else user.weekday_p
        if rng.random() >= base_p * factor:
            continue
        user.last_active_day = day
        sessions = 1 + (rng.random() < 0.3) + (rng.random() < 0.08)
        hours = rng.choices(range(24), cum_weights=local.cum_weights, k=sessions)
        for hour in hours:
            start = local.start_ms + hour * HOUR_MS + rng.randrange(HOUR_MS - 600_000)
            _session(acc, user, start, rng, out)


def _session(acc: SimAccount, user: SimUser, t_ms: int, rng: random.Random, out: list[RawEvent]) -> None:
    emit(acc, out, t_ms, c.LOGIN, user.user_id, {"method": rng.choice(c.LOGIN_METHODS), "role": user.role})
    for action in rng.choices(_ACTIONS, weights=_ACTION_WEIGHTS, k=rng.randint(2, 5)):
        t_ms += rng.randint(15_000, 240_000)
        props: dict[str, Any]
        if action == c.DASHBOARD_VIEWED:
            props = {"dashboard_id": f"db-{rng.randint(1, 30)}"}
        elif action == c.FEATURE_USED:
            props = {"feature": rng.choice(user.features)}
        elif action == c.SEARCH_PERFORMED:
            props = {"results": rng.randint(0, 60)}
        elif action == c.REPORT_EXPORTED:
            props = {"format": rng.choice(c.EXPORT_FORMATS), "rows": rng.randint(10, 50_000)}
        else:
            props = {"thread_id": f"th-{rng.randint(1, 500)}"}
        emit(acc, out, t_ms, action, user.user_id, props)


def api_day(acc: SimAccount, day: int, local: LocalDay, out: list[RawEvent]) -> None:
    """The account's integration calling our API: steady, business-hours shaped, with the persona's
    outages (a retry storm of 5xx) and an expired token (401s, then the integration disconnects)."""
    plan = acc.plan
    if acc.api_rate <= 0 or (plan.dark_day is not None and day >= plan.dark_day):
        return
    rng = acc.rng
    factor = 1.0
    if plan.decay_day is not None and day >= plan.decay_day and (plan.recover_day is None or day < plan.recover_day):
        factor = max(0.1, math.exp(-(day - plan.decay_day) / 4.0))
    incident_hours = _hours_of(plan.incidents, day)
    expiry_hours = _hours_of((plan.auth_expiry,) if plan.auth_expiry else (), day)
    for hour in range(24):
        hour_start = local.start_ms + hour * HOUR_MS
        statuses: tuple[tuple[int, int], ...]
        if hour in incident_hours:
            statuses = c.INCIDENT_API_STATUSES
            calls = rng.randint(60, 110)  # clients retry failed calls: volume rises as errors do
        elif hour in expiry_hours:
            statuses = ((401, 1),)
            calls = max(8, _poisson(rng, 2 * acc.api_rate))
        else:
            statuses = c.HEALTHY_API_STATUSES
            calls = _poisson(rng, acc.api_rate * factor * (0.15 + 0.85 * local.weights[hour]))
        codes = rng.choices([s for s, _ in statuses], weights=[w for _, w in statuses], k=calls)
        for code in codes:
            props = {
                "endpoint": rng.choice(c.API_ENDPOINTS),
                "method": "POST" if rng.random() < 0.4 else "GET",
                "status": code,
                "latency_ms": rng.randint(30, 400) if code < 500 else rng.randint(2_000, 30_000),
            }
            emit(acc, out, hour_start + rng.randrange(HOUR_MS), c.API_REQUEST, None, props, "api")
    if plan.auth_expiry is not None and plan.auth_expiry.day == day:
        end = local.start_ms + (plan.auth_expiry.hour + plan.auth_expiry.hours) * HOUR_MS
        props = {"integration": acc.integration, "reason": "auth_expired"}
        emit(acc, out, end, c.INTEGRATION_DISCONNECTED, None, props, "integrations")
        admin = acc.users[0].user_id
        emit(
            acc,
            out,
            end + rng.randint(14, 26) * HOUR_MS,
            c.INTEGRATION_CONNECTED,
            admin,
            {"integration": acc.integration},
        )


def _hours_of(incidents: tuple[Incident, ...], day: int) -> set[int]:
    return {h for i in incidents if i.day == day for h in range(i.hour, min(24, i.hour + i.hours))}


def licence_report(acc: SimAccount, day: int, local: LocalDay, out: list[RawEvent]) -> None:
    """The nightly billing job's seat count: purchased vs. active in the last 30 days."""
    joined = acc.plan.joined_day
    if joined is not None and day < joined:
        return
    seats = acc.seats + acc.seats_added
    active = sum(1 for u in acc.users if u.last_active_day is not None and u.last_active_day >= day - 30)
    props = {"seats_purchased": seats, "seats_active_30d": active, "utilisation": round(active / seats, 3)}
    emit(acc, out, local.start_ms + 2 * HOUR_MS + acc.index * 1000, c.LICENSE_USAGE_REPORTED, None, props, "billing")


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth) for the small hourly rates used here."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
