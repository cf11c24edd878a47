"""Whether this process still owns its partitions after it was paused past its consumer-group session.

A process paused longer than its session (SIGSTOP, a VM or container freeze, a long GC or swap stall) is dropped
by the group, which hands its partitions to the other members. Resumed, it learns so only at its next heartbeat,
sent as it resumes: until the coordinator's answer is in, everything it does for those partitions — a delivery, a
table write, an ack — may be a "zombie" act over the new owner's newer work. :class:`GroupMembership` notices the
pause (a gap in the beats of a loop that runs every fraction of a second), waits for the coordinator's verdict
(``faust_compat.group_membership_lost``), logs one WARN per episode and tells its owner once
(``on_lost``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import faust

from streams.runtime.faust_compat import group_membership_lost
from streams.runtime.logs import get_logger

log = get_logger(__name__)

# After a pause past the session, how long to wait for the coordinator's verdict before acting as a member again.
PAUSE_VERDICT_SECONDS = 5.0
VERDICT_POLL_SECONDS = 0.05


class GroupMembership:
    """One process's membership of its consumer group, as its own loops can judge it.

    ``session_timeout_seconds``: the group's session (a gap between two :meth:`beat` calls longer than it is a
    pause); ``lost_line``: the WARN logged once per episode; ``on_lost``: called once per episode, when the
    loss is first seen (the owner forgets the work of every partition: the group took them all)."""

    def __init__(
        self,
        app: faust.App,
        session_timeout_seconds: float,
        lost_line: str,
        *,
        on_lost: Callable[[], object] | None = None,
        verdict_seconds: float = PAUSE_VERDICT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        lost: Callable[[faust.App], bool] = group_membership_lost,
    ) -> None:
        self._app = app
        self._session = session_timeout_seconds
        self._lost_line = lost_line
        self._on_lost = on_lost
        self._verdict_seconds = verdict_seconds
        self._clock = clock
        self._read_lost = lost
        self._assigned_once = False  # before the first assignment the coordinator reads "lost" too: nothing to lose
        self._was_lost = False
        self._beat: float | None = None  # the last beat (see beat)
        self._paused_at: float | None = None  # when a pause past the session was noticed, until judged

    def assigned(self) -> None:
        """The process got an assignment (from now on a reset generation means the group dropped it)."""
        self._assigned_once = True

    def beat(self) -> None:
        """Called by a loop that runs every fraction of a second: a gap longer than the session since the last
        call means the whole process was paused (its heartbeats too)."""
        self._notice_pause()
        self._beat = self._clock()

    def lost(self) -> bool:
        """Whether the group has dropped this process (it rejoins on its own; then this is False again). The
        first time in an episode: one WARN and ``on_lost``."""
        # A process that stops leaves the group itself (aiokafka resets its generation as it leaves): not a loss.
        lost = self._assigned_once and not self._app.should_stop and self._read_lost(self._app)
        if lost and not self._was_lost:
            log.warning(self._lost_line)
            if self._on_lost is not None:
                self._on_lost()
        self._was_lost = lost
        return lost

    def pause_noticed(self) -> bool:
        """Whether a pause past the session was noticed and not judged yet."""
        self._notice_pause()
        return self._paused_at is not None

    async def owns_partitions(self) -> bool:
        """Whether this process may act for its partitions: not once the group dropped it (:meth:`lost`). Right
        after a pause past the session the verdict is not in yet: wait for it, up to ``verdict_seconds``; a process
        the group still counts as a member acts then."""
        if self.lost():
            return False
        if not self.pause_noticed():
            return True
        assert self._paused_at is not None
        deadline = self._paused_at + self._verdict_seconds
        while self._clock() < deadline:
            await asyncio.sleep(VERDICT_POLL_SECONDS)
            if self.lost():
                return False
        self._paused_at = None
        self._beat = self._clock()  # the wait itself is no pause
        return True

    def _notice_pause(self) -> None:
        now = self._clock()
        if self._beat is not None and now - self._beat > self._session:
            self._beat = now  # this gap is noticed once
            if self._paused_at is None:
                self._paused_at = now
