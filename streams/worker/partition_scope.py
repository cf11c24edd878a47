"""Write to a Faust table on a chosen partition from outside per-event stream iteration.

Faust decides a table write's changelog partition (and, for RocksDB, the local partition
database) from the *current event* of the stream being iterated. A batch from ``take_events`` or a
timer has no current event (faust-streaming issue #497), so the worker makes a placeholder event
on the account's partition current for exactly the duration of the writes. The reach into Faust's
private context variable lives in ``streams.runtime.faust_compat``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import faust

from streams.runtime.faust_compat import current_event_scope, placeholder_event


class PartitionEvents:
    """One placeholder event per ``(topic, partition)``, held strongly (the context var is a weakref)."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self._app = app
        self._topic = topic
        self._events: dict[int, faust.Event] = {}

    def for_partition(self, partition: int) -> faust.Event:
        """The placeholder event of ``partition`` (created on first use)."""
        event = self._events.get(partition)
        if event is None:
            event = self._events[partition] = placeholder_event(self._app, self._topic, partition)
        return event

    @contextmanager
    def scope(self, partition: int) -> Iterator[None]:
        """Within the block, table writes go to ``partition``'s changelog and local store."""
        with current_event_scope(self.for_partition(partition)):
            yield
