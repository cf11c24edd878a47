"""Training's vocabulary and samples on hand-made histories (the fit itself is exercised by test_train)."""

from __future__ import annotations

import gc
import math
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest

from rules.risk import features
from rules.risk.model import standardize
from schemas.event import Event, format_ts
from schemas.outcome import AccountOutcome, Outcomes, collect
from streams.prescient.training import (
    OUTCOME_EVENT_NAMES,
    Samples,
    build_spec,
    collect_samples,
    fit,
)

DAY = 86400.0
T0 = 1_795_392_000.0  # a UTC midnight


def _events() -> list[Event]:
    events = []
    for account in ("a", "b", "c"):
        for day in range(40):
            ts = T0 + day * DAY + 3600
            events.append(
                Event(f"{account}-l{day}", "Login", account, ts, "u1", {"role": "admin", "session": f"s{day}"})
            )
            if day % 10 == 0:
                events.append(Event(f"{account}-n{day}", "NPS", account, ts + 60, "u1", {"score": day % 7 + 2}))
    events.append(Event("c-x", "Subscription Cancelled", "c", T0 + 30 * DAY, None, {}))
    return sorted(events, key=lambda e: e.ts)


def test_vocabulary_comes_from_the_events() -> None:
    """Event names and low-cardinality property values become terms; ids and outcome events do not."""
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES)
    labels = {t.label for t in spec.terms}
    assert {"Login", "NPS"} <= labels
    assert not any(label.startswith("Login[session=") for label in labels)  # 40 distinct values: an id
    assert "Subscription Cancelled" not in labels
    assert [n.label for n in spec.numerics] == ["NPS.score"]


def test_only_listed_events_when_asked() -> None:
    """``only`` restricts the vocabulary to the listed event names."""
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES, only=frozenset({"NPS"}))
    assert {t.event for t in spec.terms} == {"NPS"}


def test_samples_are_labelled_by_churn_within_the_horizon() -> None:
    """Weekly snapshots after the warm-up; 1 when churn follows within the horizon; none after churn."""
    outcomes = collect(
        [
            AccountOutcome(account_id="a", outcome="renewed", at=format_ts(T0 + 90 * DAY)),
            AccountOutcome(account_id="c", outcome="churned", at=format_ts(T0 + 30 * DAY + 7200)),
        ]
    )
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES)
    samples = collect_samples(spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=14 * DAY)
    got = sorted(zip(samples.accounts, [(t - T0) / DAY for t in samples.times], samples.labels, strict=True))
    # ticks on days 8, 15, 22, 29, 36; warm from day 15; b has no outcome; c churns on day 30.08
    assert got == [
        ("a", 15.0, 0),
        ("a", 22.0, 0),
        ("a", 29.0, 0),
        ("a", 36.0, 0),
        ("c", 15.0, 0),
        ("c", 22.0, 1),
        ("c", 29.0, 1),
    ]
    late_left_out = collect_samples(
        spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=14 * DAY, min_lead=7 * DAY
    )
    assert [
        (a, (t - T0) / DAY) for a, t in zip(late_left_out.accounts, late_left_out.times, strict=True) if a == "c"
    ] == [("c", 15.0), ("c", 22.0)]


def test_snapshots_between_the_horizon_and_the_negative_horizon_are_left_out() -> None:
    """With a 10-day horizon and a 20-day negative horizon, c's snapshot 15 days before its churn is neither label."""
    outcomes = collect(
        [
            AccountOutcome(account_id="a", outcome="renewed", at=format_ts(T0 + 90 * DAY)),
            AccountOutcome(account_id="c", outcome="churned", at=format_ts(T0 + 30 * DAY + 7200)),
        ]
    )
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES)
    samples = collect_samples(
        spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=14 * DAY, negative_horizon=20 * DAY
    )
    got = sorted(zip(samples.accounts, [(t - T0) / DAY for t in samples.times], samples.labels, strict=True))
    assert [g for g in got if g[0] == "c"] == [("c", 22.0, 1), ("c", 29.0, 1)]  # day 15 (15.1 d ahead) left out
    assert len([g for g in got if g[0] == "a"]) == 4  # a renews: every snapshot stays a retained example
    with pytest.raises(ValueError, match="negative horizon"):
        collect_samples(spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=0, negative_horizon=DAY)


