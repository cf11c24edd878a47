"""Faust's Prometheus sensor without its per-message cost: counted in plain integers, exported per scrape.

Faust's ``PrometheusMonitor`` does prometheus_client work for every record consumed — counters,
a gauge per topic/partition, a histogram of each event's runtime, plus the bookkeeping of Faust's
base ``Monitor`` — about 25 µs of CPU per record, more than decoding and evaluating the event.
:class:`AggregatingPrometheusMonitor` keeps the same metric names (``<prefix>_messages_received_total``,
``_messages_received_per_topic_total``, ``_messages_received_per_topics_partition``,
``_active_messages``, ``_total_events_total``, ``_total_active_events``,
``_total_events_per_stream_total``, ``_table_operations_total``) but counts the per-message hooks in
dicts of integers and moves the totals into the Prometheus metrics in :meth:`flush`, which the
``/metrics`` page calls before it renders. Everything that happens per send, commit, rebalance or
web request stays Faust's own code (those are not per consumed record).

Not kept: ``<prefix>_events_runtime_ms`` (a histogram observed per event; the rules worker's work
is per batch) stays registered but empty. The hooks overridden here are Faust's public ``SensorT``
interface; the two private names of ``PrometheusMonitor`` the flush needs (its metrics and its
stream label) are read through ``streams.runtime.faust_compat``, whose tests also check that this
subclass's own attributes shadow nothing of its base.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from faust.sensors.prometheus import PrometheusMonitor
from faust.types import TP, CollectionT, EventT, Message, StreamT

from streams.runtime.faust_compat import prometheus_metrics, stream_label


class AggregatingPrometheusMonitor(PrometheusMonitor):
    """``PrometheusMonitor`` whose per-message hooks cost a dict increment; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_by_tp: Counter[TP] = Counter()
        self._offset_by_tp: dict[TP, int] = {}
        self._out = 0
        self._events_by_stream: Counter[Any] = Counter()
        self._events_out = 0
        self._table_ops: Counter[tuple[str, str]] = Counter()
        self._stream_labels: dict[Any, str] = {}
        # totals already moved into the Prometheus metrics (gauges are set from the running totals)
        self._messages_in = 0
        self._messages_out = 0
        self._events_in = 0
        self._events_done = 0

    # --- per consumed record: integers only ----------------------------------------------------
    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        self._in_by_tp[tp] += 1
        self._offset_by_tp[tp] = offset

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[Any, Any] | None:
        self._events_by_stream[stream] += 1
        # Faust's slow-processing detector reads this per-TP time (set by the base Monitor's hook,
        # which this one replaces): without it, every lagging partition of a Faust-path stream (the
        # notifier's) is logged as "Stream has not started processing".
        self.stream_inbound_time[tp] = self.time()
        return None

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any], state: dict[Any, Any] | None = None
    ) -> None:
        self._events_out += 1

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        self._out += 1

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        self._table_ops[(table.name, self.KEYS_RETRIEVED)] += 1

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        self._table_ops[(table.name, self.KEYS_UPDATED)] += 1

    def on_table_del(self, table: CollectionT, key: Any) -> None:
        self._table_ops[(table.name, self.KEYS_DELETED)] += 1

    # --- per scrape -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Move the counts since the last flush into the Prometheus metrics (called by ``/metrics``)."""
        metrics = prometheus_metrics(self)
        assert metrics is not None  # set by PrometheusMonitor.__init__
        in_by_tp, self._in_by_tp = self._in_by_tp, Counter()
        offsets, self._offset_by_tp = self._offset_by_tp, {}
        by_stream, self._events_by_stream = self._events_by_stream, Counter()
        table_ops, self._table_ops = self._table_ops, Counter()
        out, self._out = self._out, 0
        events_out, self._events_out = self._events_out, 0

        received = sum(in_by_tp.values())
        if received:
            metrics.messages_received.inc(received)
            per_topic: Counter[str] = Counter()
            for tp, n in in_by_tp.items():
                per_topic[tp.topic] += n
            for topic, n in per_topic.items():
                metrics.messages_received_per_topics.labels(topic=topic).inc(n)
        for tp, offset in offsets.items():
            metrics.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(offset)
        self._messages_in += received
        self._messages_out += out
        metrics.active_messages.set(self._messages_in - self._messages_out)

        events = sum(by_stream.values())
        if events:
            metrics.total_events.inc(events)
            for stream, n in by_stream.items():
                metrics.total_events_per_stream.labels(stream=f"stream.{self._label_of(stream)}.events").inc(n)
        self._events_in += events
        self._events_done += events_out
        metrics.total_active_events.set(self._events_in - self._events_done)

        for (table, operation), n in table_ops.items():
            metrics.table_operations.labels(table=f"table.{table}", operation=operation).inc(n)

    def _label_of(self, stream: Any) -> str:
        label = self._stream_labels.get(stream)
        if label is None:
            label = self._stream_labels[stream] = stream_label(self, stream)
        return label
