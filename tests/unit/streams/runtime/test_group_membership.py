"""GroupMembership: a process paused past its group session waits for the coordinator's verdict before it acts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from structlog.testing import capture_logs

from streams.runtime.group_membership import GroupMembership

LOST = "consumer group session expired"


class Group:
    """What the coordinator says of this process; ``lost`` as ``faust_compat.group_membership_lost`` reads it."""

    def __init__(self) -> None:
        self.dropped = False
        self.reads = 0

    def lost(self, app: Any) -> bool:
        self.reads += 1
        return self.dropped


def _membership(
    group: Group, session: float = 0.1, verdict: float = 0.3, app: Any = None, **kwargs: Any
) -> GroupMembership:
    app = app if app is not None else SimpleNamespace(should_stop=False)
    return GroupMembership(app, session, LOST, verdict_seconds=verdict, lost=group.lost, **kwargs)


async def test_a_member_that_was_not_paused_acts_at_once() -> None:
    """Not dropped, no gap between beats: owns its partitions without waiting."""
    membership = _membership(Group(), session=10.0)
    membership.assigned()
    membership.beat()
    assert await asyncio.wait_for(membership.owns_partitions(), 0.05)


async def test_before_the_first_assignment_a_reset_generation_is_not_a_loss() -> None:
    """A process that never joined reads as dropped (no generation yet): nothing is lost, nothing is logged."""
    group, called = Group(), []
    group.dropped = True
    membership = _membership(group, on_lost=lambda: called.append(1))
    with capture_logs() as logs:
        assert await membership.owns_partitions()
    assert (logs, called) == ([], [])


async def test_a_process_that_stops_and_leaves_the_group_has_lost_nothing() -> None:
    """A graceful stop leaves the group (the generation reset as when dropped): no WARN, nothing forgotten."""
    group, called, app = Group(), [], SimpleNamespace(should_stop=False)
    membership = _membership(group, app=app, on_lost=lambda: called.append(1))
    membership.assigned()
    app.should_stop = True
    group.dropped = True
    with capture_logs() as logs:
        assert not membership.lost()
    assert (logs, called) == ([], [])


async def test_a_dropped_process_is_told_once_per_episode() -> None:
    """Dropped: one WARN and one on_lost call however often it is asked; rejoined and dropped again: once more."""
    group, called = Group(), []
    membership = _membership(group, on_lost=lambda: called.append(1))
    membership.assigned()
    group.dropped = True
    with capture_logs() as logs:
        assert not await membership.owns_partitions()
        assert membership.lost()
        assert not await membership.owns_partitions()
        group.dropped = False  # rejoined
        assert await membership.owns_partitions()
        group.dropped = True
        assert membership.lost()
    assert [line["event"] for line in logs] == [LOST, LOST]
    assert [line["log_level"] for line in logs] == ["warning", "warning"]
    assert called == [1, 1]


async def test_after_a_pause_past_the_session_it_waits_for_the_verdict_and_is_dropped() -> None:
    """A gap between two beats longer than the session is a pause: the next question waits for the coordinator,
    which drops it meanwhile (the heartbeat sent as it resumed was answered UNKNOWN_MEMBER_ID)."""
    group = Group()
    membership = _membership(group, session=0.05, verdict=2.0)
    membership.assigned()
    membership.beat()
    await asyncio.sleep(0.1)  # the process "stopped" longer than its session

    async def verdict() -> None:
        await asyncio.sleep(0.15)
        group.dropped = True

    answer, _ = await asyncio.gather(membership.owns_partitions(), verdict())
    assert answer is False
    assert group.reads > 2  # it asked again while it waited


async def test_after_a_pause_a_process_still_a_member_acts_once_the_verdict_time_is_over() -> None:
    """Paused past the session but never dropped (the group had not noticed): it acts after ``verdict_seconds``, and
    the same pause is not waited for twice."""
    membership = _membership(Group(), session=0.05, verdict=0.2)
    membership.assigned()
    membership.beat()
    await asyncio.sleep(0.1)
    membership.beat()  # the loop noticed the gap first
    assert membership.pause_noticed()
    assert await membership.owns_partitions()
    assert not membership.pause_noticed()
    assert await asyncio.wait_for(membership.owns_partitions(), 0.05)
