"""Persona stories that happen on a given day: onboarding, invoices, NPS answers, expansion.

Each function is called for every account and day and does something only on the days its
plan names. A story may stamp events on later days (retries of a failed invoice); the
generator keeps them until their time comes.
"""

from __future__ import annotations

from streams.simulate import catalogue as c
from streams.simulate.accounts import SimAccount, add_members
from streams.simulate.behaviour import RawEvent, emit
from streams.simulate.local_time import DAY_MS, HOUR_MS, LocalDay

_MINUTE_MS = 60_000


def onboarding(acc: SimAccount, day: int, local: LocalDay, out: list[RawEvent]) -> None:
    """A new account signs up: its admin starts onboarding, invites the team and finishes in a day
    or two — or, for a stalled account, gives up after a step or two."""
    plan, rng = acc.plan, acc.rng
    if plan.joined_day != day:
        return
    admin = acc.users[0]
    admin.last_active_day = day
    t = local.start_ms + _busy_hour(local, rng.random()) * HOUR_MS + rng.randrange(30 * _MINUTE_MS)
    emit(acc, out, t, c.LOGIN, admin.user_id, {"method": "password", "role": admin.role})
    t += rng.randint(1, 5) * _MINUTE_MS
    emit(acc, out, t, c.ONBOARDING_STARTED, admin.user_id, {"plan": acc.account.plan, "seats": acc.seats})
    steps = c.ONBOARDING_STEPS if plan.onboarding_completes else c.ONBOARDING_STEPS[: rng.randint(1, 2)]
    for number, step in enumerate(steps, start=1):
        t += rng.randint(3, 600) * _MINUTE_MS if plan.onboarding_completes else rng.randint(3, 40) * _MINUTE_MS
        emit(acc, out, t, c.ONBOARDING_STEP_COMPLETED, admin.user_id, {"step": step, "step_number": number})
        if step == "invite_team":
            for user in acc.users[1:]:
                emit(
                    acc, out, t + rng.randint(5, 90) * 1000, c.USER_INVITED, admin.user_id, {"invitee_role": user.role}
                )
        elif step == "connect_data_source":
            emit(acc, out, t - 30_000, c.INTEGRATION_CONNECTED, admin.user_id, {"integration": acc.integration})
    if plan.onboarding_completes:
        emit(
            acc, out, t + rng.randint(1, 10) * _MINUTE_MS, c.ONBOARDING_COMPLETED, admin.user_id, {"steps": len(steps)}
        )
        first_workflow = t + rng.randint(2, 72) * HOUR_MS
        props = {"feature": c.KEY_FEATURE}
        emit(acc, out, first_workflow, c.FEATURE_USED, admin.user_id, props)


def billing(acc: SimAccount, day: int, local: LocalDay, out: list[RawEvent]) -> None:
    """The monthly invoice: paid; or failed and recovered after the admin updates the card; or failed,
    retried in vain, while the admin looks at the cancel page (and sometimes downgrades)."""
    plan, rng = acc.plan, acc.rng
    if day % 30 != plan.billing_day % 30 or (plan.joined_day is not None and day < plan.joined_day):
        return
    invoice = {
        "invoice_id": f"in_{acc.index:04d}_{day:03d}",
        "amount": acc.account.mrr,
        "currency": "USD",
    }
    t = local.start_ms + 6 * HOUR_MS + rng.randrange(HOUR_MS)
    if not plan.payment_fails or day != plan.billing_day:
        emit(acc, out, t, c.INVOICE_PAID, None, {**invoice, "attempt": 1}, "billing")
        return
    admin = acc.users[0].user_id
    reason = rng.choice(("card_declined", "expired_card", "insufficient_funds"))
    emit(acc, out, t, c.INVOICE_PAYMENT_FAILED, None, {**invoice, "attempt": 1, "reason": reason}, "billing")
    if plan.payment_recovers:
        fixed = t + rng.randint(2, 40) * HOUR_MS
        emit(acc, out, fixed, c.PAYMENT_METHOD_UPDATED, admin, {"method": "card"})
        emit(
            acc,
            out,
            fixed + rng.randint(1, 20) * _MINUTE_MS,
            c.INVOICE_PAID,
            None,
            {**invoice, "attempt": 2},
            "billing",
        )
        return
    for attempt, after_days in ((2, 3), (3, 5), (4, 7)):
        props = {**invoice, "attempt": attempt, "reason": reason}
        emit(acc, out, t + after_days * DAY_MS, c.INVOICE_PAYMENT_FAILED, None, props, "billing")
    looked = t + rng.randint(10, 60) * HOUR_MS
    emit(acc, out, looked, c.CANCEL_PAGE_VIEWED, admin, {"plan": acc.account.plan, "source": "billing_settings"})
    if rng.random() < 0.5:
        props = {
            "from_plan": acc.account.plan,
            "to_plan": c.TIERS["starter"].plan,
            "mrr_delta": -round(acc.seats * 26.0),
        }
        emit(acc, out, looked + rng.randint(30, 100) * HOUR_MS, c.SUBSCRIPTION_DOWNGRADED, admin, props)