def test_events_out_of_order_beyond_the_lateness_are_ignored_like_the_engine() -> None:
    """An event older than the watermark is counted as late and not used, as the engine does."""
    events = _events()
    events.append(Event("old", "Login", "a", T0 + 3 * DAY, "u9", {}))
    samples = collect_samples(build_spec(events), events, collect([]), horizon=DAY, every=7 * DAY, warmup=DAY)
    assert samples.late == 1


def test_account_records_add_their_features_and_vocabulary() -> None:
    """With records the spec is version 3 with the tiers enough accounts share; samples carry the record's facts."""
    from datetime import date

    from schemas.account import Account

    records = {
        "a": Account(account_id="a", tier="pro", seats=4, renewal_date=date(2026, 12, 20)),
        "b": Account(account_id="b", tier="pro", seats=8),
        "c": Account(account_id="c", tier="free"),
    }
    events_only = build_spec(_events(), OUTCOME_EVENT_NAMES)
    assert (events_only.version, events_only.uses_accounts) == (2, False)
    spec = build_spec(_events(), OUTCOME_EVENT_NAMES, min_account_share=0.5, accounts_file=records)
    assert (spec.version, spec.tiers, spec.plans) == (3, ("pro",), ())  # "free": 1 of 3 accounts, under 50 %
    outcomes = collect([AccountOutcome(account_id=a, outcome="renewed", at=format_ts(T0 + 90 * DAY)) for a in "abc"])
    samples = collect_samples(
        spec, _events(), outcomes, horizon=10 * DAY, every=7 * DAY, warmup=14 * DAY, accounts_file=records
    )
    column = {name: i for i, name in enumerate(spec.names)}
    first = {
        a: row for a, t, row in zip(samples.accounts, samples.times, samples.rows, strict=True) if t == T0 + 15 * DAY
    }
    assert first["a"][column["days_to_renewal"]] == pytest.approx(math.log1p(12.0))  # day 15 = 2026-12-08
    assert first["b"][column["days_to_renewal"]] is None
    assert [first[a][column["tier:pro"]] for a in "abc"] == [1.0, 1.0, 0.0]
    assert first["a"][column["seat_use_28d"]] == pytest.approx(0.25)  # one user of 4 seats


def _busy_history(accounts: int, days: int, per_day: int) -> Iterator[Event]:
    """Events made on the fly (none kept by the caller): ``per_day`` logins a day per account, in time order."""
    for day in range(days):
        for slot in range(per_day):
            for number in range(accounts):
                ts = T0 + day * DAY + 3600 + slot * 1000 + number  # in time order for up to 1,000 accounts
                role = "admin" if (day + number) % 3 else "viewer"
                yield Event(f"e{number}-{day}-{slot}", "Login", f"acc{number}", ts, f"u{slot % 3}", {"role": role})


def _outcomes_of(accounts: int, days: int) -> Outcomes:
    return collect(
        [
            AccountOutcome(
                account_id=f"acc{n}",
                outcome="churned" if n % 2 else "renewed",
                at=format_ts(T0 + (days - 5 - n % 7) * DAY + 7200),
            )
            for n in range(accounts)
        ]
    )


def test_samples_cost_8_bytes_a_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """The samples are kept as float64 arrays, not as lists of Python floats (about 32 bytes a feature): 100,000
    accounts' samples went over 10 GB before."""
    from streams.prescient import training

    monkeypatch.setattr(training, "SAMPLE_CHUNK_ROWS", 256)
    accounts, days = 50, 30
    spec = build_spec(_busy_history(accounts, 3, 1), OUTCOME_EVENT_NAMES)
    tracemalloc.start()
    try:
        samples = collect_samples(
            spec, _busy_history(accounts, days, 1), _outcomes_of(accounts, days), 60 * DAY, DAY, DAY
        )
        gc.collect()
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    width = len(spec.names)
    assert len(samples.labels) > 4 * 256
    assert kept / len(samples.labels) < 1.3 * 8 * width + 100  # the last block's unused rows, labels, ids, times


def test_memory_does_not_grow_with_the_number_of_events() -> None:
    """Event ids are remembered for the engine's dedup horizon (a day of event time), not for the whole history:
    a set of every (account, event id) made memory grow by about 200 bytes an event. Past the 70 days the
    feature state keeps, twice the days (and events) take no more memory."""
    accounts, per_day = 5, 20

    def peak(days: int) -> int:
        spec = build_spec(_busy_history(accounts, 3, 1), OUTCOME_EVENT_NAMES)
        tracemalloc.start()
        try:
            samples = collect_samples(
                spec, _busy_history(accounts, days, per_day), _outcomes_of(accounts, days), 60 * DAY, 70 * DAY, DAY
            )
            assert samples.labels
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    more_events = accounts * 75 * per_day
    growth = (peak(150) - peak(75)) / more_events
    assert growth < 20, f"{growth:.0f} bytes for each further event"


