"""The worker core: batches of raw records → dead letters, outcomes, alerts and coalesced state writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from schemas.account import Account
from schemas.event import format_ts
from streams.worker.processor import FORWARDED_FROM, ForwardOutput, Record, RulesProcessor, partition_for_key
from tests.unit.streams.fake_engine import QUIET_AFTER

T0 = 1_795_420_800.0
Factory = Callable[..., tuple[RulesProcessor, dict[bytes, bytes]]]


def _record(offset: int, name: str, ts: float, account: str = "acme", partition: int = 0, **extra: Any) -> Record:
    body = {"event_id": f"e{offset}", "event": name, "account_id": account, "timestamp": format_ts(ts)} | extra
    return Record(partition, offset, account.encode(), json.dumps(body).encode(), topic="preempt.events")


def test_bad_records_become_dead_letters_with_reason_and_the_batch_carries_on(make_processor: Factory) -> None:
    """Undecodable records are dead-lettered with their reason; the good ones are still accepted."""
    processor, _ = make_processor()
    bad = Record(0, 1, b"acme", b"{nope", topic="preempt.events")
    out = processor.process_batch([_record(0, "Login", T0), bad, _record(2, "Login", T0 + 1)])
    assert [(d.reason, d.record.offset) for d in out.dead_letters] == [("invalid_json", 1)]
    assert out.accepted == 2


def test_a_refused_record_is_logged_with_reason_partition_and_offset_and_never_its_bytes(
    make_processor: Factory,
) -> None:
    """Each dead-lettered record has a WARN naming why and where (not its content), rate-limited per interval."""
    processor, _ = make_processor()
    first = Record(3, 41, b"acme", b'{"email": "bob@example.com"', topic="preempt.events")
    second = Record(3, 42, b"acme", b"", topic="preempt.events")
    with capture_logs() as logs:
        processor.process_batch([first, second])
    warned = [e for e in logs if e["event"] == "event dead-lettered"]
    assert [(e["reason"], e["topic"], e["partition"], e["offset"]) for e in warned] == [
        ("invalid_json", "preempt.events", 3, 41)
    ]
    assert warned[0]["log_level"] == "warning"
    assert "bob@example.com" not in repr(logs)


def test_a_refused_record_is_logged_with_the_account_its_key_names(make_processor: Factory) -> None:
    """The WARN of a dead-lettered record carries its key as ``account_id`` (DESIGN.md §9: logs bind the
    account where it is known; every topic is keyed by account), so the bad producer's account is in the log."""
    processor, _ = make_processor()
    with capture_logs() as logs:
        processor.process_batch([Record(0, 7, "Zeta Ünïcode".encode(), b"{nope", topic="preempt.events")])
    warned = [e for e in logs if e["event"] == "event dead-lettered"]
    assert [e.get("account_id") for e in warned] == ["Zeta Ünïcode"]


def test_state_is_written_once_per_touched_account_per_batch(make_processor: Factory) -> None:
    """Fifty events of two accounts produce two state writes and one clock write."""
    processor, _ = make_processor()
    batch = [_record(i, "Login", T0 + i, account=f"a{i % 2}") for i in range(50)]
    out = processor.process_batch(batch)
    assert {p: sorted(w) for p, w in out.state_writes.items()} == {0: ["a0", "a1"]}
    assert out.clock_writes == {0: T0 + 49}


def test_events_fire_only_once_the_partition_watermark_passes_them(make_processor: Factory) -> None:
    """The third error alerts when a later event moves the partition clock past it, enriched with the account."""
    processor, _ = make_processor(accounts={"acme": Account(account_id="acme", name="Acme")})
    first = processor.process_batch([_record(i, "Error", T0 + i) for i in range(3)])
    assert first.alerts == []
    later = processor.process_batch([_record(9, "Login", T0 + 30, account="other")])
    assert [(a.rule_id, a.account_id, a.account.name) for a in later.alerts] == [("three-errors", "acme", "Acme")]


def test_duplicates_are_dropped_and_not_written(make_processor: Factory) -> None:
    """A repeated event id is counted as a duplicate and causes no state write."""
    processor, _ = make_processor()
    processor.process_batch([_record(0, "Login", T0)])
    again = processor.process_batch([_record(0, "Login", T0)])
    assert (again.accepted, again.state_writes) == (0, {})


def test_duplicates_are_logged_at_most_once_per_interval_with_their_count(make_processor: Factory) -> None:
    """Every skip reaches the log, not only the metric: the first duplicate gets a line at once, the next ones are
    held and said with their count once the interval has passed (a quiet stream's tick says them too)."""
    processor, _ = make_processor()
    processor.process_batch([_record(0, "Login", T0)])
    with capture_logs() as logs:
        processor.process_batch([_record(1, "Login", T0, event_id="e0")])  # another offset, the same event
        processor.process_batch([_record(2, "Login", T0, event_id="e0"), _record(3, "Login", T0, event_id="e0")])
    lines = [e for e in logs if e["event"].startswith("duplicate events ignored")]
    assert [e["duplicates_since_last_line"] for e in lines] == [1]
    with capture_logs() as logs:
        processor.duplicate_log.ignored(0, processor.duplicate_log.interval + 1e12)
    assert [e["duplicates_since_last_line"] for e in logs] == [2]


def _duplicates(source: str) -> float:
    return REGISTRY.get_sample_value("preempt_duplicate_events_total", {"source": source}) or 0.0


def test_duplicates_read_again_after_a_restart_are_counted_apart_from_a_producers_copies(
    make_processor: Factory,
) -> None:
    """Records evaluated before and read again from the committed offset (a restart, a rebalance) are
    duplicates with source read_again; the same event_id at a new offset is a producer's copy (source
    producer), and the log line says how many of each. Before, one unlabelled counter held both."""
    processor, _ = make_processor()
    first = [_record(i, "Login", T0 + i) for i in range(3)]
    processor.process_batch(first)
    read_again, produced = _duplicates("read_again"), _duplicates("producer")
    processor.forget_offsets()  # the rebuild after a restart or rebalance
    processor.reading_from({0: 0})  # read again from the group's committed offset
    with capture_logs() as logs:
        processor.process_batch([*first, _record(3, "Login", T0 + 1, event_id="e1")])
    assert (_duplicates("read_again"), _duplicates("producer")) == (read_again + 3, produced + 1)
    (line,) = [e for e in logs if e["event"].startswith("duplicate events ignored")]
    assert (line["duplicates_since_last_line"], line["read_again"], line["from_producers"]) == (4, 3, 1)


