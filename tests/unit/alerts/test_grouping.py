"""Aggregation groups: group_wait, group_interval and repeat_interval per (receiver, group key)."""

from __future__ import annotations

from alerts.grouping import Grouper, GroupTiming

TIMING = GroupTiming(group_wait=30.0, group_interval=300.0, repeat_interval=3600.0)


def test_five_alerts_within_group_wait_flush_as_one_batch() -> None:
    """Five items added during group_wait come out together, once, when group_wait has passed."""
    grouper: Grouper[str] = Grouper()
    joined = [grouper.add("csm", "acme", TIMING, f"a{i}", now=100.0 + i) for i in range(5)]

    assert joined == [False, True, True, True, True]
    assert grouper.due(129.0) == []
    (batch,) = grouper.due(130.0)
    assert batch.items == ("a0", "a1", "a2", "a3", "a4")
    assert grouper.due(131.0) == []


def test_later_alerts_wait_for_group_interval() -> None:
    """An alert arriving after a flush is held until group_interval since that flush."""
    grouper: Grouper[str] = Grouper()
    grouper.add("csm", "acme", TIMING, "a0", now=0.0)
    grouper.due(30.0)
    grouper.add("csm", "acme", TIMING, "a1", now=40.0)

    assert grouper.next_due() == 330.0
    assert grouper.due(329.0) == []
    assert [b.items for b in grouper.due(330.0)] == [("a1",)]


def test_groups_are_separate_per_key_and_receiver() -> None:
    """Different group keys or receivers never share a batch."""
    grouper: Grouper[str] = Grouper()
    grouper.add("csm", "acme", TIMING, "a", now=0.0)
    grouper.add("csm", "globex", TIMING, "b", now=0.0)
    grouper.add("esc", "acme", TIMING, "c", now=0.0)

    batches = grouper.due(30.0)
    assert sorted((b.receiver, b.group_key, b.items) for b in batches) == [
        ("csm", "acme", ("a",)),
        ("csm", "globex", ("b",)),
        ("esc", "acme", ("c",)),
    ]


def test_group_idle_past_repeat_interval_starts_over_with_group_wait() -> None:
    """After repeat_interval without alerts the group is forgotten and the next alert waits group_wait."""
    grouper: Grouper[str] = Grouper()
    grouper.add("csm", "acme", TIMING, "a0", now=0.0)
    grouper.due(30.0)
    grouper.due(30.0 + 3600.0)
    assert len(grouper) == 0

    grouper.add("csm", "acme", TIMING, "a1", now=4000.0)
    assert grouper.next_due() == 4030.0


def test_hold_defers_items_until_the_given_time() -> None:
    """Items put back by quiet hours are flushed no earlier than the hold time."""
    grouper: Grouper[str] = Grouper()
    grouper.add("csm", "acme", TIMING, "a0", now=0.0)
    (batch,) = grouper.due(30.0)
    grouper.hold("csm", "acme", list(batch.items), until=500.0)

    assert grouper.due(499.0) == []
    assert [b.items for b in grouper.due(500.0)] == [("a0",)]


def test_discard_drops_matching_pending_items() -> None:
    """Pending items of revoked partitions can be dropped; the rest still flush."""
    grouper: Grouper[str] = Grouper()
    grouper.add("csm", "acme", TIMING, "keep", now=0.0)
    grouper.add("csm", "acme", TIMING, "drop", now=0.0)

    assert grouper.discard(lambda item: item == "drop") == 1
    assert [b.items for b in grouper.due(30.0)] == [("keep",)]
