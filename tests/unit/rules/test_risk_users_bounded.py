"""Risk features of accounts with many users a day: bounded state, estimated counts, exact below the bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from rules.kinds.risk import RiskEvaluator, RiskState
from rules.risk import features
from rules.risk.features import MAX_USERS_PER_DAY
from schemas.event import Event
from tests.unit.rules.risk_support import SPEC, risk_rule, write_model

DAY = 86400.0
T0 = 1_795_392_000.0  # a UTC midnight
ID = "user-" + "0" * 20  # 30-character ids, as bench.many_users


def _state(users_on: Any, days: int) -> dict[str, Any]:
    """Features state after ``days`` days in which ``users_on(day)`` (user numbers) each log in once."""
    state = features.new_state(SPEC)
    for day in range(days):
        users = list(users_on(day))
        for n, user in enumerate(users):
            ts = T0 + day * DAY + n * (80_000 / len(users))
            features.observe(SPEC, state, Event(f"{day}-{user}", "Login", "big", ts, f"{ID}{user:05d}"))
    return state


def _named(state: dict[str, Any], tick_day: int) -> dict[str, features.Explained]:
    return dict(zip(SPEC.names, features.compute(SPEC, state, T0 + tick_day * DAY), strict=True))


@pytest.fixture(scope="module")
def big() -> dict[str, Any]:
    """71 days of 3,000 users a day; in the last 14 days only the first 1,500 of them."""
    return _state(lambda day: range(1_500 if day >= 57 else 3_000), 71)


def test_an_account_of_thousands_of_daily_users_keeps_a_bounded_state(big: dict[str, Any]) -> None:
    """Its 70 days are sketch days and the state stays small: before, 256 listed ids a day took 594 KB after 70 days
    (quarantined beside the default pack), and the users past 256 were left out of every user feature."""
    size = len(orjson.dumps(big))
    assert size < 160_000, size
    assert all(type(day[3]) is dict for day in big["days"])
    assert all(len(day[3]["h"]) <= features.MAX_SAMPLE_PER_DAY for day in big["days"])
    assert len(big["ut"]) <= features.MAX_KNOWN_USERS


def test_user_counts_of_a_big_account_are_estimates_within_a_few_percent(big: dict[str, Any]) -> None:
    """Active users, the baseline's weekly users and the share of regulars still active read what happened (before:
    256 a day at most, and regulars retained from those first 256 only)."""
    got = _named(big, 71)
    assert got["active_users_7d"].now == pytest.approx(1_500, rel=0.1)
    assert got["active_users_vs_baseline"].before == pytest.approx(3_000, rel=0.1)
    assert got["seat_use_28d"].value is None  # no seats in an unknown account record: the count is not read there
    retained = got["baseline_users_retained"]
    assert retained.value == pytest.approx(0.5, abs=0.15)
    assert retained.before == pytest.approx(3_000, rel=0.35)  # the sample's regulars, scaled back up
    assert got["top_user_days_away"].value in (1.0, 15.0)  # a sampled every-day user, retained or not


USER_COUNTS = ("active_users_vs_baseline", "active_users_7d", "active_users_trend_4w", "baseline_users_retained")


def test_a_big_accounts_user_counts_read_as_estimates_and_a_small_ones_do_not(big: dict[str, Any]) -> None:
    """The reasons a CSM reads say "(estimated)" where a user count came from sketch days (it can be some percent
    off: 1,728 of 3,392 regulars for 1,500 of 3,000), and nowhere else; event counts stay exact either way."""
    from rules.risk.reasons import sentence

    got = _named(big, 71)
    for name in USER_COUNTS:
        assert sentence(name, got[name]).endswith(" (estimated)"), (name, sentence(name, got[name]))
    assert not sentence("activity_vs_baseline", got["activity_vs_baseline"]).endswith("(estimated)")
    small = _named(_state(lambda day: range(40), 71), 71)
    for name in USER_COUNTS:
        assert not sentence(name, small[name]).endswith("(estimated)"), (name, sentence(name, small[name]))


def test_an_account_within_the_bounds_lists_every_user_exactly() -> None:
    """256 users every day, the same ones: no sketch day, each id written once, exact counts; the state is a
    fraction of the 594 KB the ids listed per day took."""
    state = _state(lambda day: range(MAX_USERS_PER_DAY), 71)
    assert all(type(day[3]) is list and len(day[3]) == MAX_USERS_PER_DAY for day in state["days"])
    assert len(state["ut"]) == MAX_USERS_PER_DAY
    assert len(orjson.dumps(state)) < 120_000
    got = _named(state, 71)
    assert got["active_users_7d"].now == MAX_USERS_PER_DAY
    assert got["baseline_users_retained"].now == MAX_USERS_PER_DAY


def test_a_day_past_its_users_becomes_a_sketch_and_counts_them_all() -> None:
    """The 257th user of a day turns it into a sketch day (observe says so once, for the caller's metric) that
    counts every user: before, the users past 256 were not counted."""
    state = features.new_state(SPEC)
    said = [
        features.observe(SPEC, state, Event(f"e{n}", "Login", "big", T0 + n, f"{ID}{n:05d}"))
        for n in range(MAX_USERS_PER_DAY + 44)
    ]
    assert said.count(True) == 1
    assert said[MAX_USERS_PER_DAY] is True
    [day] = state["days"]
    assert type(day[3]) is dict
    assert features.sketch.estimate(day[3]["s"]) == pytest.approx(300, abs=6)


def test_ids_of_days_gone_by_leave_the_table_and_later_days_are_exact_again() -> None:
    """A burst of new users fills the table (sketch days), but 70 days later the table holds only the users of the
    kept days, renumbered, and the days are exact lists again: an account is not on estimates for ever."""
    state = _state(lambda day: range(day * 300, day * 300 + 300) if day < 10 else range(5), 90)
    assert all(type(day[3]) is list for day in state["days"])
    assert state["ut"] == {f"{ID}{n:05d}": n for n in range(5)}
    got = _named(state, 90)
    assert got["active_users_7d"].now == 5


def test_a_state_kept_before_the_user_table_reads_on_with_the_same_features() -> None:
    """A state of days listing user ids (as workers before kept it) is upgraded on read to the same features, and
    written back in that layout for state encoding version 1."""
    state = _state(lambda day: range(day % 7, 40 + day % 5), 71)
    old = features.downgrade(state)
    assert "ut" not in old
    assert all(isinstance(user, str) for day in old["days"] for user in day[3])
    expected = features.compute(SPEC, state, T0 + 71 * DAY)
    upgraded = features.upgrade(orjson.loads(orjson.dumps(old)))
    assert features.compute(SPEC, upgraded, T0 + 71 * DAY) == expected
    assert features.downgrade(upgraded) == old


def test_the_same_events_give_the_same_state_bytes() -> None:
    """Sketch days are deterministic: the same events (stream or backtest) give byte-identical states."""
    runs = [orjson.dumps(_state(lambda day: range(400 + day), 3)) for _ in range(2)]
    assert runs[0] == runs[1]


def test_a_worker_reads_on_a_state_of_the_layout_before_and_one_from_before_starts_a_state_of_today_afresh(
    tmp_path: Path,
) -> None:
    """A stored state of the layout before (the spec's digest, ids in the days) is continued, not restarted; a state
    of today's layout carries another digest, so a worker from before (which compares the spec's digest) starts it
    afresh, counted and logged, instead of reading user numbers as ids and failing on a sketch day."""
    evaluator = RiskEvaluator(risk_rule(write_model(tmp_path / "m.json")))
    old = features.downgrade(_state(lambda day: range(3), 5))
    assert old["d"] == SPEC.digest
    stored = {"deadline": T0 + 5 * DAY, "features": old, "armed": True, "risk": None}
    state = RiskState.decode(orjson.loads(orjson.dumps(stored)), 2)
    evaluator.on_event(state, Event("late", "Login", "big", T0 + 5 * DAY + 1, f"{ID}00001"))
    assert evaluator.restarted == 0
    assert state.features["d"] == features.state_digest(SPEC) != SPEC.digest
    assert len(state.features["days"]) == 6


def test_a_burst_day_makes_only_the_user_counts_it_is_part_of_read_as_estimates() -> None:
    """One day of 700 users among days of 25 (a bulk import) is a sketch day: the baseline's weekly users, which
    count it, read "(estimated)"; the last 7 days' and the 4-week trend's users, all of exact days, are exact and
    read so (before, any sketch day in the 70 days marked every user count an estimate); the per-user features
    (regulars retained, the champion's days away) read the users sampled on every day, so they stay estimates."""
    from rules.risk.reasons import sentence

    state = _state(lambda day: range(700) if day == 20 else range(day % 3, 25 + day % 3), 71)
    got = _named(state, 71)
    assert got["active_users_7d"].now == 27
    for name in ("active_users_7d", "active_users_trend_4w"):
        assert not sentence(name, got[name]).endswith("(estimated)"), (name, sentence(name, got[name]))
    for name in ("active_users_vs_baseline", "baseline_users_retained", "top_user_days_away"):
        assert sentence(name, got[name]).endswith(" (estimated)"), (name, sentence(name, got[name]))


def test_a_burst_day_leaves_the_per_user_features_of_the_other_days_as_they_were() -> None:
    """The same 70 days with and without a day of 700 users (a bulk import: a sketch day sampling one user in 16):
    the regulars retained and the champion's days away read the same. Before, the burst day's level applied to
    every day until it was 70 days old: no regular was sampled (retained unknown) and a user of the burst day only
    was the champion, away for 51 days: a churn signal for an account whose users all came back."""

    def users(burst: bool) -> Any:
        # user 0 (the champion) every day, users 1-24 three days in four; in the last 14 days users 13-24 are gone
        return lambda day: (
            range(700) if burst and day == 20 else [0, *(k for k in range(1, 13 if day >= 57 else 25) if (day + k) % 4)]
        )

    plain, burst = _named(_state(users(False), 71), 71), _named(_state(users(True), 71), 71)
    assert plain["baseline_users_retained"].value == pytest.approx(13 / 25)
    assert burst["baseline_users_retained"].value == plain["baseline_users_retained"].value
    assert burst["top_user_days_away"].value == plain["top_user_days_away"].value == 1.0
    assert burst["active_users_vs_baseline"].before > plain["active_users_vs_baseline"].before  # the burst is counted