def test_tick_fires_an_inactivity_deadline_from_the_wall_clock(make_processor: Factory) -> None:
    """In live mode a timer tick past the deadline alerts with no further events."""
    processor, _ = make_processor(event_time_only=False, wall=T0)
    processor.process_batch([_record(0, "Login", T0)])
    processor.clocks._wall_clock = lambda: T0 + QUIET_AFTER + 10  # the timer runs later
    out = processor.tick([0], caught_up=[0])
    assert [a.rule_id for a in out.alerts] == ["quiet"]
    assert list(out.state_writes[0]) == ["acme"]


def test_a_deadline_alerts_latency_is_timed_from_its_deadline_not_from_the_last_event(
    make_processor: Factory,
) -> None:
    """preempt_event_to_alert_seconds times a clock-fired alert from the deadline that fired it (here 10 s
    late), not from the event that started the wait (QUIET_AFTER + 10 s); an event-fired one from its event."""

    def observed() -> tuple[float, float]:
        total = REGISTRY.get_sample_value("preempt_event_to_alert_seconds_sum")
        count = REGISTRY.get_sample_value("preempt_event_to_alert_seconds_count")
        return (total or 0.0, count or 0.0)

    processor, _ = make_processor(event_time_only=False, wall=T0)
    processor.process_batch([_record(0, "Login", T0)])
    before = observed()
    processor.clocks._wall_clock = lambda: T0 + QUIET_AFTER + 10
    processor._wall_clock = lambda: T0 + QUIET_AFTER + 10
    assert [a.rule_id for a in processor.tick([0], caught_up=[0]).alerts] == ["quiet"]
    after = observed()
    assert after[1] - before[1] == 1
    assert after[0] - before[0] == 10.0


def test_a_live_worker_reading_a_backlog_evaluates_it_instead_of_judging_it_late(make_processor: Factory) -> None:
    """Events that waited in Kafka (the worker was down or behind) are accepted while the partition
    is not caught up; once it is, the wall clock fires the deadline they started."""
    processor, _ = make_processor(event_time_only=False, wall=T0 + 600)  # read 10 minutes late
    processor.tick([0], caught_up=[])  # the timer, while the partition still has lag
    out = processor.process_batch([_record(0, "Login", T0)])
    assert (out.accepted, out.state_writes[0].keys()) == (1, {"acme"})
    assert processor.tick([0], caught_up=[]).alerts == []  # still behind: no wall-clock deadline
    processor.clocks._wall_clock = lambda: T0 + QUIET_AFTER + 10
    assert [a.rule_id for a in processor.tick([0], caught_up=[0]).alerts] == ["quiet"]


def test_a_batch_reading_a_partition_to_its_end_catches_its_live_clock_up(make_processor: Factory) -> None:
    """A batch's old events are judged against the clock before it; then the partitions it read to
    the end catch up with the wall clock, so a deadline already due fires in the same batch."""
    processor, _ = make_processor(event_time_only=False, wall=T0 + QUIET_AFTER + 10)
    out = processor.process_batch([_record(0, "Login", T0)], caught_up=[0])
    assert out.accepted == 1
    assert [a.rule_id for a in out.alerts] == ["quiet"]


def test_rebuild_wakeups_restores_pending_deadlines_from_table_bytes(make_processor: Factory) -> None:
    """After recovery the wakeup index is rebuilt from the table so deadlines still fire."""
    processor, table = make_processor()
    out = processor.process_batch([_record(0, "Login", T0)])
    table.update({k.encode(): v for k, v in out.state_writes[0].items()})
    fresh, _ = make_processor()
    fresh.cache._store = table
    assert fresh.rebuild_wakeups((k.decode(), 0, v) for k, v in table.items()) == 1
    fresh.clocks.restore(0, T0 + QUIET_AFTER + 10)
    assert [a.rule_id for a in fresh.tick([0], caught_up=[0]).alerts] == ["quiet"]


def test_an_offset_gap_between_batches_is_counted(make_processor: Factory) -> None:
    """Records that never reached the worker (an offset jump on a partition) are counted as a gap."""
    processor, _ = make_processor()
    before = REGISTRY.get_sample_value("preempt_event_offset_gaps_total") or 0.0
    processor.process_batch([_record(0, "Login", T0), _record(1, "Login", T0 + 1)])
    processor.process_batch([_record(5, "Login", T0 + 2)])
    assert REGISTRY.get_sample_value("preempt_event_offset_gaps_total") == before + 3


def test_find_gaps_names_each_offset_jump_without_consuming_it(make_processor: Factory) -> None:
    """find_gaps reports (partition, first missing, next seen) and leaves the offsets untouched."""
    processor, _ = make_processor()
    processor.process_batch([_record(0, "Login", T0)])
    batch = [_record(4, "Login", T0 + 1), _record(5, "Login", T0 + 2, partition=1)]
    assert processor.find_gaps(batch) == [(0, 1, 4)]
    assert processor.find_gaps(batch) == [(0, 1, 4)]


def test_check_offsets_gives_gaps_first_and_next_offsets_in_one_pass(make_processor: Factory) -> None:
    """One pass names every jump (against earlier batches too), each partition's first offset and the
    offset after its highest; a re-delivered older record neither moves them nor hides a later jump."""
    processor, _ = make_processor()
    processor.process_batch([_record(0, "Login", T0), _record(1, "Login", T0 + 1)])  # partition 0 expects 2
    batch = [
        _record(0, "Login", T0, partition=0),  # re-delivered, below what partition 0 expects
        _record(5, "Login", T0 + 2, partition=0),
        _record(7, "Login", T0 + 3, partition=1),
        _record(9, "Login", T0 + 4, partition=1),
        _record(6, "Login", T0 + 5, partition=0),
    ]
    check = processor.check_offsets(batch)
    assert check.gaps == [(0, 2, 5), (1, 8, 9)]
    assert check.first == {0: 0, 1: 7}
    assert check.next == {0: 7, 1: 10}


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    known=st.dictionaries(st.integers(0, 2), st.integers(1, 20), max_size=3),
    runs=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.one_of(
                st.tuples(st.integers(0, 25), st.integers(0, 6)).map(lambda s: list(range(s[0], s[0] + s[1]))),
                st.lists(st.integers(0, 25), max_size=6),
            ),
        ),
        max_size=5,
    ),
)
def test_check_runs_is_check_offsets_of_the_runs_one_after_the_other(
    make_processor: Factory, known: dict[int, int], runs: list[tuple[int, list[int]]]
) -> None:
    """Per-partition runs (contiguous or not, after earlier batches or not, a partition in several
    runs) give exactly what the record-by-record pass gives for the same records in order."""
    processor, _ = make_processor()
    processor.forget_offsets()
    processor.process_batch([Record(p, o - 1, b"k", b"") for p, o in known.items()])  # partition p expects o
    batches = [[Record(p, o, b"k", b"v") for o in offsets] for p, offsets in runs]
    assert processor.check_runs(batches) == processor.check_offsets([r for b in batches for r in b])


