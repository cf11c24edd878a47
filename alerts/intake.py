"""The notifier stops reading new alerts while too many deliveries wait in its memory.

Every alert the notifier reads stays in memory until each of its deliveries is settled: waiting for its
group (``group_wait``), for quiet hours, for a retry, or in line for its channel's pacing slot (a Slack
channel takes one message a second). When more alerts come than the channels let out — more than one a
second to one Slack channel, for hours — that line only grew, about 9 KB a delivery, until the process
ran out of memory, and a restart read them all again.

:class:`IntakeLimit` bounds it: once ``PREEMPT_NOTIFIER_MAX_PENDING_DELIVERIES`` deliveries are pending, the
alerts agent waits before it takes the next record, and goes on once a tenth of them are settled (the
hysteresis keeps it from pausing at every delivery). Nothing is dropped: the alerts not read wait in
``preempt.alerts`` (``preempt_consumer_lag`` shows them). The alerts' partitions are paused in Faust's
consumer for the pause (``faust_compat.pause_fetching``: Faust's own pause drops the rest of the poll
being handed over): left fetched, the records would fill the agent's buffer, and a full buffer blocks
Faust's fetcher for every topic (feedback too) — past ``broker_max_poll_interval`` (1,000 s) the consumer
would leave its group. A rebalance (from its revocation on) or a stop during the wait leaves the record
taken unhandled and unacked: the partition's next owner (this notifier again, perhaps) reads it from the
committed offset, and Faust resumes every partition of the new assignment once it is recovered.

A pause is reported: WARNING ``not taking new alerts …`` with what the pending deliveries wait for,
``preempt_notifier_intake_paused`` = 1, ``preempt_notifier_intake_pauses_total`` + 1, ``/readyz`` 503
``not taking new alerts: …`` — until there is room again (INFO ``taking new alerts again`` with how long
the pause lasted, which ``preempt_notifier_intake_paused_seconds_total`` adds up). The liveness watchdog
(``alerts/liveness.py``) does not call the partitions stalled meanwhile: the pause is the reason, and it is
the one named.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from schemas.formatting import plural
from streams.runtime.logs import get_logger
from streams.runtime.metrics import NOTIFIER_INTAKE_PAUSED, NOTIFIER_INTAKE_PAUSED_SECONDS, NOTIFIER_INTAKE_PAUSES

log = get_logger(__name__)

SETTING = "PREEMPT_NOTIFIER_MAX_PENDING_DELIVERIES"
PAUSED = "not taking new alerts: too many deliveries pending; they wait in preempt.alerts"  # the WARNING line
RESUMED = "taking new alerts again"  # the INFO line
LEFT_TO_READ_AGAIN = (  # the INFO line when a rebalance or a stop ends a wait: the runtime's
    "alert record left to be read again: a rebalance or a stop came while intake was paused"
)
POLL_SECONDS = 0.2  # how often a paused intake looks for room: far below a delivery's own pace


class IntakeLimit:
    """Makes the alerts agent wait while ``pending()`` deliveries are at ``limit`` (see the module doc)."""

    def __init__(
        self,
        limit: int,
        pending: Callable[[], int],
        waiting_for: Callable[[], Mapping[str, int]] = dict,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = POLL_SECONDS,
        *,
        hold: Callable[[], None] = lambda: None,
        release: Callable[[], None] = lambda: None,
    ) -> None:
        """``pending``: deliveries not settled yet; ``waiting_for``: what they wait for, for the log line
        (called once a pause). ``hold`` is called as a pause begins and ``release`` as it ends with room (not
        when a rebalance or a stop ends it): the runtime stops and resumes fetching the alerts' partitions."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self.resume_at = limit - max(1, limit // 10)
        self._pending = pending
        self._waiting_for = waiting_for
        self._clock = clock
        self._poll_s = poll_s
        self._hold = hold
        self._release = release
        self._paused_since: float | None = None
        NOTIFIER_INTAKE_PAUSED.set(0)

    @property
    def paused(self) -> bool:
        """True while the agent waits for room."""
        return self._paused_since is not None

    async def wait_for_room(self, go_on: Callable[[], bool]) -> bool:
        """Return at once while fewer than ``limit`` deliveries are pending; else wait until at most
        ``resume_at`` are. True: take the record; False: ``go_on()`` turned false meanwhile (a rebalance, a
        stop), so leave the record taken to be read again."""
        if self._pending() < self.limit:
            return True
        self._pause()
        room = False
        try:
            while go_on():
                if self._pending() <= self.resume_at:
                    room = True
                    self._release()
                    return True
                await asyncio.sleep(self._poll_s)
            return False
        finally:
            self._resume(room)

    def reason(self) -> tuple[str, ...]:
        """``/readyz``'s reason while paused; else nothing."""
        if self._paused_since is None:
            return ()
        waited = self._clock() - self._paused_since
        return (
            f"not taking new alerts: {plural(self._pending(), 'delivery', 'deliveries')} pending, the limit "
            f"{SETTING}={self.limit}, for {waited:.0f} s (they wait in preempt.alerts)",
        )

    def _pause(self) -> None:
        self._paused_since = self._clock()
        NOTIFIER_INTAKE_PAUSED.set(1)
        NOTIFIER_INTAKE_PAUSES.inc()
        log.warning(
            PAUSED,
            pending=self._pending(),
            limit=self.limit,
            resume_at=self.resume_at,
            waiting_for=dict(self._waiting_for()),
            remedy=f"more notifiers (partitions), fewer alerts to the busiest channel, or a higher {SETTING}",
        )
        self._hold()

    def _resume(self, room: bool) -> None:
        """The pause is over: with room (logged), or ended by a rebalance, a stop or a cancellation (the
        runtime says what became of the record)."""
        if self._paused_since is None:
            return
        waited = self._clock() - self._paused_since
        self._paused_since = None
        NOTIFIER_INTAKE_PAUSED.set(0)
        NOTIFIER_INTAKE_PAUSED_SECONDS.inc(waited)
        if room:
            log.info(RESUMED, paused_seconds=round(waited, 1), pending=self._pending())
