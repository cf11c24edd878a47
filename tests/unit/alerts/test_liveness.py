"""The notifier's liveness watchdog: alerts it stops reading are a stall; alerts it holds are not."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from alerts.liveness import AlertsWatchdog, PendingWrites
from alerts.recordless import RecordlessOffsets
from tests.unit.streams.worker.test_liveness import TP, NeverAnswers, StubApp, StubConsumer, unreadable_rounds


def _gauge(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("preempt_partition_stalled", {"topic": topic, "partition": str(partition)})


def _watchdog(topic: str, ends: dict[TP, int], committed: dict[TP, int], read: dict[int, int], now: list[float]) -> Any:
    consumer = StubConsumer(sorted(ends), ends=ends, committed=committed)
    return AlertsWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=30,
        read=lambda: read,
        ready=lambda: True,
        clock=lambda: now[0],
    )


def _rounds(dog: AlertsWatchdog, now: list[float], times: list[float]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        with capture_logs() as logs:
            for t in times:
                now[0] = t
                await dog.check()
        return logs

    return asyncio.run(run())


def test_alerts_the_notifier_stops_reading_are_a_stall_on_readyz_until_it_reads_again() -> None:
    """A partition whose end is past what the agent read (its handler stuck on a dead letter the broker does not
    take) is reported after the stall time — ERROR, gauge 1, /readyz — and cleared once the agent reads on."""
    topic = "wd-alerts"
    tp = TP(topic, 3)
    now = [0.0]
    read = {3: 5}
    dog = _watchdog(topic, ends={tp: 7}, committed={tp: 4}, read=read, now=now)

    logs = _rounds(dog, now, [0, 15, 31])
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert [(e["partition"], e["lag"], e["read"]) for e in errors] == [(3, 2, 5)]
    assert dog.stalled() == (f"{topic}/3",)
    assert _gauge(topic, 3) == 1

    read[3] = 7
    logs = _rounds(dog, now, [40])
    assert dog.stalled() == ()
    assert _gauge(topic, 3) == 0
    assert any(entry["event"] == "partition progressing again" for entry in logs)


def test_alerts_read_and_held_for_hours_are_not_a_stall() -> None:
    """Quiet hours, group_wait and retries keep the commit behind alerts already read: no stall, however long."""
    topic = "wd-alerts-held"
    tp = TP(topic, 0)
    now = [0.0]
    dog = _watchdog(topic, ends={tp: 9}, committed={tp: 2}, read={0: 9}, now=now)
    logs = _rounds(dog, now, [0, 600, 3600, 7200])
    assert not [entry for entry in logs if entry["log_level"] == "error"]
    assert dog.stalled() == ()


def test_a_position_read_before_a_rebalance_does_not_hide_behind_a_newer_commit() -> None:
    """The position is the higher of what was read and what was committed: a stale read offset lower than the
    commit (the partition came back after others moved it on) does not count the committed alerts as lag."""
    topic = "wd-alerts-stale"
    tp = TP(topic, 1)
    now = [0.0]
    dog = _watchdog(topic, ends={tp: 20}, committed={tp: 20}, read={1: 3}, now=now)
    _rounds(dog, now, [0, 60])
    assert dog.stalled() == ()


class _Tail:
    """The recordless-tail probe: says whether ``[start, end)`` holds no record, and counts its reads."""

    def __init__(self, empty: bool | Exception) -> None:
        self.empty = empty
        self.reads: list[tuple[int, int, int]] = []

    async def __call__(self, partition: int, start: int, end: int) -> bool:
        self.reads.append((partition, start, end))
        if isinstance(self.empty, Exception):
            raise self.empty
        return self.empty


def _probed_watchdog(
    topic: str, tp: TP, end: int, read_to: int, tail: _Tail, now: list[float], recordless: Any = None
) -> AlertsWatchdog:
    consumer = StubConsumer([tp], ends={tp: end}, committed={tp: read_to})
    return AlertsWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=30,
        read=lambda: {tp.partition: read_to},
        ready=lambda: True,
        clock=lambda: now[0],
        probe=tail,
        recordless=recordless,
    )


def test_a_transaction_marker_after_the_last_alert_is_not_a_stall() -> None:
    """Under exactly_once the last alert (offset 4) is followed by its commit marker (offset 5): read position 5,
    end 6. The tail holds no record, so an idle notifier stays ready; the tail is read once, not every sample."""
    topic = "wd-alerts-marker"
    tp = TP(topic, 0)
    now = [0.0]
    tail = _Tail(empty=True)
    dog = _probed_watchdog(topic, tp, end=6, read_to=5, tail=tail, now=now)
    logs = _rounds(dog, now, [0, 15, 30, 45, 60, 600])
    assert not [entry for entry in logs if entry["log_level"] == "error"]
    assert dog.stalled() == ()
    assert tail.reads == [(0, 5, 6)]


def test_a_tail_found_empty_is_written_down_for_the_lag_gauge() -> None:
    """The tail the probe found without records is handed to the runtime's record of such offsets, which
    ``preempt_consumer_lag`` leaves out; a tail that holds an alert is not."""
    now = [0.0]
    for empty, written in ((True, 1), (False, 0)):
        topic = f"wd-alerts-written-{empty}"
        known = RecordlessOffsets()
        dog = _probed_watchdog(
            topic, TP(topic, 0), end=6, read_to=5, tail=_Tail(empty=empty), now=now, recordless=known
        )
        _rounds(dog, now, [0, 15])
        assert known.excluded_from_lag(0, 5, 6) == written, empty


def test_a_tail_that_holds_an_alert_or_cannot_be_read_is_still_a_stall() -> None:
    """The probe hides only offsets without records: a record there, or a probe that fails, leaves the stall."""
    for name, tail in (("record", _Tail(empty=False)), ("fails", _Tail(empty=TimeoutError()))):
        topic = f"wd-alerts-tail-{name}"
        tp = TP(topic, 2)
        now = [0.0]
        dog = _probed_watchdog(topic, tp, end=9, read_to=5, tail=tail, now=now)
        _rounds(dog, now, [0, 15, 31, 46])
        assert dog.stalled() == (f"{topic}/2",), name
        assert tail.reads, name
        assert set(tail.reads) == {(2, 5, 9)}, name


def test_a_first_alert_of_a_new_consumer_group_the_agent_cannot_get_past_is_a_stall() -> None:
    """Nothing committed and nothing read (a new group): lag counts from the partition's earliest offset, so a
    first alert the agent never gets past is reported after the stall time instead of being skipped."""
    topic = "wd-alerts-new-group"
    tp = TP(topic, 1)
    now = [0.0]
    dog = _watchdog(topic, ends={tp: 3}, committed={}, read={}, now=now)
    logs = _rounds(dog, now, [0, 15, 31])
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert [(e["partition"], e["lag"], e["read"]) for e in errors] == [(1, 3, 0)]
    assert dog.stalled() == (f"{topic}/1",)


def test_an_empty_partition_of_a_new_consumer_group_is_not_a_stall() -> None:
    """Nothing committed, nothing read, nothing written (earliest == end): no lag, no stall."""
    topic = "wd-alerts-new-empty"
    tp = TP(topic, 0)
    now = [0.0]
    dog = _watchdog(topic, ends={tp: 0}, committed={}, read={}, now=now)
    _rounds(dog, now, [0, 31, 62])
    assert dog.stalled() == ()


def test_a_dead_letter_the_broker_does_not_take_is_reported_on_readyz_until_written() -> None:
    """A delivery's dead letter still in flight after the stall time (preempt.alerts.dlq deleted: the agent reads
    on, the commit waits) is one ERROR and a /readyz reason; a short one is not; once written, both clear."""
    topic = "wd-alerts-dlq"
    tp = TP(topic, 0)
    now = [0.0]
    pending = PendingWrites(clock=lambda: now[0])
    consumer = StubConsumer([tp], ends={tp: 4}, committed={tp: 1})
    dog = AlertsWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=30,
        read=lambda: {0: 4},  # the agent read on: no partition stall
        ready=lambda: True,
        clock=lambda: now[0],
        dead_letters=pending,
    )
    with pending.track():
        logs = _rounds(dog, now, [0, 15, 29])
        assert dog.stuck() == ()
        assert pending.oldest_age() == 29
        logs = _rounds(dog, now, [31, 46])
        assert dog.stuck() == ("dead letter not written for 46 s (1 pending)",)
        errors = [entry for entry in logs if entry["log_level"] == "error"]
        assert [(e["pending"], e["oldest_s"]) for e in errors] == [(1, 31)]
        assert dog.stalled() == ()
    logs = _rounds(dog, now, [50])
    assert dog.stuck() == ()
    assert pending.oldest_age() == 0
    assert any(entry["event"] == "dead letters written again" for entry in logs)


def test_a_dead_letter_waiting_out_a_broker_outage_is_not_reported_twice() -> None:
    """While the broker watch declares the brokers unreachable (/readyz says so already) a pending dead
    letter is not reported; after their return its age counts from then, so the producer has the stall
    time to flush it before it is reported."""
    topic = "wd-alerts-dlq-outage"
    tp = TP(topic, 0)
    now, down = [0.0], [True]
    pending = PendingWrites(clock=lambda: now[0])
    consumer = StubConsumer([tp], ends={tp: 4}, committed={tp: 1})
    dog = AlertsWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=30,
        read=lambda: {0: 4},
        ready=lambda: True,
        clock=lambda: now[0],
        broker_down=lambda: down[0],
        dead_letters=pending,
    )
    with pending.track():
        logs = _rounds(dog, now, [0, 60, 120])
        assert dog.stuck() == ()
        assert not [entry for entry in logs if entry["log_level"] == "error"]
        down[0] = False
        _rounds(dog, now, [135])
        assert dog.stuck() == ()  # 15 s after the return, not 135 s after the write began
        logs = _rounds(dog, now, [151])
        assert dog.stuck() == ("dead letter not written for 31 s (1 pending)",)
        assert [entry["oldest_s"] for entry in logs if entry["log_level"] == "error"] == [31]


def test_samples_that_never_answer_while_a_broker_answers_make_the_notifier_not_ready() -> None:
    """The alerts topic's partitions keep leaders that are gone (two of three brokers down with the
    controller quorum) while the third broker answers: each sample is bounded by the interval (aiokafka
    waited 90 s), and once they have failed for the stall time /readyz says so, until one works again."""
    topic = "nw-leaderless"
    tp0 = TP(topic, 0)
    consumer = StubConsumer([tp0], ends={tp0: 5}, committed={tp0: 5})
    now = [0.0]
    dog = AlertsWatchdog(
        StubApp(consumer),  # type: ignore[arg-type]
        topic,
        stall_after_s=2,  # sampled every 1 s: each hanging sample costs this test 1 s
        read=lambda: {0: 5},
        ready=lambda: True,
        clock=lambda: now[0],
    )
    real_highwaters = consumer.highwaters
    hanging = NeverAnswers()
    consumer.highwaters = hanging  # type: ignore[method-assign]

    def back() -> None:
        hanging.release()
        consumer.highwaters = real_highwaters  # type: ignore[method-assign]

    seen = unreadable_rounds(dog, now, [0.0, 1.0, 2.0, 3.0], before={3.0: back})
    assert seen[:2] == [(), ()]
    assert len(seen[2]) == 1
    assert seen[2][0].startswith(f"end offsets of {topic} not readable for 2 s")
    assert hanging.calls == 1  # one request at a time in the consumer's thread
    assert seen[3] == ()