def test_aiokafka_records_are_processed_as_polled_and_dead_lettered_as_records(make_processor: Factory) -> None:
    """The batched path hands aiokafka's ConsumerRecords over uncopied; a rejected one is dead-lettered
    with its key, value and headers (a null header value as empty bytes)."""
    from aiokafka.structs import ConsumerRecord

    processor, _ = make_processor()
    good = _record(0, "Login", T0)

    def polled(offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
        headers = (("trace", b"t1"), ("empty", None))
        return ConsumerRecord("preempt.events", 0, offset, 0, 0, b"acme", value, None, 4, len(value), headers)  # type: ignore[arg-type]

    out = processor.process_batch([polled(0, good.value or b""), polled(1, b"{nope")])
    assert out.accepted == 1
    [letter] = out.dead_letters
    assert letter.record == Record(0, 1, b"acme", b"{nope", [("trace", b"t1"), ("empty", b"")], "preempt.events")


# --- the failure policy: one record or one account never stops the batch ---------------------------


def _quarantined(reason: str) -> float:
    return REGISTRY.get_sample_value("preempt_accounts_quarantined_total", {"reason": reason}) or 0.0


def test_unreadable_stored_state_is_dead_lettered_and_the_event_still_counts(make_processor: Factory) -> None:
    """An account whose stored state is garbage starts afresh; its old bytes go to the DLQ as state_unreadable."""
    processor, table = make_processor()
    table[b"acme"] = b"\xffnot a state"
    before = _quarantined("state_unreadable")
    out = processor.process_batch([_record(0, "Login", T0), _record(1, "Login", T0 + 1, account="other")])
    assert out.accepted == 2
    [letter] = out.dead_letters
    assert (letter.reason, letter.record.key, letter.record.value) == ("state_unreadable", b"acme", b"\xffnot a state")
    assert (letter.record.topic, letter.record.offset) == ("account-state", -1)
    assert json.loads(out.state_writes[0]["acme"])["seen"] == ["e0"]
    assert _quarantined("state_unreadable") == before + 1


def test_an_engine_failure_while_advancing_quarantines_only_that_account(make_processor: Factory) -> None:
    """The engine raising on one account's state quarantines it; other accounts' alerts in the batch still go out."""
    processor, _ = make_processor()
    real_next_wakeup = processor.engine.next_wakeup

    def next_wakeup(state: Any) -> float | None:
        if state.account_id == "boom":
            raise ZeroDivisionError("a rule bug")
        return real_next_wakeup(state)

    processor.engine.next_wakeup = next_wakeup  # type: ignore[method-assign]
    batch = [_record(i, "Error", T0 + i) for i in range(3)]
    batch += [_record(3, "Login", T0 + 3, account="boom"), _record(4, "Login", T0 + 30, account="other")]
    out = processor.process_batch(batch)
    assert [a.account_id for a in out.alerts] == ["acme"]
    assert [(d.reason, d.record.key) for d in out.dead_letters] == [("evaluation_error", b"boom")]
    assert "ZeroDivisionError: a rule bug" in out.dead_letters[0].detail
    assert set(out.state_writes[0]) == {"acme", "boom", "other"}


def test_a_finding_that_fails_enrichment_is_sent_without_account_context(make_processor: Factory) -> None:
    """An account lookup that raises does not lose the alert: it goes out without the account."""

    def lookup(account_id: str) -> Account | None:
        raise ValueError("broken account record")

    processor, _ = make_processor()
    processor.accounts = lookup
    out = processor.process_batch([_record(i, "Error", T0 + i) for i in range(3)] + [_record(9, "Login", T0 + 30)])
    assert [(a.rule_id, a.account.name) for a in out.alerts] == [("three-errors", None)]


def test_a_finding_that_cannot_become_an_alert_is_dead_lettered(make_processor: Factory) -> None:
    """If to_alert fails even without the account, the finding goes to the DLQ as alert_build_failed."""
    processor, _ = make_processor()

    def to_alert(finding: Any, account: Any, emitted_at: float) -> Any:
        raise RuntimeError("template exploded")

    processor.engine.to_alert = to_alert  # type: ignore[method-assign]
    with capture_logs() as logs:
        out = processor.process_batch([_record(i, "Error", T0 + i) for i in range(3)] + [_record(9, "Login", T0 + 30)])
    assert out.alerts == []
    [line] = [line for line in logs if line["event"] == "finding could not become an alert; dead-lettered"]
    assert (line["rule_id"], line["account_id"]) == ("three-errors", "acme")  # DESIGN §9: bound where known
    [letter] = out.dead_letters
    assert (letter.reason, letter.record.key, letter.record.topic) == ("alert_build_failed", b"acme", "findings")
    assert json.loads(letter.record.value or b"")["rule_id"] == "three-errors"


def test_rebuild_with_an_unreadable_state_quarantines_it_and_carries_on(make_processor: Factory) -> None:
    """Recovery never raises on bad table bytes: the account restarts empty, dead-lettered with the next output."""
    processor, table = make_processor()
    table[b"bad"] = b"{truncated"
    good = processor.process_batch([_record(0, "Login", T0)]).state_writes[0]["acme"]
    table[b"acme"] = good
    fresh, _ = make_processor()
    fresh.cache._store = table
    assert fresh.rebuild_wakeups([("bad", 0, table[b"bad"]), ("acme", 0, good)]) == 2
    out = fresh.tick([0], caught_up=[0])
    assert [(d.reason, d.record.value) for d in out.dead_letters] == [("state_unreadable", b"{truncated")]
    assert "bad" in out.state_writes[0]


def test_an_over_limit_state_is_quarantined_and_the_stream_goes_on(make_processor: Factory) -> None:
    """With a tiny PREEMPT_MAX_STATE_BYTES the growing account is quarantined, never written over the limit."""
    processor, table = make_processor(max_state_bytes=1024)
    out = processor.process_batch([_record(0, "Login", T0, account="busy")])
    assert out.dead_letters == []
    table[b"busy"] = out.state_writes[0]["busy"]  # what the writer does
    batch = [_record(i, "Login", T0 + i, account="busy", event_id=f"{i:0>100}") for i in range(1, 20)]
    out = processor.process_batch([*batch, _record(20, "Login", T0 + 19, account="calm")])
    assert [(d.reason, d.record.key) for d in out.dead_letters] == [("state_too_large", b"busy")]
    assert out.dead_letters[0].record.value == table[b"busy"]  # the last state written is kept aside
    assert all(len(v) <= 1024 for w in out.state_writes.values() for v in w.values())
    assert "calm" in out.state_writes[0]


def test_late_events_are_counted_per_partition(make_processor: Factory) -> None:
    """An event behind its account's clock is counted under its partition label."""
    processor, _ = make_processor(topic_partitions=3)
    before = REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "2"}) or 0.0
    z = {"account": "z", "partition": 2}  # Kafka's default partitioner puts "z" on partition 2 of 3
    processor.process_batch([_record(0, "Login", T0, **z), _record(1, "Login", T0 + 100, **z)])
    processor.process_batch([_record(2, "Login", T0 + 10, **z)])
    assert REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "2"}) == before + 1


