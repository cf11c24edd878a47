"""Whether ingest's writes reach Kafka: the ``/readyz`` reason ``writes failing: …``.

A broker that answers but refuses every write — the events topic deleted, fewer in-sync replicas
than ``min.insync.replicas``, no WRITE ACL — passed the broker watch (``readiness``), so every
request got 429 or 503 while ``/readyz`` said ready and the load balancer kept sending senders to
it. ``IngestWriteHealth`` follows each kind of write from its outcomes, by the rule of
``streams/runtime/failure_streaks.py`` (the notifier's failing deliveries follow it too):

* ``events``: a request's events (``gate.store``), target the events topic;
* ``account_updates``: a request's account patches from group calls, target the updates topic;
* ``account_merges``: the account merger's batches (``account_merger``), target the accounts topic;
* ``dead_letters``: the rejected items' background writes (``dead_letter_writer``), target the events
  dead-letter topic (where a sender is told to find its rejected calls: the SDKs ignore the answer).

A write that fails or is not acknowledged within ``PREEMPT_INGEST_KAFKA_TIMEOUT_SECONDS`` (answered
429) extends the streak; one acknowledged ends it. A streak of at least 3 attempts with no success
for ``PREEMPT_INGEST_WRITES_FAILING_SECONDS`` sets ``preempt_ingest_writes_failing{write}`` to 1 and
logs one ERROR (the next success, one INFO); for the events it makes ``/readyz`` 503 naming the topic
and the last error, for the account and dead-letter writes it is listed under ``degraded`` in a 200
answer (events still go through; ``readiness``).
A process nothing was written through for twice that long (it left the load balancer) is no
longer known to fail and is ready again, so it is tried again.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.runtime.failure_streaks import MAX_ERROR_CHARS, FailureStreaks, Streak
from streams.runtime.logs import get_logger
from streams.runtime.metrics import INGEST_WRITES_FAILING

log = get_logger(__name__)

WRITE_EVENTS = "events"
WRITE_ACCOUNT_UPDATES = "account_updates"
WRITE_ACCOUNT_MERGES = "account_merges"
WRITE_DEAD_LETTERS = "dead_letters"
_WHAT_FAILS = {WRITE_ACCOUNT_MERGES: "account merger stuck", WRITE_DEAD_LETTERS: "dead letters not recorded"}
_FAILING_LOG = {
    WRITE_EVENTS: "writes failing: every write to a topic failed; ingest not ready until one succeeds",
    WRITE_DEAD_LETTERS: "dead-letter writes failing: every write to the topic failed; events still taken, "
    "rejected items not recorded",
}


class IngestWriteHealth(FailureStreaks):
    """The failure streak of each kind of write of one ingest process (see the module doc)."""

    def __init__(self, failing_after_s: float, clock: Callable[[], float]) -> None:
        super().__init__(failing_after_s, clock)

    def write_failed(self, write: str, topic: str, error: str) -> None:
        """A write of kind ``write`` to ``topic`` failed (or timed out) with ``error``."""
        self.failed(topic, write, error)

    def _reason(self, target: str, streak: Streak, now: float) -> str:
        what = _WHAT_FAILS.get(streak.group, "writes failing")
        return (
            f"{what}: topic {target}: {streak.failures} attempts failed in a row, none succeeded for "
            f"{now - streak.since:.0f} s (last: {streak.error[:MAX_ERROR_CHARS]})"
        )

    def _reported(self, target: str, streak: Streak, now: float) -> None:
        log.error(
            _FAILING_LOG.get(
                streak.group,
                "account writes failing: every write to a topic failed; events still taken, accounts not updated",
            ),
            write=streak.group,
            topic=target,
            failed_attempts=streak.failures,
            since_s=round(now - streak.since),
            error=streak.error[:MAX_ERROR_CHARS],
        )
        self._export(streak.group)

    def _recovered(self, target: str, streak: Streak) -> None:
        log.info("writes succeeding again", write=streak.group, topic=target, failed_attempts=streak.failures)
        self._export(streak.group)

    def _expired(self, target: str, streak: Streak) -> None:
        log.info("writes no longer tried; failure report cleared", write=streak.group, topic=target)
        self._export(streak.group)

    def _export(self, write: str) -> None:
        INGEST_WRITES_FAILING.labels(write=write).set(self.reported_in(write))