def test_an_event_id_repeated_within_the_dedup_horizon_counts_once_and_later_is_a_new_event() -> None:
    """As the engine: the same (account, event id) within a day of event time is a duplicate, ignored and counted;
    an id reused a month later is another event, which the engine applies."""
    events = _events()
    first = events[5]
    again = Event(first.event_id, first.event, first.account_id, first.ts, first.user_id, dict(first.properties))
    reused = Event("a-l0", "Login", "a", T0 + 30 * DAY + 7200, "u2", {})  # a-l0 was day 0's login
    spec = build_spec(events, OUTCOME_EVENT_NAMES)
    outcomes = collect([AccountOutcome(account_id="a", outcome="renewed", at=format_ts(T0 + 90 * DAY))])
    column = spec.names.index("active_users_7d")

    def users_on_day_36(history: list[Event]) -> float | None:
        samples = collect_samples(spec, sorted(history, key=lambda e: e.ts), outcomes, DAY, 7 * DAY, DAY)
        assert (samples.duplicates, samples.late) == (1 if any(e is again for e in history) else 0, 0)
        return dict(zip(samples.times, samples.rows, strict=True))[T0 + 36 * DAY][column]

    assert users_on_day_36([*events, again]) == users_on_day_36(events)  # the repeat changes nothing
    assert users_on_day_36([*events, again, reused]) == pytest.approx(math.log1p(2))  # u1 and the reused id's u2


def test_the_fit_sees_the_numbers_the_list_based_training_saw() -> None:
    """Means, scales and the standardized matrix are exactly those of the former list-based code (Python sums in
    row order, ``rules.risk.model.standardize`` per row), so the same inputs give the same model file."""
    accounts, days = 24, 60
    spec = build_spec(_busy_history(accounts, 3, 1), OUTCOME_EVENT_NAMES)
    samples = collect_samples(spec, _busy_history(accounts, days, 2), _outcomes_of(accounts, days), 20 * DAY, DAY, DAY)
    rows = samples.rows
    width = len(spec.names)
    mean: list[float] = []
    scale: list[float] = []
    for j in range(width):
        column = [v for v in (r[j] for r in rows) if v is not None]
        m = sum(column) / len(column) if column else 0.0
        var = sum((v - m) ** 2 for v in column) / len(column) if column else 0.0
        mean.append(m)
        scale.append(math.sqrt(var) if var > 1e-12 else 1.0)
    expected = np.asarray([standardize(r, mean, scale) for r in rows], dtype=float)
    assert any(v is None for row in rows for v in row)  # unknown values are part of the comparison
    result = fit(samples, width, c=0.01)
    assert (result.mean, result.scale) == (mean, scale)
    assert np.array_equal(samples.matrix(), expected)


def test_accounts_without_an_outcome_keep_no_state_and_change_nothing() -> None:
    """An account without an outcome gives no sample, so the replay keeps no feature state for it (training on a
    sample of accounts, --accounts, then takes that much less memory); the samples are the same."""
    outcomes = _outcomes_of(10, 40)
    some = collect([o for a, o in outcomes.by_account.items() if a in {"acc1", "acc2", "acc3", "acc4"}])
    spec = build_spec(_busy_history(10, 3, 1), OUTCOME_EVENT_NAMES)

    def run(accounts: int) -> tuple[Samples, int]:
        tracemalloc.start()
        try:
            samples = collect_samples(spec, _busy_history(accounts, 40, 5), some, 60 * DAY, 7 * DAY, DAY)
            return samples, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    few, few_peak = run(5)
    many, many_peak = run(200)  # 195 more accounts, none of them with an outcome
    assert (few.accounts, few.times, few.labels) == (many.accounts, many.times, many.labels)
    assert np.array_equal(few.matrix(), many.matrix(), equal_nan=True)
    assert many_peak < 2 * few_peak