def test_a_future_stamped_event_does_not_make_other_accounts_late_in_live_mode(make_processor: Factory) -> None:
    """Live mode: an event 4 minutes ahead leaves the partition clock at the wall clock; on-time events count."""
    processor, _ = make_processor(event_time_only=False, wall=T0)
    processor.process_batch([_record(0, "Login", T0 + 240, account="fast-clock")])
    out = processor.process_batch([_record(i, "Login", T0 - 1 + i * 0.1, account=f"a{i}") for i in range(1, 6)])
    assert out.accepted == 5


def test_an_unreadable_clock_record_is_skipped_not_raised(make_processor: Factory) -> None:
    """Recovery seeds clocks from readable records of owned partitions and skips garbage ones."""
    processor, _ = make_processor()
    processor.restore_clock(b"0", repr(T0).encode(), {0, 1})
    processor.restore_clock(b"1", b"\xffgarbage", {0, 1})
    processor.restore_clock(b"x", b"12.0", {0, 1})
    processor.restore_clock(b"2", b"99.0", {0, 1})
    assert (processor.clocks.max_event_time(0), processor.clocks.max_event_time(1)) == (T0, None)
    assert processor.clocks.max_event_time(2) is None


def test_an_event_that_breaks_the_account_state_dead_letters_it_and_quarantines_the_account(
    make_processor: Factory,
) -> None:
    """A poison event that the engine buffered before failing would fail every later event: the event is
    dead-lettered and the account quarantined, so its next event is processed on a fresh state."""
    processor, _ = make_processor()
    real_advance = processor.engine.advance

    def advance(state: Any, watermark: float) -> list[Any]:
        if any(name == "Poison" for _, _, name in state.buffered):
            raise ValueError("cannot apply a Poison event")
        return real_advance(state, watermark)

    processor.engine.advance = advance  # type: ignore[method-assign]
    out = processor.process_batch([_record(0, "Poison", T0), _record(1, "Login", T0 + 1)])
    assert [(d.reason, d.record.offset) for d in out.dead_letters] == [
        ("processing_error", 0),
        ("evaluation_error", -1),
    ]
    assert out.accepted == 1
    assert json.loads(out.state_writes[0]["acme"])["seen"] == ["e1"]


def test_an_event_the_engine_fails_on_leaves_a_healthy_state_alone(make_processor: Factory) -> None:
    """If the state still advances after the failure, only the event is dead-lettered."""
    processor, _ = make_processor()
    real_on_event = processor.engine.on_event

    def on_event(state: Any, event: Any, watermark: float, late_before: float | None = None) -> Any:
        if event.event == "Poison":
            raise ValueError("cannot read this event")
        return real_on_event(state, event, watermark, late_before)

    processor.engine.on_event = on_event  # type: ignore[method-assign]
    out = processor.process_batch([_record(0, "Login", T0), _record(1, "Poison", T0 + 1), _record(2, "Login", T0 + 2)])
    assert [d.reason for d in out.dead_letters] == ["processing_error"]
    assert json.loads(out.state_writes[0]["acme"])["seen"] == ["e0", "e2"]


def test_writes_can_be_left_to_take_writes_with_the_same_result(make_processor: Factory) -> None:
    """With ``writes=False`` a batch and a tick leave their state writes to ``take_writes`` (called
    before the next batch or tick, as the runtime does), which returns exactly what they would have
    written; their alerts are complete before it."""
    outs = []
    for deferred in (False, True):
        processor, _ = make_processor(event_time_only=False, wall=T0)
        records = [_record(i, "Login", T0 + i, account=f"a{i % 2}") for i in range(4)]
        batch = processor.process_batch(records, writes=not deferred)
        if deferred:
            assert batch.state_writes == {}
            processor.take_writes(batch)
        processor.clocks._wall_clock = lambda: T0 + QUIET_AFTER + 10  # the timer runs later
        tick = processor.tick([0], caught_up=[0], writes=not deferred)
        if deferred:
            assert tick.state_writes == {}
            assert [a.rule_id for a in tick.alerts] == ["quiet", "quiet"]
            processor.take_writes(tick)
        outs.append((batch.state_writes, batch.clock_writes, [a.alert_id for a in tick.alerts], tick.state_writes))
    assert outs[0] == outs[1]
    assert sorted(outs[0][3][0]) == ["a0", "a1"]


def test_next_deadline_is_the_wall_time_the_earliest_wakeup_falls_due_live_only(make_processor: Factory) -> None:
    """Live, the next deadline is the earliest pending wakeup + the allowed lateness (when the wall
    clock − lateness reaches it); event-time-only processors have none."""
    live, _ = make_processor(event_time_only=False, wall=T0)
    live.process_batch([_record(0, "Login", T0)])
    wakeup = live.wakeups.next_due(0)
    assert wakeup is not None
    assert live.next_deadline([0, 1]) == wakeup + live.settings.allowed_lateness_seconds
    assert live.next_deadline([1]) is None  # nothing pending there
    replay, _ = make_processor()
    replay.process_batch([_record(0, "Login", T0)])
    assert replay.next_deadline([0]) is None


