"""``AggregatingPrometheusMonitor``: Faust's sensor metrics, counted per message, exported per flush."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from faust.sensors.prometheus import FaustMetrics
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.runtime.faust_sensor import AggregatingPrometheusMonitor


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of its own, so the test does not collide with the process-wide one."""
    return CollectorRegistry()


@pytest.fixture
def sensor(registry: CollectorRegistry) -> AggregatingPrometheusMonitor:
    """The sensor over a fresh set of ``t_*`` Faust metrics."""
    return AggregatingPrometheusMonitor(metrics=FaustMetrics.create(registry, "t"))


def _value(registry: CollectorRegistry, name: str, **labels: Any) -> float | None:
    return registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})


class _Stream:
    shortlabel = "Stream: Topic: events"


def test_counts_reach_prometheus_only_on_flush(sensor, registry):
    """Per-message hooks touch no Prometheus metric; flush moves the totals under Faust's names."""
    a, b = TP("events", 0), TP("events", 1)
    message: Any = SimpleNamespace()
    for offset in range(5):
        sensor.on_message_in(a, offset, message)
    sensor.on_message_in(b, 41, message)
    assert _value(registry, "t_messages_received_total") == 0
    sensor.flush()
    assert _value(registry, "t_messages_received_total") == 6
    assert _value(registry, "t_messages_received_per_topic_total", topic="events") == 6
    assert _value(registry, "t_messages_received_per_topics_partition", topic="events", partition=0) == 4
    assert _value(registry, "t_messages_received_per_topics_partition", topic="events", partition=1) == 41


def test_flushes_accumulate_and_active_messages_is_in_minus_out(sensor, registry):
    """Counters add up across flushes; the active gauge is received minus acknowledged."""
    tp, message = TP("events", 0), cast(Any, SimpleNamespace())
    for offset in range(3):
        sensor.on_message_in(tp, offset, message)
    sensor.on_message_out(tp, 0, message)
    sensor.flush()
    sensor.on_message_in(tp, 3, message)
    sensor.flush()
    sensor.flush()  # nothing new: nothing changes
    assert _value(registry, "t_messages_received_total") == 4
    assert _value(registry, "t_active_messages") == 3


def test_stream_events_and_table_operations_are_counted(sensor, registry):
    """Stream events per stream and table gets/sets/deletes keep Faust's labels."""
    stream: Any = _Stream()
    table: Any = SimpleNamespace(name="account-state")
    tp = TP("events", 0)
    state = sensor.on_stream_event_in(tp, 0, stream, None)
    sensor.on_stream_event_in(tp, 1, stream, None)
    sensor.on_stream_event_out(tp, 0, stream, None, state)
    sensor.on_table_set(table, b"k", b"v")
    sensor.on_table_set(table, b"k", b"v")
    sensor.on_table_get(table, b"k")
    sensor.on_table_del(table, b"k")
    sensor.flush()
    assert _value(registry, "t_total_events_total") == 2
    assert _value(registry, "t_total_active_events") == 1
    streams = [s for m in registry.collect() if m.name == "t_total_events_per_stream" for s in m.samples]
    assert [s.value for s in streams if s.name.endswith("_total")] == [2]
    ops = {"keys_updated": 2, "keys_retrieved": 1, "keys_deleted": 1}
    for operation, n in ops.items():
        got = _value(registry, "t_table_operations_total", table="table.account-state", operation=operation)
        assert got == n


def test_stream_events_mark_the_partition_active_for_fausts_slow_processing_check(sensor):
    """Each stream event records its TP's inbound time, which Faust's livelock detector reads."""
    tp = TP("preempt.alerts", 2)
    assert tp not in sensor.stream_inbound_time
    sensor.on_stream_event_in(tp, 5, _Stream(), cast(Any, SimpleNamespace()))
    first = sensor.stream_inbound_time[tp]
    sensor.on_stream_event_in(tp, 6, _Stream(), cast(Any, SimpleNamespace()))
    assert sensor.stream_inbound_time[tp] >= first