def _sdk_events() -> list[Event]:
    """Three accounts' events as a tracking SDK sends them: nested objects, a dotted key, lists, ambiguous keys."""
    events = []
    for account in ("a", "b", "c"):
        for day in range(40):
            ts = T0 + day * DAY + 3600
            props = {
                "plan": {"tier": ["free", "pro"][day % 2], "limits": {"seats": {"max": day % 3}}},
                "products": [{"sku": f"p{day % 2}"}],
                "filter[kind]": day % 2,
                "a=b": "c",
            }
            events.append(Event(f"{account}-l{day}", "Login", account, ts, "u1", props))
            if day % 10 == 0:
                survey = {"survey": {"score": day % 7 + 2}, "survey.channel": ["email", "app"][day % 20 // 10]}
                events.append(Event(f"{account}-n{day}", "NPS Submitted", account, ts + 60, "u1", survey))
            status = ["failed", "retrying", "ok"][day % 3]
            events.append(
                Event(f"{account}-p{day}", "Payment", account, ts + 90, None, {"payment": {"status": status}})
            )
    return events


def test_nested_properties_become_terms_by_their_path() -> None:
    """Nested objects give terms and numeric properties named by their dotted path (``Payment[payment.status=failed]``,
    ``NPS Submitted.survey.score``), a dotted key is the same path as the nested object, objects four deep, lists and
    keys holding ``[``, ``]`` or ``=`` give none (their names would be ambiguous)."""
    spec = build_spec(_sdk_events(), OUTCOME_EVENT_NAMES)
    labels = {t.label for t in spec.terms}
    assert {"Payment[payment.status=failed]", "Payment[payment.status=ok]", "Login[plan.tier=pro]"} <= labels
    assert {"NPS Submitted[survey.channel=email]", "NPS Submitted[survey.channel=app]"} <= labels
    assert [n.label for n in spec.numerics] == ["NPS Submitted.survey.score"]
    assert not any("seats" in label or "products" in label or "sku" in label for label in labels)
    assert not any("filter" in label or "a=b" in label for label in labels)
    failed = next(t for t in spec.terms if t.label == "Payment[payment.status=failed]")
    assert failed.prop == ("payment", "status")
    channel = next(t for t in spec.terms if t.label == "NPS Submitted[survey.channel=email]")
    assert channel.prop == ("survey", "channel")  # the dotted key, read as the path it names


def test_samples_of_nested_terms_are_the_stream_features() -> None:
    """Training's samples hold, for the nested terms too, exactly the features the engine computes for the account
    at that tick (``features.replay``, as the stream and the backtest fold events)."""
    events = _sdk_events()
    spec = build_spec(events, OUTCOME_EVENT_NAMES)
    assert spec.nested_events == {"Login", "NPS Submitted", "Payment"}
    outcomes = collect([AccountOutcome(account_id=a, outcome="renewed", at=format_ts(T0 + 90 * DAY)) for a in "abc"])
    samples = collect_samples(spec, sorted(events, key=lambda e: e.ts), outcomes, DAY, 7 * DAY, 14 * DAY)
    assert len(samples.labels) == 12
    counted = spec.names.index("count28:Payment[payment.status=failed]")
    for row, account, tick in zip(samples.rows, samples.accounts, samples.times, strict=True):
        ((_, explained),) = features.replay(spec, [e for e in events if e.account_id == account], [tick])
        assert row == features.values(explained)
        in_28_days = [day for day in range(40) if tick - 28 * DAY <= T0 + day * DAY < tick]
        assert row[counted] == math.log1p(sum(1 for day in in_28_days if day % 3 == 0))


def test_a_name_two_terms_would_share_is_no_feature() -> None:
    """``invoice.paid`` with ``amount`` and ``invoice`` with ``paid.amount`` would both be ``invoice.paid.amount``:
    neither becomes a feature (a contribution named so could be either); the other properties stay."""
    events = []
    for account in ("a", "b", "c"):
        for day in range(0, 40, 5):
            ts = T0 + day * DAY + 3600
            amount = {"amount": day, "currency": ["EUR", "USD"][day % 2]}
            events.append(Event(f"{account}-i{day}", "invoice.paid", account, ts, None, amount))
            events.append(Event(f"{account}-j{day}", "invoice", account, ts, None, {"paid": {"amount": day}}))
    spec = build_spec(events, OUTCOME_EVENT_NAMES)
    assert [n.label for n in spec.numerics] == []
    assert {"invoice.paid[currency=EUR]", "invoice.paid[currency=USD]", "invoice", "invoice.paid"} <= {
        t.label for t in spec.terms
    }
    assert len(set(spec.names)) == len(spec.names)
