"""The log of deliveries the notifier holds back itself (a Slack channel's one-message-a-second pacing, a
channel a 429 holds): DEBUG per message, INFO at most once per interval with how many were held.

A burst of 200 alerts to one Slack channel is held about once each while it goes out one a second: an INFO
line per message (``delivery retry scheduled``) made 200 lines that said nothing was wrong and buried the
ones that did. Held messages send nothing and are no retries (``preempt_notifications_total`` does not
count them); each ends delivered or dead-lettered, logged then.

The holds counted after a summary are told when its interval ends (:meth:`HeldDeliveriesLog.due`, which the
delivery loop wakes up for), also when the burst is over by then: otherwise a burst of 18 logged one INFO
``held: 1`` and its other holds waited for the next hold, hours later or never. One message's wait for its
slot is one hold, however many times its channel turns it back (the retry scheduler counts a wait once).

A wait for a slot is not a failure, so it never ends in a give-up (alerts/retry.py), and a line that only
grows is no error per message: :class:`PacedBacklog` makes it one ``/readyz`` reason (and one ERROR, one INFO
when it clears) once a delivery has waited for its slot longer than the give-up
window — more alerts go to one channel than its one message a second lets out, and they would have been
dead-lettered by then. ``preempt_notifier_deliveries_paced`` counts the deliveries waiting for a slot and
``preempt_notifier_paced_oldest_seconds`` says how long the one waiting longest has waited.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.runtime.log_throttle import LogThrottle
from streams.runtime.logs import REPEAT_INTERVAL_SECONDS, get_logger

log = get_logger(__name__)

HELD_SUMMARY = "deliveries held back by channel pacing or a rate limit"


class HeldDeliveriesLog:
    """Logs one held delivery: DEBUG always, and an INFO summary when none was logged for ``interval_s``
    (on ``clock``, the scheduler's), counting the holds by receiver type since the previous summary."""

    def __init__(self, clock: Callable[[], float], interval_s: float = REPEAT_INTERVAL_SECONDS) -> None:
        self._clock = clock
        self._since = LogThrottle(interval_s)  # holds by receiver type

    def held(self, receiver_type: str, target: str, retry_in: float, retry_after: float | None) -> None:
        """Called by the retry scheduler for each delivery a channel held back (``held=True``)."""
        log.debug("delivery held by its channel", target=target, retry_in=retry_in, retry_after=retry_after)
        self._since.hold(receiver_type)
        self.flush()

    def due(self) -> float | None:
        """When the holds counted since the last summary are to be told (on ``clock``); None: none counted."""
        return self._since.due(self._clock())

    def flush(self, *, stopping: bool = False) -> None:
        """Log the summary of the holds counted since the last one, unless one was logged within the interval
        (``stopping``: at once, whenever the last was: a graceful stop would otherwise never tell them)."""
        now = self._clock()
        if not (self._since.held if stopping else self._since.ready(now)):
            return
        held = self._since.take(now)
        log.info(HELD_SUMMARY, held=sum(held.values()), by_receiver_type=dict(held))


class PacedBacklog:
    """The ``/readyz`` reason of a line of deliveries waiting for their channel's slot that is older than
    ``too_old_s`` (the give-up window), logged when it starts (ERROR) and ends (INFO)."""

    def __init__(self, too_old_s: float) -> None:
        self.too_old_s = too_old_s
        self._reported = False

    def check(self, waiting: int, oldest_s: float) -> tuple[str, ...]:
        """The reason for ``waiting`` deliveries waiting for a slot, the longest for ``oldest_s``."""
        if waiting and oldest_s >= self.too_old_s:
            if not self._reported:
                self._reported = True
                log.error(
                    "deliveries waiting for their channel's pacing slot for longer than the give-up window: more "
                    "alerts go to one channel than one message a second lets out; not ready until the line is shorter",
                    waiting=waiting,
                    oldest_s=round(oldest_s, 1),
                    give_up_seconds=self.too_old_s,
                )
            return (
                f"deliveries waiting for a pacing slot: {waiting} queued, the oldest waiting for {oldest_s:.0f} s "
                f"(longer than the give-up window, {self.too_old_s:.0f} s)",
            )
        if self._reported:
            self._reported = False
            log.info("deliveries waiting for a pacing slot back within the give-up window", waiting=waiting)
        return ()