def test_an_event_read_off_its_accounts_partition_is_forwarded_there_not_evaluated(make_processor: Factory) -> None:
    """A valid event without a key (or keyed by something else) read on another partition than its
    account's is forwarded to that partition, counted, and neither evaluated nor written here; read
    there, it is evaluated as usual (its account's state, clock and deadlines live only there)."""
    processor, _ = make_processor(topic_partitions=4)
    home = partition_for_key(b"acme", 4)
    stray = (home + 1) % 4
    before = REGISTRY.get_sample_value("preempt_events_total", {"outcome": "forwarded"}) or 0.0
    body = {"event_id": "e1", "event": "Login", "account_id": "acme", "timestamp": format_ts(T0)}
    keyless = Record(stray, 7, None, json.dumps(body).encode(), [("content-type", b"application/json")], "ev")
    out = processor.process_batch([keyless])
    assert out.forwards == [ForwardOutput(keyless, "acme", home)]
    assert (out.accepted, out.state_writes, out.clock_writes, out.dead_letters) == (0, {}, {}, [])
    assert REGISTRY.get_sample_value("preempt_events_total", {"outcome": "forwarded"}) == before + 1
    forwarded = Record(home, 0, b"acme", keyless.value, keyless.headers, "ev")
    there = processor.process_batch([forwarded])
    assert (there.accepted, there.forwards, list(there.state_writes)) == (1, [], [home])


def test_a_key_other_than_the_account_on_the_accounts_partition_is_evaluated_in_place(
    make_processor: Factory,
) -> None:
    """What matters is the partition: an event keyed oddly but read on its account's partition is evaluated."""
    processor, _ = make_processor(topic_partitions=4)
    home = partition_for_key(b"acme", 4)
    body = {"event_id": "e1", "event": "Login", "account_id": "acme", "timestamp": format_ts(T0)}
    out = processor.process_batch([Record(home, 0, b"not-the-account", json.dumps(body).encode(), topic="ev")])
    assert (out.accepted, out.forwards) == (1, [])


def test_a_forwarded_copy_off_its_accounts_partition_is_evaluated_there_not_forwarded_again(
    make_processor: Factory,
) -> None:
    """A copy already forwarded (header preempt.forwarded.from) that is still not on its account's partition
    (workers disagreeing on the partition count) is evaluated where it is, with an ERROR, never forwarded
    again: two workers with 12 and 24 partitions would otherwise bounce it between them for good."""
    processor, _ = make_processor(topic_partitions=4)
    home = partition_for_key(b"acme", 4)
    stray = (home + 1) % 4
    body = {"event_id": "e1", "event": "Login", "account_id": "acme", "timestamp": format_ts(T0)}
    headers = [("content-type", b"application/json"), (FORWARDED_FROM, b"3/41")]
    copy = Record(stray, 8, b"acme", json.dumps(body).encode(), headers, "ev")
    with capture_logs() as logs:
        out = processor.process_batch([copy])
    assert (out.accepted, out.forwards, list(out.state_writes)) == (1, [], [stray])
    assert [e["log_level"] for e in logs if "not forwarded again" in e["event"]] == ["error"]


def test_a_burst_the_watermark_has_not_passed_is_evaluated_early_instead_of_quarantining_its_account(
    make_processor: Factory,
) -> None:
    """One account sending hundreds of events within the allowed lateness (a client stuck in a retry
    loop): its oldest buffered events are evaluated at once, the alert they make goes out in the same
    batch, the early events are counted and logged, and its state stays under the limit (it was
    quarantined, and the alert lost)."""
    processor, _ = make_processor(max_state_bytes=8192)
    before = REGISTRY.get_sample_value("preempt_events_evaluated_early_total") or 0.0
    burst = [_record(i, "Error", T0 + i * 0.001, account="stuck") for i in range(300)]
    with capture_logs() as logs:
        out = processor.process_batch(burst)
    assert out.dead_letters == []
    assert [(a.rule_id, a.account_id) for a in out.alerts] == [("three-errors", "stuck")]
    assert len(out.state_writes[0]["stuck"]) <= 8192
    early = (REGISTRY.get_sample_value("preempt_events_evaluated_early_total") or 0.0) - before
    assert early > 0
    assert [entry["account_id"] for entry in logs if "evaluated ahead of the watermark" in entry["event"]] == ["stuck"]
    calm = processor.process_batch([_record(400 + i, "Error", T0 + 1 + i * 0.001, account="calm") for i in range(3)])
    assert calm.alerts == []  # an account within the bound keeps waiting for the watermark


def test_events_waiting_while_a_long_batch_ran_are_not_late_in_live_mode(make_processor: Factory) -> None:
    """Live: a batch that read its partition to the end known 60 s ago (the batch held the worker
    meanwhile) moves the clock to then − lateness, so the events written in those 60 s, read next,
    are evaluated, not dropped as late (they were: the clock had moved to now − lateness)."""
    processor, _ = make_processor(event_time_only=False, wall=T0 + 60)
    processor.process_batch([_record(0, "Login", T0 - 1)], caught_up={0: T0})
    out = processor.process_batch([_record(1 + i, "Error", T0 + 1 + i) for i in range(3)])
    assert out.accepted == 3


def test_events_stamped_during_a_broker_outage_and_delivered_after_it_are_not_late(make_processor: Factory) -> None:
    """Live: the broker answered no fetch for 31 s (requests failed). The first answer after it reads
    the partition to its end with a fresh event; the events producers buffered during the outage come
    next. They are evaluated, not late (they were: the first answer had moved the clock to then −
    lateness), and the clock moves on once the grace is over."""
    processor, _ = make_processor(event_time_only=False, wall=T0 + 31)
    clocks = processor.clocks
    clocks._wall_clock = lambda: T0  # type: ignore[method-assign]
    clocks.fetched({0: T0}, None)
    processor.process_batch([_record(0, "Login", T0 - 1)], caught_up={0: T0})
    clocks._wall_clock = lambda: T0 + 31  # type: ignore[method-assign]
    assert clocks.fetched({0: T0 + 31}, unanswered_at=T0 + 10) == {0: 31.0}  # the runtime, before the batch
    processor.process_batch([_record(1, "Login", T0 + 31, account="fresh")], caught_up={0: T0 + 31})
    out = processor.process_batch([_record(2 + i, "Error", T0 + 1 + i) for i in range(3)], caught_up={0: T0 + 31})
    assert out.accepted == 3
    clocks._wall_clock = lambda: T0 + 91  # type: ignore[method-assign]
    processor.tick([0], {0: T0 + 91})
    assert clocks.watermark(0) == T0 + 86


