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