def nps(acc: SimAccount, day: int, local: LocalDay, out: list[RawEvent]) -> None:
    """The in-app NPS survey: a share of the current users answer within a few days; detractor
    stories add one to three angry answers on their day."""
    plan, rng = acc.plan, acc.rng
    live_users = [u for u in acc.users if u.invited_day is None or u.invited_day <= day]
    if day == plan.nps_day and plan.dark_day is None:
        scores = (9, 10) if plan.promoter else (7, 8, 9, 10)
        weights = (1, 1) if plan.promoter else (2, 3, 3, 2)
        answer_p = 0.5 if plan.promoter else 0.25
        for user in live_users:
            if rng.random() < answer_p:
                when = local.start_ms + rng.randrange(3 * DAY_MS)
                score = rng.choices(scores, weights=weights)[0]
                emit(acc, out, when, c.NPS_SUBMITTED, user.user_id, {"score": score, "channel": "in_app"})
    if day == plan.detractor_day:
        angry = rng.sample(live_users, min(len(live_users), rng.randint(1, 3)))
        for user in angry:
            when = local.start_ms + _busy_hour(local, rng.random()) * HOUR_MS + rng.randrange(HOUR_MS)
            props = {"score": rng.randint(1, 6), "channel": "in_app", "comment": rng.choice(_COMPLAINTS)}
            emit(acc, out, when, c.NPS_SUBMITTED, user.user_id, props)


def expansion(acc: SimAccount, day: int, local: LocalDay, out: list[RawEvent]) -> None:
    """Promoters grow: the admin buys seats and connects another integration mid-month."""
    if not acc.plan.promoter or day != acc.plan.nps_day:
        return
    rng = acc.rng
    added = rng.randint(2, 6)
    acc.seats_added += added
    admin = acc.users[0].user_id
    t = local.start_ms + _busy_hour(local, rng.random()) * HOUR_MS
    emit(acc, out, t, c.SEAT_ADDED, admin, {"seats_added": added, "seats_total": acc.seats + acc.seats_added})
    add_members(acc, added, day + 1)
    for _ in range(added):
        emit(acc, out, t + rng.randint(1, 30) * _MINUTE_MS, c.USER_INVITED, admin, {"invitee_role": "member"})
    other = rng.choice([i for i in c.INTEGRATIONS if i != acc.integration])
    emit(acc, out, t + rng.randint(1, 48) * HOUR_MS, c.INTEGRATION_CONNECTED, admin, {"integration": other})


def _busy_hour(local: LocalDay, u: float) -> int:
    """The hour offset of the ``u``-quantile of the day's activity (a busy hour for ``u`` ≈ 0.5)."""
    total = local.cum_weights[-1]
    for hour, cum in enumerate(local.cum_weights):
        if cum >= u * total and local.weights[hour] > 0:
            return hour
    return 12


_COMPLAINTS = (
    "Dashboards take forever to load.",
    "We still can't get the Salesforce sync to work.",
    "Too expensive for what we use.",
    "Support took a week to answer.",
    "Missing the reporting we were promised.",
    "",
)
