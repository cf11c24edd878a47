"""Tests for schemas/health.py: the readiness decision and the consumer-lag arithmetic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from schemas.health import ConsumerState, lag_by_topic, readiness


class TP(NamedTuple):
    topic: str
    partition: int


@pytest.fixture
def make_state() -> Callable[..., ConsumerState]:
    """Factory: a ready worker's state, with overrides."""

    def factory(**overrides: Any) -> ConsumerState:
        base: dict[str, Any] = {
            "started": True,
            "rebalances": 1,
            "rebalancing": False,
            "in_recovery": False,
            "recovery_completed": True,
            "assigned_partitions": 4,
        }
        base.update(overrides)
        return ConsumerState(**base)

    return factory


def test_assigned_and_recovered_worker_is_ready(make_state: Callable[..., ConsumerState]) -> None:
    """A worker with its assignment and recovered tables is ready and says how many partitions it holds."""
    verdict = readiness(make_state(assigned_partitions=3))
    assert verdict.ready
    assert "3 partitions" in verdict.reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"started": False}, "consumer not started"),
        ({"rebalances": 0, "recovery_completed": False}, "assign partitions"),
        ({"rebalancing": True}, "rebalance in progress"),
        ({"rebalancing": True, "in_recovery": True}, "table recovery"),
        ({"recovery_completed": False}, "table recovery"),
    ],
)
def test_not_ready_states_name_their_reason(
    make_state: Callable[..., ConsumerState], overrides: dict[str, Any], reason: str
) -> None:
    """Each not-ready state gives a reason naming what is being waited for."""
    verdict = readiness(make_state(**overrides))
    assert not verdict.ready
    assert reason in verdict.reason


def test_empty_assignment_after_rebalance_is_ready(make_state: Callable[..., ConsumerState]) -> None:
    """A worker that got no partitions (more workers than partitions) is a healthy, ready member."""
    assert readiness(make_state(assigned_partitions=0)).ready


def test_lag_sums_end_minus_committed_per_topic() -> None:
    """Lag is the end offset minus the committed offset, summed over a topic's partitions."""
    a0, a1, b0 = TP("events", 0), TP("events", 1), TP("feedback", 0)
    lag = lag_by_topic([a0, a1, b0], {a0: 10, a1: 7, b0: 3}, {a0: 4, a1: 7, b0: 1}, {})
    assert lag == {"events": 6, "feedback": 2}


def test_lag_of_a_never_committed_partition_counts_from_earliest() -> None:
    """A partition without a committed offset is behind by everything from its earliest offset."""
    tp = TP("events", 0)
    assert lag_by_topic([tp], {tp: 50}, {tp: None}, {tp: 20}) == {"events": 30}


def test_lag_is_never_negative_and_skips_unknown_ends() -> None:
    """A committed offset past a stale end offset gives 0; a partition with no end offset is skipped."""
    a0, a1 = TP("events", 0), TP("events", 1)
    assert lag_by_topic([a0, a1], {a0: 5}, {a0: 9, a1: 0}, {}) == {"events": 0}
