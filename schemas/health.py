"""Readiness and consumer-lag arithmetic shared by the rules worker and the notifier.

Pure functions over plain values, so that ``streams/web.py`` and ``alerts/web.py`` (which may not
import each other) read Faust's state the same way and decide the same way. No Faust import here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar


class TopicPartitionLike(Protocol):
    """Faust's ``TP`` named tuple, as far as lag arithmetic needs it."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


TP = TypeVar("TP", bound=TopicPartitionLike)


@dataclass(frozen=True, slots=True)
class ConsumerState:
    """A snapshot of what a Faust app knows about its place in the consumer group."""

    started: bool  # the worker's consumer is running
    rebalances: int  # rebalances begun since start (0: never joined the group yet)
    rebalancing: bool  # a rebalance is in progress
    in_recovery: bool  # tables are being restored from their changelogs
    recovery_completed: bool  # table recovery finished at least once after an assignment
    assigned_partitions: int  # partitions of source topics assigned to this worker


@dataclass(frozen=True, slots=True)
class Readiness:
    """The answer of ``/readyz``: ready or not, and why not."""

    ready: bool
    reason: str


def readiness(state: ConsumerState) -> Readiness:
    """Decide readiness: assignment received, no rebalance running, tables recovered.

    A worker that received an empty assignment (more workers than partitions) is ready: it is a
    healthy member of the group, and a readiness probe that never passed would block rollouts.
    """
    if not state.started:
        return Readiness(False, "consumer not started")
    if state.rebalances == 0:
        return Readiness(False, "waiting for the consumer group to assign partitions")
    # Faust keeps ``rebalancing`` set until recovery ends, so recovery is checked first: it is
    # the more precise reason, and the one the "recovery stuck" alert is about.
    if state.in_recovery:
        return Readiness(False, "table recovery in progress")
    if state.rebalancing:
        return Readiness(False, "rebalance in progress")
    if not state.recovery_completed:
        return Readiness(False, "table recovery in progress")
    return Readiness(True, f"{state.assigned_partitions} partitions assigned, tables recovered")


def lag_by_topic(
    assigned: Iterable[TP],
    end_offsets: Mapping[TP, int],
    committed: Mapping[TP, int | None],
    earliest: Mapping[TP, int],
) -> dict[str, int]:
    """Records between the committed offset and the end of each partition, summed per topic.

    A partition with no committed offset yet counts from its earliest offset (a new consumer
    group reading from the beginning is behind by the whole partition). Never negative.
    """
    lag: dict[str, int] = {}
    for tp in assigned:
        end = end_offsets.get(tp)
        if end is None:
            continue
        start = committed.get(tp)
        if start is None:
            start = earliest.get(tp, 0)
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - start)
    return lag
