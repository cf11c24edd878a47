"""Partition clocks: watermark = partition max event time − lateness, plus wall clock in live mode."""

from __future__ import annotations

from collections.abc import Callable

from streams.worker.clock import PartitionClocks


def test_watermark_follows_each_partitions_own_max_event_time() -> None:
    """Each partition's watermark is its own highest event time minus the allowed lateness."""
    clocks = PartitionClocks(5.0, event_time_only=True)
    clocks.observe(0, 100.0)
    clocks.observe(0, 90.0)
    clocks.observe(1, 50.0)
    assert (clocks.watermark(0), clocks.watermark(1), clocks.watermark(2)) == (95.0, 45.0, None)


def test_live_mode_lets_the_wall_clock_move_a_caught_up_partition() -> None:
    """In live mode the wall clock − lateness advances a partition once it has caught up, not before."""
    clocks = PartitionClocks(5.0, event_time_only=False, wall_clock=lambda: 1000.0)
    clocks.observe(0, 100.0)
    assert (clocks.watermark(0), clocks.watermark(3)) == (95.0, None)  # a backlog: event time only
    clocks.catch_up([0, 3])
    assert (clocks.watermark(0), clocks.watermark(3)) == (995.0, 995.0)


def test_event_time_only_mode_ignores_catch_up() -> None:
    """Replays keep the plain formula: catching up does not move an event-time-only clock."""
    clocks = PartitionClocks(5.0, event_time_only=True, wall_clock=lambda: 1000.0)
    clocks.observe(0, 100.0)
    clocks.catch_up([0])
    assert clocks.watermark(0) == 95.0


def test_take_dirty_reports_only_partitions_that_moved_and_restore_is_not_dirty() -> None:
    """Only partitions whose max moved since the last call are persisted; restored clocks are not."""
    clocks = PartitionClocks(5.0, event_time_only=True)
    clocks.restore(2, 70.0)
    clocks.observe(0, 10.0)
    assert clocks.take_dirty() == {0: 10.0}
    clocks.observe(0, 5.0)
    assert clocks.take_dirty() == {}
    assert clocks.max_event_time(2) == 70.0


def test_forget_drops_revoked_partitions() -> None:
    """A revoked partition has no clock until it is restored or sees events again."""
    clocks = PartitionClocks(5.0, event_time_only=True)
    clocks.observe(1, 10.0)
    clocks.forget([1])
    assert clocks.watermark(1) is None


def test_live_clock_never_runs_ahead_of_the_wall_clock() -> None:
    """In live mode an event stamped minutes ahead moves its partition's clock only to wall + tolerance."""
    clocks = PartitionClocks(5.0, event_time_only=False, wall_clock=lambda: 1000.0, future_tolerance=1.0)
    clocks.observe(0, 1000.0 + 280.0)
    assert clocks.watermark(0) == 1000.0 + 1.0 - 5.0
    assert clocks.take_dirty() == {0: 1001.0}


def test_a_future_time_restored_from_the_table_is_bounded_too() -> None:
    """A clock persisted before the bound (in the future) still yields a watermark at most wall + tolerance."""
    clocks = PartitionClocks(5.0, event_time_only=False, wall_clock=lambda: 1000.0, future_tolerance=0.0)
    clocks.restore(0, 5000.0)
    assert clocks.watermark(0) == 995.0


def test_event_time_only_mode_keeps_future_times() -> None:
    """Replays (event-time only) keep today's semantics: the highest event time is the clock."""
    clocks = PartitionClocks(5.0, event_time_only=True, wall_clock=lambda: 1000.0)
    clocks.observe(0, 5000.0)
    assert clocks.watermark(0) == 4995.0


def test_watermark_or_start_starts_an_unseen_partition_at_its_first_event() -> None:
    """A partition with no clock yet starts at its first event − lateness, like the backtest's clock."""
    clocks = PartitionClocks(5.0, event_time_only=True)
    assert clocks.watermark_or_start(0, 100.0) == 95.0
    clocks.observe(0, 200.0)
    assert clocks.watermark_or_start(0, 100.0) == 195.0


def test_future_tolerance_set_later_applies_to_existing_clocks() -> None:
    """The worker sets the tolerance from its settings; clocks already made follow it."""
    clocks = PartitionClocks(5.0, event_time_only=False, wall_clock=lambda: 1000.0, future_tolerance=1.0)
    clocks.observe(0, 900.0)
    clocks.future_tolerance = 10.0
    clocks.observe(0, 2000.0)
    assert clocks.max_event_time(0) == 1010.0