def _cooldown_suppressed() -> float:
    return REGISTRY.get_sample_value("preempt_alerts_suppressed_total", {"reason": "cooldown"}) or 0.0


def test_findings_dropped_by_a_cooldown_are_counted_as_suppressed(tmp_path: Any) -> None:
    """With the real engine, findings a rule's cooldown drops show in
    ``preempt_alerts_suppressed_total{reason="cooldown"}`` (DESIGN §9), those of events and of deadlines."""
    from rules.engine import RuleEngine
    from rules.loader import load_rules
    from streams.runtime.settings import Settings
    from streams.worker.clock import PartitionClocks
    from streams.worker.state_cache import StateCache
    from streams.worker.wakeups import WakeupIndex

    (tmp_path / "r.yaml").write_text(
        "rules:\n"
        "- {id: every-error, kind: any, title: t, severity: low, priority: 1, cooldown: 1h, match: {event: Error}}\n"
        "- {id: quiet, kind: inactivity, title: q, severity: low, priority: 2, after: 1m, cooldown: 1d,"
        " match: {event: Error}}\n"
    )
    engine = RuleEngine(load_rules(tmp_path / "r.yaml"))
    cfg = Settings(event_time_only=True, allowed_lateness_seconds=5.0, topic_partitions=1)
    table: dict[bytes, bytes] = {}
    processor = RulesProcessor(
        engine,
        cfg,
        StateCache(table, engine.new_state, engine.loads, engine.dumps),
        PartitionClocks(5.0, True, wall_clock=lambda: T0),
        WakeupIndex(),
        {}.get,
        ["every-error", "quiet"],
        wall_clock=lambda: T0,
    )
    before = _cooldown_suppressed()
    errors = [_record(i, "Error", T0 + 10 * i) for i in range(4)]
    out = processor.process_batch([*errors, _record(4, "Ping", T0 + 100)])
    assert [a.rule_id for a in out.alerts] == ["every-error", "quiet"]
    assert _cooldown_suppressed() == before + 3
    # one more error (within the any rule's 1h) and the silence after it (within quiet's 1d), both
    # dropped: the second by a deadline the clock fires
    out = processor.process_batch([_record(5, "Error", T0 + 120), _record(6, "Ping", T0 + 300)])
    assert out.alerts == []
    assert _cooldown_suppressed() == before + 5


def _real_processor(
    tmp_path: Any, rules_yaml: str, event_time_only: bool = True, table: dict[bytes, bytes] | None = None
) -> RulesProcessor:
    """A processor over the real rule engine (one partition, lateness 5 s), its states in ``table``."""
    from rules.engine import RuleEngine
    from rules.loader import load_rules
    from streams.runtime.settings import Settings
    from streams.worker.clock import PartitionClocks
    from streams.worker.state_cache import StateCache
    from streams.worker.wakeups import WakeupIndex

    (tmp_path / "r.yaml").write_text(rules_yaml)
    engine = RuleEngine(load_rules(tmp_path / "r.yaml"))
    cfg = Settings(event_time_only=event_time_only, allowed_lateness_seconds=5.0, topic_partitions=1)
    return RulesProcessor(
        engine,
        cfg,
        StateCache({} if table is None else table, engine.new_state, engine.loads, engine.dumps),
        PartitionClocks(5.0, event_time_only, wall_clock=lambda: T0 + 1000),
        WakeupIndex(),
        {}.get,
        [],
        wall_clock=lambda: T0 + 1000,
    )


