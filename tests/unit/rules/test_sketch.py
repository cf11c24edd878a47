"""``distinct:`` buckets past 1,000 values become a HyperLogLog sketch (``rules.sketch``) instead of silently
counting no further: an account with 20,000 weekly active users counted 1,000 every week, so its fall to
2,000 went unseen. Up to 1,000 values a bucket stays the exact list it always was."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rules import sketch, windows
from rules.measures import DISTINCT_VALUES_PER_BUCKET
from tests.unit.rules.conftest import DAY, MONDAY


@pytest.mark.parametrize("n", [1_001, 5_000, 20_000, 100_000])
def test_a_sketch_estimates_distinct_values_within_a_few_percent(n: int) -> None:
    """4,096 registers: the standard error is 1.6 %; these (deterministic) estimates are within 4 %."""
    estimate = sketch.estimate(sketch.of_values(f"user-{i:025d}" for i in range(n)))
    assert abs(estimate - n) / n < 0.04, estimate


def test_a_bucket_stays_an_exact_list_up_to_the_bound_and_then_becomes_a_sketch() -> None:
    """Values past DISTINCT_VALUES_PER_BUCKET are counted (before: dropped); repeats never grow either form."""
    value: Any = []
    for i in range(DISTINCT_VALUES_PER_BUCKET):
        value = windows.add_distinct(value, f"u{i}")
        value = windows.add_distinct(value, f"u{i}")
    assert value == [f"u{i}" for i in range(DISTINCT_VALUES_PER_BUCKET)]
    assert windows.reduce_value(value) == DISTINCT_VALUES_PER_BUCKET
    for i in range(DISTINCT_VALUES_PER_BUCKET, 3 * DISTINCT_VALUES_PER_BUCKET):
        value = windows.add_distinct(value, f"u{i}")
    assert sketch.is_sketch(value)
    assert len(value) == sketch.REGISTERS
    assert windows.add_distinct(value, "u0") == value
    assert abs(windows.reduce_value(value) - 3_000) < 90


def test_a_window_of_lists_and_sketches_counts_their_union() -> None:
    """A sliding window's buckets, some lists and some sketches, overlapping: one count of the union."""
    big = sketch.of_values(f"u{i}" for i in range(5_000))
    small = [f"u{i}" for i in range(4_500, 5_500)]  # 500 already in the sketch
    buckets: windows.Buckets = [[1, big], [2, small], [3, ["u0", "other"]]]
    total = windows.total(buckets, 1, 3, "distinct")
    assert abs(total - 5_501) < 0.04 * 5_501
    previous, current = windows.split_totals(buckets, 2, "distinct")
    assert abs(previous - 5_000) < 200
    assert current == 1_002.0  # two exact lists: exact (1,000 + "u0" + "other")


def test_a_drop_rule_sees_a_large_accounts_active_users_fall(
    make_rule: Any, make_engine: Any, run: Any, at: Any
) -> None:
    """20,000 daily active users, then 2,000: the drop fires (before, both days counted 1,000, no alert)."""
    rule = make_rule("drop", measure="distinct:user_id", baseline_windows=1, drop_pct=50)
    events = [at(i * 1.0, "Login", user_id=f"user-{i:06d}") for i in range(20_000)]
    events += [at(DAY + i * 1.0, "Login", user_id=f"user-{i:06d}") for i in range(20_000)]
    events += [at(2 * DAY + i * 1.0, "Login", user_id=f"user-{i:06d}") for i in range(2_000)]
    result = run(make_engine(rule), events, until=MONDAY + 3 * DAY)
    [finding] = result.findings
    assert finding.fired_at == MONDAY + 3 * DAY
    assert abs(finding.evidence["baseline"] - 20_000) < 800
    assert abs(finding.evidence["value"] - 2_000) < 80
    again = make_engine(rule).loads(make_engine(rule).dumps(result.state))  # a sketch survives the state codec
    assert orjson.loads(make_engine(rule).dumps(again)) == orjson.loads(make_engine(rule).dumps(result.state))


def test_a_threshold_over_distinct_users_can_count_past_the_bucket_bound(
    make_rule: Any, make_engine: Any, run: Any, at: Any
) -> None:
    """1,500 distinct users within one 10-second bucket reach min 1,200 (before: the bucket stopped at 1,000)."""
    rule = make_rule("threshold", measure="distinct:user_id", min=1_200, match={"event": "Login"})
    events = [at(i * 0.005, "Login", user_id=f"user-{i:06d}") for i in range(1_500)]
    result = run(make_engine(rule), events, until=MONDAY + 60)
    assert len(result.findings) == 1
    assert result.findings[0].evidence["value"] >= 1_200


