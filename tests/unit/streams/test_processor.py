"""The worker core: batches of raw records → dead letters, outcomes, alerts and coalesced state writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY

from schemas.account import Account
from schemas.event import format_ts
from streams.processor import Record, RulesProcessor
from tests.unit.streams.fake_engine import QUIET_AFTER

T0 = 1_795_420_800.0
Factory = Callable[..., tuple[RulesProcessor, dict[bytes, bytes]]]


def _record(offset: int, name: str, ts: float, account: str = "acme", partition: int = 0, **extra: Any) -> Record:
    body = {"event_id": f"e{offset}", "event": name, "account_id": account, "timestamp": format_ts(ts), **extra}
    return Record(partition, offset, account.encode(), json.dumps(body).encode(), topic="preempt.events")


def test_bad_records_become_dead_letters_with_reason_and_the_batch_carries_on(make_processor: Factory) -> None:
    """Undecodable records are dead-lettered with their reason; the good ones are still accepted."""
    processor, _ = make_processor()
    bad = Record(0, 1, b"acme", b"{nope", topic="preempt.events")
    out = processor.process_batch([_record(0, "Login", T0), bad, _record(2, "Login", T0 + 1)])
    assert [(d.reason, d.record.offset) for d in out.dead_letters] == [("invalid_json", 1)]
    assert out.accepted == 2


def test_state_is_written_once_per_touched_account_per_batch(make_processor: Factory) -> None:
    """Fifty events of two accounts produce two state writes and one clock write."""
    processor, _ = make_processor()
    batch = [_record(i, "Login", T0 + i, account=f"a{i % 2}") for i in range(50)]
    out = processor.process_batch(batch)
    assert {p: sorted(w) for p, w in out.state_writes.items()} == {0: ["a0", "a1"]}
    assert out.clock_writes == {0: T0 + 49}
    assert out.changelog_records == 3


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


def test_tick_fires_an_inactivity_deadline_from_the_wall_clock(make_processor: Factory) -> None:
    """In live mode a timer tick past the deadline alerts with no further events."""
    processor, _ = make_processor(event_time_only=False, wall=T0)
    processor.process_batch([_record(0, "Login", T0)])
    processor.clocks._wall_clock = lambda: T0 + QUIET_AFTER + 10  # the timer runs later
    out = processor.tick([0])
    assert [a.rule_id for a in out.alerts] == ["quiet"]
    assert list(out.state_writes[0]) == ["acme"]


def test_rebuild_wakeups_restores_pending_deadlines_from_table_bytes(make_processor: Factory) -> None:
    """After recovery the wakeup index is rebuilt from the table so deadlines still fire."""
    processor, table = make_processor()
    out = processor.process_batch([_record(0, "Login", T0)])
    table.update({k.encode(): v for k, v in out.state_writes[0].items()})
    fresh, _ = make_processor()
    fresh.cache._store = table
    assert fresh.rebuild_wakeups((k.decode(), 0, v) for k, v in table.items()) == 1
    fresh.clocks.restore(0, T0 + QUIET_AFTER + 10)
    assert [a.rule_id for a in fresh.tick([0]).alerts] == ["quiet"]


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