def test_an_event_at_exactly_the_watermark_is_advanced_once_a_batch_not_until_the_time_slice_runs_out(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events one a batch, each 5 s (the allowed lateness) after the last: every batch's watermark is the
    time of the event buffered before, which a watermark at its time does not apply. The account was due
    again at once after each advance, and the worker went round it until the batch's time slice ran out
    (1.38 million advances for 3,000 demo events one a batch; 2,721 now)."""
    processor = _real_processor(
        tmp_path,
        "rules:\n- {id: quiet, kind: inactivity, title: q, severity: low, priority: 2, after: 1h,"
        " match: {event: Login}}\n",
    )
    calls = 0
    advance = processor.engine.advance

    def counted(state: Any, watermark: float) -> Any:
        nonlocal calls
        calls += 1
        return advance(state, watermark)

    monkeypatch.setattr(processor.engine, "advance", counted)
    for i in range(20):
        processor.process_batch([_record(i, "Login", T0 + 5 * i)])
    assert calls <= 2 * 20  # the touched account once a batch, and at most once more when it falls due


EVERY_ERROR = "- {id: every-error, kind: any, title: t, severity: low, priority: 1, match: {event: Error}}\n"


@given(split=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=5))
@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_an_event_later_than_the_lateness_behind_an_earlier_one_of_its_batch_is_late_whatever_the_batches(
    tmp_path: Any, split: list[int]
) -> None:
    """Late is judged against the partition's clock as the event arrives, as the backtest judges it: an
    event more than the allowed lateness older than one read before it on its partition is late and
    ignored, also when both come in one poll (it was accepted then, and alerted, so a late event's fate
    depended on where the poll boundaries fell)."""
    records = [
        _record(0, "Error", T0),
        _record(1, "Error", T0 + 100, account="other"),
        _record(2, "Error", T0 + 10),  # 90 s behind the partition's newest event: late
        _record(3, "Error", T0 + 98),  # within the lateness: evaluated
        _record(4, "Ping", T0 + 200),
    ]
    processor = _real_processor(tmp_path, "rules:\n" + EVERY_ERROR)
    late_before = REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) or 0.0
    fired: list[tuple[str, str]] = []
    start = 0
    for size in [*split, len(records)]:
        batch = records[start : start + size]
        start += len(batch)
        if batch:
            fired += [(a.account_id, a.fired_at) for a in processor.process_batch(batch).alerts]
    assert sorted(fired) == [
        ("acme", format_ts(T0)),
        ("acme", format_ts(T0 + 98)),
        ("other", format_ts(T0 + 100)),
    ]
    assert REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) == late_before + 1


def test_a_risk_model_replaced_by_one_with_another_vocabulary_says_the_states_restart(tmp_path: Any) -> None:
    """A worker restarted after the model file was replaced by a retrained one whose vocabulary differs starts every
    account's risk features afresh (their layout differs): no alert before warmup, baselines short for weeks. It
    happened without a word; now it is counted per account and logged once per rule at WARNING."""
    from rules.engine import RuleEngine
    from rules.loader import load_rules
    from rules.risk.features import FeatureSpec, Term
    from streams.runtime.settings import Settings
    from streams.worker.clock import PartitionClocks
    from streams.worker.state_cache import StateCache
    from streams.worker.wakeups import WakeupIndex
    from tests.unit.rules.risk_support import model_doc, write_model

    (tmp_path / "models").mkdir()
    model = write_model(tmp_path / "models" / "churn.json")
    (tmp_path / "r.yaml").write_text(
        "rules:\n- {id: churn-risk, kind: risk, title: t, severity: high, priority: 1, model: models/churn.json,"
        " threshold: 0.9}\n"
    )

    def processor(table: dict[bytes, bytes]) -> RulesProcessor:
        engine = RuleEngine(load_rules(tmp_path / "r.yaml"))
        return RulesProcessor(
            engine,
            Settings(event_time_only=True, allowed_lateness_seconds=5.0, topic_partitions=1),
            StateCache(table, engine.new_state, engine.loads, engine.dumps),
            PartitionClocks(5.0, True, wall_clock=lambda: T0),
            WakeupIndex(),
            {}.get,
            ["churn-risk"],
            wall_clock=lambda: T0,
        )

    def restarted() -> float:
        return REGISTRY.get_sample_value("preempt_rule_states_restarted_total", {"rule": "churn-risk"}) or 0.0

    first = processor({})
    out = first.process_batch([_record(i, "Login", T0 + i, account=f"a{i % 2}") for i in range(4)])
    table = {account.encode(): raw for writes in out.state_writes.values() for account, raw in writes.items()}
    assert sorted(table) == [b"a0", b"a1"]
    before = restarted()

    same = processor(dict(table))  # the same model: the states are read back as they were
    with capture_logs() as logs:
        same.process_batch([_record(10, "Login", T0 + 10, account="a0")])
    assert restarted() == before
    assert not [e for e in logs if e["event"].startswith("rule state restarted")]

    doc = model_doc()
    doc["feature_spec"] = FeatureSpec((Term("Invoice Sent"),), ()).to_json()  # retrained on another product's terms
    doc["features"] = FeatureSpec((Term("Invoice Sent"),), ()).names
    size = len(doc["features"])
    doc |= {"mean": [0.0] * size, "scale": [1.0] * size, "coef": [0.0] * size}
    model.write_bytes(json.dumps(doc).encode())
    retrained = processor(dict(table))
    with capture_logs() as logs:
        retrained.process_batch([_record(20, "Login", T0 + 20, account="a0")])
        retrained.process_batch([_record(21, "Login", T0 + 21, account="a1")])
    assert restarted() == before + 2
    warned = [e for e in logs if e["event"].startswith("rule state restarted")]
    assert [(e["log_level"], e["rule"], e["accounts_so_far"]) for e in warned] == [("warning", "churn-risk", 1)]


def test_records_read_again_after_a_seek_back_are_duplicates_not_late_events_or_new_dead_letters(
    tmp_path: Any,
) -> None:
    """Faust seeks a partition back to its committed offset after a rebalance, also when this worker
    already evaluated a poll of it (one handled while the seek was awaited): the records come again.
    Their effect is in the account states already, so they are skipped and counted as duplicates --
    not judged late (an event-time replay's ids older than the dedup horizon behind the clock are
    forgotten: 296 such records were counted and logged as late events in a two-worker replay) and
    not dead-lettered a second time."""
    day = 86400.0
    t0 = T0 - 3 * day  # the processor's wall clock is T0 + 1000 s
    records = [
        _record(0, "Error", t0),
        Record(0, 1, b"acme", b"{nope", topic="preempt.events"),
        _record(2, "Error", t0 + 2 * day),
        _record(3, "Ping", t0 + 2 * day + 100, account="other"),
    ]
    processor = _real_processor(tmp_path, "rules:\n" + EVERY_ERROR)
    late = REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) or 0.0
    dups = REGISTRY.get_sample_value("preempt_events_total", {"outcome": "duplicate"}) or 0.0
    first = processor.process_batch(records)
    assert (first.accepted, len(first.dead_letters), len(first.alerts)) == (3, 1, 2)
    again = processor.process_batch(records)
    assert (again.accepted, again.dead_letters, again.alerts) == (0, [], [])
    assert (REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) or 0.0) == late
    assert REGISTRY.get_sample_value("preempt_events_total", {"outcome": "duplicate"}) == dups + 4
    # A record after them is evaluated as usual.
    later = processor.process_batch([*records[2:], _record(4, "Error", t0 + 2 * day + 100)])
    assert later.accepted == 1


def test_records_an_earlier_owner_handled_read_again_by_the_next_one_are_duplicates_not_late_events(
    tmp_path: Any,
) -> None:
    """A partition moved mid-replay (a rebalance, a worker SIGKILLed before its commit): the new owner
    restores the account states and the clock the earlier one wrote and reads from the group's committed
    offset, behind what the earlier owner handled (the progress table). Those records' effect is in the
    restored states; the ones whose ids are older than the dedup horizon behind the clock (forgotten)
    were judged late -- 1,026 of 12,716 in a two-worker replay whose backtest has none. They are
    duplicates; a record past the handled offset the clock has passed is still a late event."""
    day = 86400.0
    t0 = T0 - 4 * day  # the processor's wall clock is T0 + 1000 s
    records = [_record(i, "Error", t0 + i * 0.5 * day) for i in range(6)]  # 2.5 days, the horizon is 1 day
    table: dict[bytes, bytes] = {}
    earlier = _real_processor(tmp_path, "rules:\n" + EVERY_ERROR, table=table)
    out = earlier.process_batch(records)
    assert out.accepted == 6
    table.update({account.encode(): raw for account, raw in out.state_writes[0].items()})
    late = REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) or 0.0
    dups = REGISTRY.get_sample_value("preempt_events_total", {"outcome": "duplicate"}) or 0.0

    later = _real_processor(tmp_path, "rules:\n" + EVERY_ERROR, table=table)
    later.restore_clock(b"0", repr(out.clock_writes[0]).encode(), {0})
    later.read_again(0, 6)
    again = later.process_batch(records)
    assert (again.accepted, again.alerts) == (0, [])
    assert (REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) or 0.0) == late
    assert REGISTRY.get_sample_value("preempt_events_total", {"outcome": "duplicate"}) == dups + 6
    # Past the handled offset, an event the clock has passed is late as ever.
    later.process_batch([_record(6, "Error", t0)])
    assert REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) == late + 1


def test_records_this_worker_evaluated_before_a_rebalance_and_reads_again_are_duplicates_not_late(
    tmp_path: Any,
) -> None:
    """A partition this worker keeps through a rebalance is read again from the group's committed
    offset, behind what it evaluated (Faust did not commit at the revocation): the rebuild forgets the
    offsets it knew, and those records' forgotten ids were judged late. They are duplicates."""
    day = 86400.0
    t0 = T0 - 4 * day
    records = [_record(i, "Error", t0 + i * 0.5 * day) for i in range(6)]
    processor = _real_processor(tmp_path, "rules:\n" + EVERY_ERROR)
    assert processor.process_batch(records).accepted == 6
    late = REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) or 0.0
    processor.forget_offsets()  # the rebuild after the rebalance
    processor.reading_from({0: 0})  # read again from the group's committed offset
    again = processor.process_batch([*records, _record(6, "Error", t0 + 3 * day)])
    assert (again.accepted, len(again.alerts)) == (1, 1)  # only the new one, evaluated and alerted
    assert (REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) or 0.0) == late
    # Read past what was evaluated: judged as usual.
    processor.process_batch([_record(7, "Error", t0)])
    assert REGISTRY.get_sample_value("preempt_late_events_total", {"partition": "0"}) == late + 1