def test_a_keys_window_lists_at_most_max_listed_values_then_sketches_them(
    make_rule: Any, make_engine: Any, run: Any, at: Any
) -> None:
    """20,000 users in one hour, 333 a minute (no bucket reaches 1,000): the 60 lists together took 660 KB of
    state and quarantined the account; past MAX_LISTED_VALUES they become sketches of 1,024 registers, the
    rule's state stays under 64 KB and counts the hour within a few percent."""
    rule = make_rule("threshold", measure="distinct:user_id", window="1h", min=19_000, match={"event": "Login"})
    engine = make_engine(rule)
    events = [at(i * 0.18, "Login", user_id=f"user-{i:025d}") for i in range(20_000)]
    result = run(engine, events, until=MONDAY + 3_600)
    rule_state = orjson.loads(engine.dumps(result.state))["r"][rule.id][1]
    assert len(orjson.dumps(rule_state)) < 64 * 1024
    [finding] = result.findings  # reached 19,000 (before: exact, in a state the worker refused)
    assert finding.evidence["value"] >= 19_000
    [key] = result.state.rules[rule.id].keys.values()
    assert abs(windows.total(key.buckets, key.buckets[0][0], key.buckets[-1][0], "distinct") - 20_000) < 1_000


def test_a_window_within_max_listed_values_stays_exact(make_rule: Any, make_engine: Any, run: Any, at: Any) -> None:
    """80 users active every minute of an hour (4,800 listed values): exact lists, exact counts, as before."""
    rule = make_rule("threshold", measure="distinct:user_id", window="1h", min=80, match={"event": "Login"})
    events = [
        at(minute * 60.0 + user * 0.5, "Login", user_id=f"u{user:03d}") for minute in range(60) for user in range(80)
    ]
    result = run(make_engine(rule), events, until=MONDAY + 3_600)
    [key] = result.state.rules[rule.id].keys.values()
    assert all(type(values) is list for _, values in key.buckets)
    assert windows._listed(key.buckets) == 4_800
    assert result.findings[0].evidence["value"] == 80


def test_a_keys_buckets_are_exact_again_once_its_burst_has_passed(
    make_rule: Any, make_engine: Any, run: Any, at: Any
) -> None:
    """20,000 users in one hour turn the key's buckets into sketches; 30 users a minute for the next two hours are
    listed exactly again, so the hour's count is exactly 30 once the burst left the window. Before, every new bucket
    of a key with a sketch was a sketch, for as long as the key stayed active: counts were estimates for ever."""
    rule = make_rule("threshold", measure="distinct:user_id", window="1h", min=1_000_000, match={"event": "Login"})
    engine = make_engine(rule)
    events = [at(i * 0.18, "Login", user_id=f"user-{i:025d}") for i in range(20_000)]
    events += [
        at(3_600 + minute * 60.0 + user, "Login", user_id=f"regular-{user:02d}")
        for minute in range(120)
        for user in range(30)
    ]
    result = run(engine, events, until=MONDAY + 3 * 3_600)
    [key] = result.state.rules[rule.id].keys.values()
    recent = [values for index, values in key.buckets if index > key.buckets[-1][0] - 60]
    assert all(type(values) is list for values in recent)
    assert windows.total(key.buckets, key.buckets[-1][0] - 59, key.buckets[-1][0], "distinct") == 30


def _add_value_as_specified(buckets: windows.Buckets, index: int, contribution: str, precision: int) -> None:
    """``windows.add_value`` as first written (add_distinct, then every listed bucket a sketch once the key lists
    more than MAX_LISTED_VALUES): the fast path must do exactly this."""
    if buckets and buckets[-1][0] == index:
        slot = buckets[-1]
    else:
        slot = [index, sketch.empty(precision) if windows._busy(buckets) else []]
        buckets.append(slot)
    size = len(slot[1]) if type(slot[1]) is list else None
    slot[1] = windows.add_distinct(slot[1], contribution, precision)
    grew = size is not None and type(slot[1]) is list and len(slot[1]) > size
    if grew and windows._listed(buckets) > windows.MAX_LISTED_VALUES:
        for bucket in buckets:
            if type(bucket[1]) is list:
                bucket[1] = sketch.of_values(bucket[1], sketch.empty(precision))


@pytest.mark.parametrize(("per_bucket", "listed", "quiet"), [(12, 20, 9), (6, 30, 3)])
def test_add_value_does_what_add_distinct_and_the_listed_bound_say(
    monkeypatch: pytest.MonkeyPatch, per_bucket: int, listed: int, quiet: int
) -> None:
    """Repeats, new values, full buckets, a key past the listed bound, quiet buckets after a burst: the same buckets
    after every step (small bounds so that every path is taken many times)."""
    monkeypatch.setattr(windows, "DISTINCT_VALUES_PER_BUCKET", per_bucket)
    monkeypatch.setattr(windows, "MAX_LISTED_VALUES", listed)
    monkeypatch.setattr(windows, "BUSY_VALUES_PER_BUCKET", 5)
    fast: windows.Buckets = []
    specified: windows.Buckets = []
    paths = set()
    for step in range(4_000):
        index = step // 25
        users = 40 if index % 7 in (2, 3) else quiet  # bursts, then quiet buckets again
        value = f"u{(step * 7919) % users}"
        listed_before = windows._listed(fast)
        windows.add_value(fast, index, value, 7)
        _add_value_as_specified(specified, index, value, 7)
        assert fast == specified, step
        paths.add((type(fast[-1][1]).__name__, windows._listed(fast) - listed_before))
        windows.prune(fast, index - 3)
        windows.prune(specified, index - 3)
    assert {("list", 0), ("list", 1), ("str", 0)} <= paths
    assert any(listed < 0 for _, listed in paths)  # some key's lists became sketches past the bound
