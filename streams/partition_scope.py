"""Write to a Faust table on a chosen partition from outside per-event stream iteration.

Faust decides a table write's changelog partition (and, for RocksDB, the local partition
database) from the *current event* of the stream being iterated: ``Table.partition_for_key`` and
``rocksdb.Store._set`` read ``faust.streams.current_event()``. A batch from ``take_events`` or a
timer has no current event (faust-streaming issue #497: "Cannot modify table key from outside of
stream iteration"), and ``use_partitioner=True`` does not help RocksDB, whose ``_set`` still reads
the current event. So the worker sets that context variable itself to an event on the partition
the account belongs to, for exactly the duration of the writes.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import faust
from faust.streams import _current_event
from faust.types.tuples import Message


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
            message = Message(self._topic, partition, -1, time.time(), 0, {}, None, None, None)
            event = self._events[partition] = faust.Event(self._app, None, None, {}, message)
        return event

    @contextmanager
    def scope(self, partition: int) -> Iterator[None]:
        """Within the block, table writes go to ``partition``'s changelog and local store."""
        token = _current_event.set(weakref.ref(self.for_partition(partition)))
        try:
            yield
        finally:
            _current_event.reset(token)
