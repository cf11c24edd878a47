"""Whether each delivery target still delivers: the ``/readyz`` reason ``deliveries failing: …``.

A notifier whose every delivery to a target fails — an SMTP relay refusing each message, Slack answering
500 or ``invalid_auth`` to everything — is not doing its job, yet it read, retried and dead-lettered
on, and ``/readyz`` said ready. ``DeliveryHealth`` follows each target (``receiver/slack``,
``receiver/email#2``: the names of the dead letters' ``target`` header) from the retry scheduler's
outcomes:

* a delivery attempt that fails (retryable, permanent or unexpected) extends the target's streak of
  failures; one that succeeds (a partial SMTP refusal included: the others got it) ends it;
* a refusal that only says "later" — Slack's 429 and the notifier's own one-message-a-second pacing
  (``RetryableDeliveryError(throttled=True)``) — is neither: a rate-limited channel still delivers;
* a target is *failing* once its streak holds at least ``min_failures`` attempts, has lasted
  ``failing_after_s`` (``PREEMPT_DELIVERY_FAILING_SECONDS``) with no success, and its last failure is
  recent (within twice that: a target nothing was sent to for that long is not known to fail any more).

So one failed message does not make the process unready — a single attempt, a retry that succeeds within
the window, or failures between which any other message to the target is delivered — unless it is all the
target had to send and it kept failing for the whole window (nothing was delivered: reported). The first
success clears it. The streak arithmetic is ``streams/runtime/failure_streaks.py``'s (ingest's failing
writes follow the same rule). Each change is logged once (ERROR ``deliveries failing``, INFO
``deliveries succeeding again``) and ``preempt_notifier_targets_failing{receiver_type}`` counts the
failing targets. Pure but for those: the caller passes the time.

``DestinationOutages`` follows what fails for every message whatever its alert (``DestinationFailingError``:
a wrong or rotated SMTP password, a revoked Slack token): the first failure of an episode is one ERROR
naming the destination, what failed and what to fix — at once, not after the failing window, since the
answer itself says that nothing will get through — and the first delivery to it afterwards one INFO.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from schemas.errors import DestinationFailingError
from streams.runtime.failure_streaks import MAX_ERROR_CHARS, MIN_FAILURES, FailureStreaks, Streak
from streams.runtime.logs import get_logger
from streams.runtime.metrics import NOTIFIER_TARGETS_FAILING

log = get_logger(__name__)

__all__ = ["MIN_FAILURES", "DeliveryHealth", "DestinationOutages"]


class DeliveryHealth(FailureStreaks):
    """The failure streak of every delivery target (see the module doc). ``clock`` is the scheduler's.

    ``failed(target, receiver_type, error)``: the receiver type is the streak's metric group.
    """

    def _reason(self, target: str, streak: Streak, now: float) -> str:
        return (
            f"deliveries failing: {target}: {streak.failures} attempts failed in a row, none delivered for "
            f"{now - streak.since:.0f} s (last: {streak.error[:MAX_ERROR_CHARS]})"
        )

    def _reported(self, target: str, streak: Streak, now: float) -> None:
        log.error(
            "deliveries failing: every attempt to a target failed; not ready until one succeeds",
            target=target,
            failed_attempts=streak.failures,
            since_s=round(now - streak.since),
            error=streak.error[:MAX_ERROR_CHARS],
        )
        self._export(streak.group)

    def _recovered(self, target: str, streak: Streak) -> None:
        log.info("deliveries succeeding again", target=target, failed_attempts=streak.failures)
        self._export(streak.group)

    def _expired(self, target: str, streak: Streak) -> None:
        log.info("deliveries no longer tried; failure report cleared", target=target)
        self._export(streak.group)

    def _export(self, receiver_type: str) -> None:
        NOTIFIER_TARGETS_FAILING.labels(receiver_type=receiver_type).set(self.reported_in(receiver_type))


@dataclass(slots=True)
class _Outage:
    since: float
    failures: int


class DestinationOutages:
    """Destinations that refuse every message (see the module doc); ``clock`` is the scheduler's.

    ``key`` is the delivery loop's destination of an attempt (a Slack channel, a webhook's hash, the SMTP
    server); an error's own ``destination`` (the Slack bot token, shared by every channel) groups keys into
    one episode, so a revoked token is one ERROR, not one per channel, and a delivery to any of them ends it —
    also to a key not seen failing yet, whose channel names the episodes it shares (``EpisodeAware``).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._outages: dict[str, _Outage] = {}
        self._episode_of: dict[str, str] = {}  # destination key → the outage it belongs to

    def failed(self, key: str, target: str, error: DestinationFailingError) -> str:
        """An attempt to ``key`` (for ``target``) failed with ``error``: the first of an episode is logged.
        Returns the episode's name (the delivery loop's breaker)."""
        name = error.destination or key
        previous = self._episode_of.get(key)
        self._episode_of[key] = name
        if previous is not None and previous != name and previous not in self._episode_of.values():
            # The destination fails another way now (the SMTP login works, the sender is refused): the old
            # episode, which no other destination is in, is over; it is not "taking messages again".
            outage = self._outages.pop(previous, None)
            if outage is not None:
                log.info(
                    "delivery destination no longer fails this way; it fails another way",
                    destination=previous,
                    now=name,
                    failed_attempts=outage.failures,
                    since_s=round(self._clock() - outage.since),
                )
        outage = self._outages.get(name)
        if outage is not None:
            outage.failures += 1
            return name
        self._outages[name] = _Outage(self._clock(), 1)
        log.error(
            "delivery destination refuses every message: its alerts are retried (not dead-lettered) until it is "
            "fixed or the give-up window ends",
            destination=name,
            target=target,
            error=str(error)[:300],
            fix=error.fix,
        )
        return name

    def episode(self, key: str) -> str | None:
        """The episode ``key`` is in now (None: it is not known to fail)."""
        name = self._episode_of.get(key)
        return name if name in self._outages else None

    def succeeded(self, key: str, episodes: Iterable[str] = ()) -> list[str]:
        """An attempt to ``key`` delivered: the episode ``key`` is in (if any) ends, and so does each of
        ``episodes`` (what its channel shares with other keys: the Slack bot token, the SMTP server — a key not
        seen failing yet is in no episode, yet its delivery proves those work), each logged once; returns
        the names of the episodes ended."""
        linked = self._episode_of.get(key)
        names = dict.fromkeys([linked, *episodes] if linked is not None else episodes)
        return [name for name in names if self.end(name)]

    def end(self, name: str) -> bool:
        """End the episode ``name`` (a delivery went through it), logged once; False when it was not open."""
        keys = [k for k, n in self._episode_of.items() if n == name]
        for key in keys:
            del self._episode_of[key]
        outage = self._outages.pop(name, None)
        if outage is not None:
            log.info(
                "delivery destination takes messages again",
                destination=name,
                failed_attempts=outage.failures,
                since_s=round(self._clock() - outage.since),
            )
        return outage is not None or bool(keys)

    def failing(self) -> tuple[str, ...]:
        """The destinations in an episode now (tests, a debugger)."""
        return tuple(sorted(self._outages))
