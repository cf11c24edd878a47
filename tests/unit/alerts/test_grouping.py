"""Aggregation groups: group_wait, group_interval and repeat_interval per (receiver, group key)."""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.grouping import Batch, Grouper, GroupTiming

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


class ScanGrouper(Grouper[str]):
    """The grouper as it was before its heaps: due() and next_due() look at every group (the model)."""

    def due(self, now: float) -> list[Batch[str]]:
        batches: list[Batch[str]] = []
        for (receiver, group_key), group in list(self._groups.items()):
            if group.pending and group.flush_at is not None and group.flush_at <= now:
                batches.append(Batch(receiver, group_key, tuple(group.pending)))
                group.pending.clear()
                group.flush_at = None
                group.sent_before = group.last_flush_at
                group.last_flush_at = now
                group.idle_since = now
            elif not group.pending and now - group.idle_since >= group.timing.repeat_interval:
                del self._groups[(receiver, group_key)]
        return batches

    def next_due(self) -> float | None:
        times = [g.flush_at for g in self._groups.values() if g.pending and g.flush_at is not None]
        return min(times) if times else None


def _dropped(remainder: int, item: str) -> bool:
    """Drops about a tenth of the items, the same ones in both groupers."""
    return sum(map(ord, item)) % 10 == remainder


TIMINGS = [TIMING, GroupTiming(0.0, 0.0, 0.0), GroupTiming(5.0, 10.0, 20.0), GroupTiming(30.0, 300.0, 0.0)]
OPERATION = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 4), st.integers(0, len(TIMINGS) - 1), st.floats(0, 50)),
    st.tuples(st.just("hold"), st.integers(0, 4), st.booleans(), st.floats(0, 400)),
    st.tuples(st.just("due"), st.floats(0, 400)),
    st.tuples(st.just("discard"), st.integers(0, 9)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(OPERATION, max_size=60))
def test_the_heaps_flush_and_forget_exactly_what_a_scan_of_every_group_does(operations: list[tuple]) -> None:
    """Random adds, quiet-hours holds, flushes and discards on a rising clock: the same batches (each call's, in
    any order: the heaps give the earliest first), the same next flush time and the same groups kept."""
    grouper, model = Grouper[str](), ScanGrouper()
    now, seq = 0.0, 0
    for op in operations:
        if op[0] == "add":
            _, group, timing, step = op
            now += step
            seq += 1
            item = f"g{group}-{seq}"
            assert grouper.add("r", f"k{group}", TIMINGS[timing], item, now) == model.add(
                "r", f"k{group}", TIMINGS[timing], item, now
            )
        elif op[0] == "hold":
            _, group, sent_any, ahead = op
            seq += 1
            items = [f"g{group}-held-{seq}"]
            grouper.hold("r", f"k{group}", list(items), now + ahead, sent_any=sent_any)
            model.hold("r", f"k{group}", list(items), now + ahead, sent_any=sent_any)
        elif op[0] == "due":
            now += op[1]
            got, want = grouper.due(now), model.due(now)
            assert sorted(got, key=repr) == sorted(want, key=repr)
        else:
            drop = functools.partial(_dropped, op[1])
            assert grouper.discard(drop) == model.discard(drop)
        assert grouper.next_due() == model.next_due()
        assert len(grouper) == len(model)
        assert grouper.pending() == model.pending()
