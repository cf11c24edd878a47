"""Whether a Faust app's source topic and its tables' changelog topics still have the partition count
the app was set up with — and, when not, the one line that says what happened and what to do.

A Faust table keeps each key's state on the changelog partition of the same number as the source
partition its records arrive on. Partitions added to the source topic (``kafka-topics.sh --alter
--partitions``, a managed Kafka's console) make Kafka send each key to ``hash % new_count`` while its
state stays on ``hash % old_count``; Faust's assignor then hands out the source topic and the
changelogs as unrelated topics. Nothing fails loudly: a running worker reads the new partitions and a
second worker gets another one's changelog partitions (state mis-routed); a worker restarted with
``PREEMPT_TOPIC_PARTITIONS`` set to the new count stopped on its first batch with Faust's
``PartitionsMismatch``. Kafka cannot remove partitions, so the fix is the operator's.

Pure: the callers (``streams.runtime.topics`` at start, the rules worker and the notifier on every
assignment) pass the counts they read. No Faust or Kafka import here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from schemas.errors import ConfigError

DOCS = "docs/pipeline.md, Sizing partitions and workers"


class PartitionCounts(Protocol):
    """Faust's consumer, as far as partition counts go (``Consumer.topic_partitions``: its metadata)."""

    def topic_partitions(self, topic: str) -> int | None: ...


class PartitionCountError(ConfigError):
    """A source topic's partition count no longer matches its tables' changelogs or the setting."""


def copartitioning_problem(
    source: str, source_partitions: int, changelogs: Mapping[str, int], configured: int
) -> str | None:
    """The one-line problem with ``source`` (``source_partitions``) and its tables' ``changelogs``
    (name → partition count, existing ones only) for ``PREEMPT_TOPIC_PARTITIONS=configured``, or None.

    The changelogs hold the state, so their count is the one the deployment was built with.
    """
    built = sorted(set(changelogs.values()))
    if len(built) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in sorted(changelogs.items()))
        return (
            f"the changelog topics of one app have different partition counts ({listed}); a table's state "
            f"cannot be read back: recreate the deployment's topics with one count ({DOCS})"
        )
    if built and built[0] != source_partitions:
        old = built[0]
        names = ", ".join(sorted(changelogs))
        # Fewer partitions than the state: the topic was deleted and made again with another count (Kafka
        # cannot remove partitions), which the line said was "partitions were added".
        how = (
            f"partitions were added to {source}"
            if source_partitions > old
            else f"{source} was made again with fewer partitions"
        )
        return (
            f"topic {source} has {source_partitions} partitions but the state built from it has {old} ({names}): "
            f"{how}, so Kafka now sends accounts to other partitions than the ones "
            f"holding their state. Kafka cannot remove partitions: recreate {source} with {old} partitions "
            f"(PREEMPT_TOPIC_PARTITIONS={old}), or start a new deployment (another PREEMPT_TOPIC_PREFIX) with "
            f"PREEMPT_TOPIC_PARTITIONS={source_partitions} and replay the records into it ({DOCS})"
        )
    if source_partitions != configured:
        return (
            f"topic {source} has {source_partitions} partitions but PREEMPT_TOPIC_PARTITIONS is {configured}: set "
            f"PREEMPT_TOPIC_PARTITIONS={source_partitions} for this deployment (the count is fixed when the topics "
            f"are created; {DOCS})"
        )
    return None


def assignment_problem(
    consumer: PartitionCounts, source: str, changelogs: Iterable[str], configured: int
) -> str | None:
    """:func:`copartitioning_problem` on the counts in ``consumer``'s metadata — the ones a new assignment
    was made on (the rules worker and the notifier call it from ``on_partitions_assigned``). None while
    the source topic is not in the metadata."""
    have = consumer.topic_partitions(source)
    if not have:
        return None
    counts = {name: n for name in changelogs if (n := consumer.topic_partitions(name))}
    return copartitioning_problem(source, have, counts, configured)
