"""The wakeup index: due accounts per partition, latest schedule wins."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from streams.worker import wakeups
from streams.worker.wakeups import COMPACT_SLACK, WakeupIndex


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


def test_an_account_rescheduled_at_every_event_leaves_a_bounded_heap() -> None:
    """An account whose wakeup moves at each event (an ``inactivity: 14d`` rule alone: wakeup = last event
    + 14 days) left one stale heap entry an event until the watermark passed it, 14 days later: at 1,000
    events/s, 1.2 billion entries. The heaps are rebuilt from the live wakeups past twice their count."""
    index = WakeupIndex()
    for i in range(100_000):
        index.set(i % 4, f"acct-{i % 10}", 1_000_000.0 + i)
    assert len(index) == 10
    assert index.entries <= 2 * 10 + COMPACT_SLACK + 1
    # each account's last move (i = 99,990 + k) put it on partition (2 + k) % 4
    assert sorted(index.pop_due(1, 2_000_000.0)) == ["acct-3", "acct-7"]


def test_accounts_rescheduled_while_due_ones_are_taken_each_come_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The processor reschedules each due account as ``iter_due`` yields it; a compaction in between
    replaces the heaps under the iteration, which must go on over the new ones."""
    monkeypatch.setattr(wakeups, "COMPACT_SLACK", 0)
    index = WakeupIndex()
    for n in range(50):
        index.set(0, f"a{n}", float(n))
    seen = []
    for account_id in index.iter_due(0, 100.0):
        seen.append(account_id)
        for k in range(5):  # enough stale entries to compact at every account
            index.set(0, account_id, 200.0 + k)
    assert sorted(seen) == sorted(f"a{n}" for n in range(50))
    assert len(index) == 50
    assert index.entries <= 2 * 50 + 1
    assert index.next_due(0) == 204.0


@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["set", "set", "set", "unset", "due", "drop"]),
            st.integers(0, 2),
            st.integers(0, 6),
            st.integers(0, 1000),
        ),
        max_size=120,
    )
)
@example(ops=[("set", 0, 0, t) for t in range(4)])  # one account moved again and again
@example(ops=[("set", 0, 0, 0), ("set", 0, 0, 1), ("set", 1, 1, 0), ("set", 0, 0, 0), ("unset", 0, 0, 0)])
@example(
    ops=[("set", 0, 0, 0), ("set", 0, 0, 1), ("set", 0, 1, 0), ("set", 0, 2, 0), ("set", 1, 0, 0), ("due", 1, 0, 0)]
)
@hypothesis_settings(max_examples=200, deadline=None)
def test_the_index_answers_as_a_plain_table_of_wakeups_would(ops: list[tuple[str, int, int, int]]) -> None:
    """Any sequence of schedules, unschedules, due pops and revocations, compacting at every chance:
    the same accounts come out as from a dict of live wakeups."""
    original = wakeups.COMPACT_SLACK
    wakeups.COMPACT_SLACK = 0
    try:
        index, model = WakeupIndex(), {}
        for op, partition, n, t in ops:
            account = f"a{n}"
            if op == "set":
                index.set(partition, account, float(t))
                model[account] = (partition, float(t))
            elif op == "unset":
                index.set(partition, account, None)
                model.pop(account, None)
            elif op == "due":
                due = {a for a, (p, w) in model.items() if p == partition and w <= t}
                assert set(index.pop_due(partition, float(t))) == due
                for a in due:
                    del model[a]
            else:
                index.drop_partitions([partition])
                model = {a: pw for a, pw in model.items() if pw[0] != partition}
            assert len(index) == len(model)
            assert index.entries >= len(model)  # every live wakeup still has its entry
            assert index.entries <= 2 * len(model) + 1  # compacted past twice the live wakeups, whatever lowered them
        for p in range(3):
            live = [w for (q, w) in model.values() if q == p]
            assert index.next_due(p) == (min(live) if live else None)
    finally:
        wakeups.COMPACT_SLACK = original
