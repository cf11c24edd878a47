"""The wakeup index: due accounts per partition, latest schedule wins."""

from __future__ import annotations

from streams.worker.wakeups import WakeupIndex


def test_pop_due_returns_accounts_whose_wakeup_passed_on_that_partition_only() -> None:
    """Only wakeups at or before the watermark on the asked partition are returned, once."""
    index = WakeupIndex()
    index.set(0, "a", 10.0)
    index.set(0, "b", 20.0)
    index.set(1, "c", 5.0)
    assert index.pop_due(0, 15.0) == ["a"]
    assert index.pop_due(0, 15.0) == []
    assert index.next_due(0) == 20.0
    assert len(index) == 2


def test_rescheduling_replaces_the_old_wakeup() -> None:
    """A new wakeup for an account supersedes the earlier one; None unschedules it."""
    index = WakeupIndex()
    index.set(0, "a", 10.0)
    index.set(0, "a", 30.0)
    assert index.pop_due(0, 20.0) == []
    index.set(0, "a", None)
    assert index.pop_due(0, 100.0) == []


def test_drop_partitions_forgets_their_accounts() -> None:
    """Revoked partitions lose every wakeup."""
    index = WakeupIndex()
    index.set(2, "a", 1.0)
    index.drop_partitions([2])
    assert (len(index), index.pop_due(2, 10.0)) == (0, [])