def test_a_caught_up_partition_catches_up_as_of_when_it_was_known_read_to_its_end() -> None:
    """Given as of when each partition was known read to its end (the fetch that reported its end),
    the wall-clock floor is that time − lateness, not now − lateness (never later than now)."""
    clocks = PartitionClocks(5.0, event_time_only=False, wall_clock=lambda: 1000.0)
    clocks.catch_up({0: 940.0, 1: 2000.0})
    assert (clocks.watermark(0), clocks.watermark(1)) == (935.0, 995.0)


class _Wall:
    """A settable wall clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _live(wall: _Wall, grace: float = 60.0) -> PartitionClocks:
    """A live clock of partition 0 at 995 (event 999 read at 1000, caught up as of then), lateness 5 s."""
    clocks = PartitionClocks(5.0, event_time_only=False, wall_clock=wall, outage_grace=grace)
    clocks.observe(0, 999.0)
    clocks.fetched({0: 1000.0}, None)
    clocks.catch_up({0: 1000.0})
    assert clocks.watermark(0) == 995.0
    return clocks


def test_after_a_broker_outage_the_watermark_stays_put_for_the_grace_so_buffered_events_are_not_late() -> None:
    """The broker answered no fetch from 1000 to 1031 and requests failed meanwhile: producers could
    not write either, so the events they stamped during the outage and deliver after it (behind the
    first answer, behind fresh events) are not late; the watermark moves on once the grace is over."""
    wall = _Wall(1031.0)
    clocks = _live(wall)
    assert clocks.fetched({0: 1031.0}, unanswered_at=1010.0) == {0: 31.0}
    clocks.catch_up({0: 1031.0})  # the first answer after the outage: read to its end
    clocks.observe(0, 1031.0)  # a fresh event
    assert clocks.watermark(0) == 995.0  # an event stamped at 1001, during the outage, is still on time
    assert clocks.held_until(0) == 1091.0
    wall.now = 1091.0
    assert clocks.watermark(0) == 1026.0
    assert clocks.held_until(0) is None


def test_a_gap_without_a_failed_request_or_shorter_than_the_lateness_holds_nothing() -> None:
    """A long batch that held the event loop leaves a gap between fetch answers without any failed
    request (producers wrote meanwhile: a backlog, not an outage); a gap within the lateness cannot
    make an event late; and a grace of 0 turns the hold off."""
    wall = _Wall(1031.0)
    clocks = _live(wall)
    assert clocks.fetched({0: 1031.0}, unanswered_at=999.0) == {}  # the last failure is before the gap
    clocks.catch_up({0: 1031.0})
    assert clocks.watermark(0) == 1026.0
    assert clocks.fetched({0: 1035.0}, unanswered_at=1032.0) == {}  # 4 s: within the lateness
    off = _live(_Wall(1031.0), grace=0.0)
    assert off.fetched({0: 1031.0}, unanswered_at=1010.0) == {}


def test_a_second_outage_extends_the_hold_moves_the_held_watermark_up_and_forget_keeps_it() -> None:
    """The broker flaps: a second gap with failures during the hold extends it and moves the held
    watermark up to where that gap started (− the lateness); a rebalance that rebuilds the
    partition's clock (forget, restore) keeps the hold."""
    wall = _Wall(1031.0)
    clocks = _live(wall)
    clocks.fetched({0: 1031.0}, unanswered_at=1010.0)
    clocks.observe(0, 1031.0)
    wall.now = 1050.0
    assert clocks.fetched({0: 1050.0}, unanswered_at=1045.0) == {0: 19.0}
    assert clocks.held_until(0) == 1110.0
    assert clocks.watermark(0) == 1026.0  # the second gap started at 1031: what was buffered in it is on time
    clocks.forget([0])
    clocks.restore(0, 1031.0)
    clocks.catch_up({0: 1050.0})
    assert clocks.watermark(0) == 1026.0


