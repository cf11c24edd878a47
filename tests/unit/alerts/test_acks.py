"""Acks reach Faust in offset order per partition, so a commit never passes an alert still waiting."""

from __future__ import annotations

from typing import Any

from alerts.acks import InOrderAcks


class Faust:
    """Records the offsets whose ack was handed over, in order."""

    def __init__(self) -> None:
        self.acked: list[tuple[int, int]] = []

    def ack(self, partition: int, offset: int) -> Any:
        return lambda: self.acked.append((partition, offset))


def test_an_ack_waits_for_every_earlier_record_of_its_partition() -> None:
    """Later records settled first are handed over only once the earlier one settles; other partitions go on."""
    faust_acks, acks = Faust(), InOrderAcks()
    first = acks.track(0, 5, faust_acks.ack(0, 5))
    second = acks.track(0, 6, faust_acks.ack(0, 6))
    third = acks.track(0, 7, faust_acks.ack(0, 7))
    other = acks.track(1, 3, faust_acks.ack(1, 3))
    third()
    second()
    other()
    assert faust_acks.acked == [(1, 3)]
    assert acks.waiting(0) == 3
    first()
    assert faust_acks.acked == [(1, 3), (0, 5), (0, 6), (0, 7)]
    assert acks.waiting(0) == 0
    first()  # settling twice hands nothing over twice
    assert len(faust_acks.acked) == 4


def test_a_partition_read_again_from_an_earlier_offset_hands_the_acks_to_the_copies() -> None:
    """After a seek back to 5, the copies of 5 and 6 read again carry the acks; the first reading's are dropped."""
    faust_acks, acks = Faust(), InOrderAcks()
    waiting = acks.track(0, 5, faust_acks.ack(0, 5))
    acks.track(0, 6, faust_acks.ack(0, 6))()
    again = acks.track(0, 5, faust_acks.ack(0, 5))
    again_next = acks.track(0, 6, faust_acks.ack(0, 6))
    waiting()  # the first reading's record settles (with its copy): nothing handed over from it
    assert faust_acks.acked == []
    again()
    again_next()
    assert faust_acks.acked == [(0, 5), (0, 6)]


def test_records_before_a_partial_re_read_keep_their_acks() -> None:
    """Faust may read again from 8 only (its read offset moved past the committed 5 while the seek was
    awaited): 5-7 keep the only acks they have, and 8-10 wait for them, so no commit passes 5."""
    faust_acks, acks = Faust(), InOrderAcks()
    first = {o: acks.track(0, o, faust_acks.ack(0, o)) for o in range(5, 9)}
    first[6]()
    first[7]()
    again = {o: acks.track(0, o, faust_acks.ack(0, o)) for o in range(8, 11)}
    for settle in again.values():
        settle()
    assert faust_acks.acked == []
    first[8]()  # the dropped first copy of 8: nothing
    first[5]()
    assert faust_acks.acked == [(0, o) for o in range(5, 11)]


def test_partitions_assigned_elsewhere_are_forgotten() -> None:
    """A partition that moved away and comes back later starts afresh, not behind acks that never come."""
    faust_acks, acks = Faust(), InOrderAcks()
    acks.track(2, 10, faust_acks.ack(2, 10))  # its work is dropped on revocation: never settled
    acks.keep({0, 1})
    assert acks.waiting(2) == 0
    acks.track(2, 40, faust_acks.ack(2, 40))()
    assert faust_acks.acked == [(2, 40)]


def test_a_rebalance_forgets_every_ack_not_handed_over() -> None:
    """Settled after the revocation, a record of the old reading hands nothing to Faust (which forgot the
    partition's acks and commits and reads it again from the committed offset)."""
    faust_acks, acks = Faust(), InOrderAcks()
    settle = acks.track(0, 3, faust_acks.ack(0, 3))
    acks.keep(())
    settle()
    assert faust_acks.acked == []


def test_held_counts_every_record_kept_from_the_commit_and_feeds_the_gauge() -> None:
    """``held`` sums the records not handed over on every partition; the notifier exposes it as
    ``preempt_notifier_alerts_held`` (a settled record behind a waiting one still counts)."""
    from prometheus_client import REGISTRY

    from streams.runtime.metrics import NOTIFIER_ALERTS_HELD

    faust_acks, acks = Faust(), InOrderAcks()
    waiting = acks.track(0, 5, faust_acks.ack(0, 5))
    acks.track(0, 6, faust_acks.ack(0, 6))()
    acks.track(1, 2, faust_acks.ack(1, 2))
    assert acks.held() == 3
    NOTIFIER_ALERTS_HELD.set_function(acks.held)
    assert REGISTRY.get_sample_value("preempt_notifier_alerts_held") == 3
    waiting()
    assert acks.held() == 1
    assert REGISTRY.get_sample_value("preempt_notifier_alerts_held") == 1
    acks.keep(())
    assert acks.held() == 0
