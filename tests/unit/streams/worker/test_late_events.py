"""Late events are counted per partition and logged at most once per interval per partition."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from streams.worker.late_events import LateEventLog
from streams.worker.processor import RulesProcessor


def _late_total(partition: int) -> float:
    return REGISTRY.get_sample_value("preempt_late_events_total", {"partition": str(partition)}) or 0.0


def test_every_late_event_is_counted_under_its_partition() -> None:
    """Counts go to preempt_late_events_total{partition} when flushed, per partition."""
    before = (_late_total(901), _late_total(902))
    late = LateEventLog(interval=10.0)
    for _ in range(3):
        late.late(901, "acme", 2.0, now=100.0)
    late.late(902, "globex", 1.0, now=100.0)
    late.flush_counts()
    assert (_late_total(901) - before[0], _late_total(902) - before[1]) == (3, 1)


def test_warnings_are_rate_limited_per_partition_and_name_the_account_and_lateness() -> None:
    """One WARN per partition per interval, naming the account and seconds late, then a summary of the rest."""
    late = LateEventLog(interval=10.0)
    with capture_logs() as logs:
        late.late(0, "acme", 3.5, now=100.0)
        late.late(0, "globex", 7.0, now=101.0)
        late.late(0, "initech", 1.0, now=105.0)
        late.late(1, "umbrella", 2.0, now=105.0)
        late.late(0, "hooli", 4.0, now=111.0)
    warned = [(e["partition"], e["account_id"], e["seconds_late"]) for e in logs if e["event"] == "late event ignored"]
    assert warned == [(0, "acme", 3.5), (1, "umbrella", 2.0), (0, "hooli", 4.0)]
    last = [e for e in logs if e["event"] == "late event ignored"][-1]
    assert (last["more_late_since_last_warning"], last["worst_seconds_late_since_last_warning"]) == (2, 7.0)
    assert all(e["log_level"] == "warning" for e in logs)


def test_an_assigned_partition_shows_zero_late_events_before_its_first() -> None:
    """A partition handed to the worker's clock has its preempt_late_events_total series at 0 from then on,
    so a scrape sees it before any event is late (a labelled counter has no series until first used)."""
    assert REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "977"}) is None
    LateEventLog().expose([977, 977])
    assert REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "977"}) == 0.0


def test_the_clock_tick_exposes_the_assigned_partitions(
    make_processor: Callable[..., tuple[RulesProcessor, dict[bytes, bytes]]],
) -> None:
    """The processor's timer tick exposes the partitions it advances."""
    processor, _ = make_processor()
    processor.tick([978], [978])
    assert REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "978"}) == 0.0


def test_late_events_held_back_are_logged_once_the_interval_has_passed_even_when_none_follows() -> None:
    """A burst of late events (a producer's buffer delivered at once) logs its first at once and, once the
    interval has passed, one line with how many more and the worst lateness, though no later event is
    late; nothing more is logged until another late event."""
    late = LateEventLog(interval=10.0)
    with capture_logs() as logs:
        for i in range(40):
            late.late(0, f"a{i}", 25.0 + i / 10, now=100.0)
        late.flush(now=105.0)  # within the interval: held
        late.flush(now=110.0)
        late.flush(now=130.0)
    assert [(e["event"], e["more_late_since_last_warning"]) for e in logs] == [
        ("late event ignored", 0),
        ("late events ignored since the last warning", 39),
    ]
    assert (logs[1]["partition"], logs[1]["worst_seconds_late_since_last_warning"], logs[1]["log_level"]) == (
        0,
        28.9,
        "warning",
    )


def test_the_clock_tick_of_a_quiet_stream_logs_the_late_events_held_back(
    make_processor: Callable[..., tuple[RulesProcessor, dict[bytes, bytes]]],
) -> None:
    """With no batch coming, the timer's tick writes the held-back count to the log."""
    processor, _ = make_processor(wall=1000.0)
    processor.late_log.late(0, "acme", 30.0, now=980.0)
    processor.late_log.late(0, "globex", 31.0, now=981.0)
    with capture_logs() as logs:
        processor.tick([0], [])
    assert [(e["event"], e["more_late_since_last_warning"]) for e in logs] == [
        ("late events ignored since the last warning", 1)
    ]