def test_a_flapping_broker_holds_the_watermark_at_most_two_graces_and_never_at_the_first_outage() -> None:
    """Down 10 s every 50 s for an hour: each outage extends the hold, but a hold never lasts past
    its first release + one grace, and the held watermark follows the outages (before: frozen at
    the first outage for the whole hour)."""
    wall = _Wall(1000.0)
    clocks = _live(wall)
    longest_held = 0.0
    held_since: float | None = None
    lag = 0.0  # how far the watermark stays behind the wall clock
    for cycle in range(72):
        start = 1000.0 + 50.0 * cycle
        for t in range(int(start) + 1, int(start) + 50):
            wall.now = float(t)
            down = start < t <= start + 10.0
            if not down:
                clocks.fetched({0: wall.now}, unanswered_at=start + 5.0 if cycle else None)
                clocks.observe(0, wall.now - 1.0)
                clocks.catch_up({0: wall.now})
            getattr(clocks, "end_holds", lambda: None)()  # (the runtime's, before each batch)
            held = clocks.held_until(0) is not None
            if held and held_since is None:
                held_since = wall.now
            elif not held and held_since is not None:
                longest_held, held_since = max(longest_held, wall.now - held_since), None
            wm = clocks.watermark(0)
            assert wm is not None
            lag = max(lag, wall.now - wm)
    assert longest_held <= 2 * 60.0  # before: held for 3,555 s, at the first outage's watermark
    assert lag <= 70.0  # one cycle, one outage and the lateness behind at most


def test_only_a_failure_inside_the_gap_makes_it_an_outage() -> None:
    """A failure after the answer that ended the gap (a probe that timed out later) is not in it;
    of several recent failures, one inside the gap is enough."""
    wall = _Wall(1031.0)
    clocks = _live(wall)
    assert clocks.fetched({0: 1031.0}, unanswered_at=1032.0) == {}
    assert clocks.held_until(0) is None
    wall.now = 1060.0
    assert clocks.fetched({0: 1060.0}, unanswered_at=[1040.0, 1061.0]) == {0: 29.0}


def test_a_partition_assigned_again_hours_later_measures_no_gap_from_before_its_revocation() -> None:
    """Revoked at 1000, assigned again at 8200 with a broker blip (a failed request) in between: its
    first answer starts its clock of answers afresh, so its backlog is not held as after an outage."""
    wall = _Wall(1000.0)
    clocks = _live(wall)
    clocks.forget([0])
    wall.now = 8200.0
    clocks.restore(0, 999.0)
    assert clocks.fetched({0: 8200.0}, unanswered_at=5000.0) == {}
    clocks.catch_up({0: 8200.0})
    assert clocks.held_until(0) is None
    assert clocks.watermark(0) == 8195.0


def test_event_time_only_clocks_are_never_held() -> None:
    """Replays keep the plain formula: fetch answers do not hold an event-time-only clock."""
    clocks = PartitionClocks(5.0, event_time_only=True)
    clocks.observe(0, 100.0)
    assert clocks.fetched({0: 1000.0}, None) == {}
    assert clocks.fetched({0: 1100.0}, unanswered_at=1050.0) == {}
    assert clocks.watermark(0) == 95.0


def _observe_then_watermark(clocks: PartitionClocks, partition: int, ts: float) -> float | None:
    """What the worker did per accepted event before ``observe_watermark``: two calls."""
    return clocks.watermark(partition) if clocks.observe(partition, ts) else None


def test_observe_watermark_is_observe_then_watermark_in_every_mode() -> None:
    """The worker's one call per accepted event gives what ``observe`` then ``watermark`` gave, and marks the same
    partitions dirty: event time only; live, with an event past the wall clock's bound; and held after an outage."""
    times = [(0, 100.0), (0, 90.0), (1, 50.0), (0, 100.0), (0, 130.0), (2, 5_000.0), (1, 49.0), (1, 1_040.0)]

    def runs(make: Callable[[], PartitionClocks]) -> tuple[list[tuple[float | None, dict[int, float]]], ...]:
        old, new = make(), make()
        before = [(_observe_then_watermark(old, p, ts), old.take_dirty()) for p, ts in times]
        after = [(new.observe_watermark(p, ts), new.take_dirty()) for p, ts in times]
        return before, after

    def held() -> PartitionClocks:
        clocks = _live(_Wall(1031.0))
        clocks.fetched({0: 1031.0, 1: 1031.0}, unanswered_at=1010.0)
        clocks.catch_up({0: 1031.0})
        return clocks

    for make in (
        lambda: PartitionClocks(5.0, event_time_only=True),
        lambda: PartitionClocks(5.0, event_time_only=False, wall_clock=lambda: 1000.0),
        held,
    ):
        before, after = runs(make)
        assert after == before
        assert any(moved is None for moved, _ in after)  # both branches taken: the clock stayed and moved
        assert any(moved is not None for moved, _ in after)