def test_a_risk_rule_that_sees_none_of_its_models_event_names_is_said_once(tmp_path: Any, monkeypatch: Any) -> None:
    """A worker whose risk model learned from other event names (another product's, or names renamed since) reads
    every per-event feature as absent and stays silent: after enough events with none of those names it says so
    once at WARNING; a stream that has the names, or has not yet seen enough events, gets no such line."""
    from rules.engine import RuleEngine
    from rules.loader import load_rules
    from streams.runtime.settings import Settings
    from streams.worker import processor as processor_module
    from streams.worker.clock import PartitionClocks
    from streams.worker.state_cache import StateCache
    from streams.worker.wakeups import WakeupIndex
    from tests.unit.rules.risk_support import write_model

    monkeypatch.setattr(processor_module, "MISSING_EVENTS_AFTER", 3)
    (tmp_path / "models").mkdir()
    write_model(tmp_path / "models" / "churn.json")  # learned from Login, Error and NPS
    (tmp_path / "r.yaml").write_text(
        "rules:\n- {id: churn-risk, kind: risk, title: t, severity: high, priority: 1, model: models/churn.json,"
        " threshold: 0.9}\n"
    )

    def processor() -> RulesProcessor:
        engine = RuleEngine(load_rules(tmp_path / "r.yaml"))
        return RulesProcessor(
            engine,
            Settings(event_time_only=True, allowed_lateness_seconds=5.0, topic_partitions=1),
            StateCache({}, engine.new_state, engine.loads, engine.dumps),
            PartitionClocks(5.0, True, wall_clock=lambda: T0),
            WakeupIndex(),
            {}.get,
            ["churn-risk"],
            wall_clock=lambda: T0,
        )

    def warned(batches: list[list[Record]]) -> list[tuple[str, str, int]]:
        worker = processor()
        with capture_logs() as logs:
            for batch in batches:
                worker.process_batch(batch)
        lines = [e for e in logs if e["event"] == "risk rule sees none of its model's event names"]
        return [(e["log_level"], e["rule"], e["events_so_far"]) for e in lines]

    # events are folded in once the watermark (newest - 5 s of lateness) passes them: the last one waits
    other = [_record(i, "Invoice Sent", T0 - 1000 + 100 * i, account=f"a{i % 2}") for i in range(1, 7)]
    assert warned([other[:3]]) == []  # two folded in: too few to tell
    assert warned([other[:4], other[4:]]) == [("warning", "churn-risk", 3)]  # at the first batch past 3, once
    assert warned([[_record(0, "Login", T0 - 1000), *other]]) == []


def test_accounts_due_at_once_are_spread_over_batches_and_ticks_with_the_same_alerts(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """Deadline work has a time budget per batch or tick: a risk rule makes every account due at each UTC
    midnight (~0.5 ms each), and advancing them all in one go held the event loop for a minute with 100,000
    accounts. Past the budget the rest stay due for the next batch or tick, which give the same alerts; how
    far behind it is shows in ``preempt_deadline_work_behind_seconds`` and in one INFO line."""
    from streams.worker import processor as processor_module

    rules = (
        "rules:\n- {id: quiet, kind: inactivity, title: t, severity: low, priority: 1, after: 10m,"
        " match: {event: Login}}\n"
    )
    records = [_record(i, "Login", T0 + i, account=f"a{i:02d}") for i in range(20)]
    wake = _record(20, "Ping", T0 + 900, account="zz")

    unbounded = _real_processor(tmp_path, rules)
    unbounded.process_batch(records)
    expected = sorted(a.alert_id for a in unbounded.process_batch([wake]).alerts)
    assert len(expected) == 20

    monkeypatch.setattr(processor_module, "DUE_WORK_SECONDS", 0.0)
    monkeypatch.setattr(processor_module, "DUE_WORK_MIN_SECONDS", 0.0)
    bounded = _real_processor(tmp_path, rules)
    bounded.process_batch(records)
    with capture_logs() as logs:
        first = bounded.process_batch([wake])
    assert len(first.alerts) == 1  # one due account a pass: the budget is spent at once
    behind = REGISTRY.get_sample_value("preempt_deadline_work_behind_seconds", {"partition": "0"})
    # the watermark (newest - lateness) against the oldest still due: a15, whose Login (stamped T0 + 15) the
    # first batch's watermark (T0 + 14) left buffered; a14 went first
    assert behind == pytest.approx((900 - 5) - 15)  # the wakeup is the float just past T0 + 15
    assert [e["log_level"] for e in logs if e["event"].startswith("deadline work spread")] == ["info"]
    fired = [a.alert_id for a in first.alerts]
    for _ in range(40):
        fired += [a.alert_id for a in bounded.tick([0], []).alerts]
    assert sorted(fired) == expected
    assert REGISTRY.get_sample_value("preempt_deadline_work_behind_seconds", {"partition": "0"}) == 0.0
