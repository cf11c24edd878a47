"""NotifierRuntime.repair_skipped: alerts Faust acknowledged without handing them over are re-read and
delivered before the record that showed the jump; marker-only ranges are not skips; unreadable ones are lost,
counted and logged."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from structlog.testing import capture_logs

import alerts.runtime as runtime_module
from schemas.alert import Alert
from tests.unit.alerts.test_runtime import (
    ALERTS,
    FakeEvent,
    FakeRangeReader,
    FakeStream,
    Runtime,
    _sample,
    make_runtime,  # noqa: F401 - the fixture
)

SKIPPED = "preempt_notifier_skipped_alerts_total"


def _record(alert: Alert, partition: int, offset: int) -> Any:
    """An alert record as aiokafka's side consumer returns it."""
    return SimpleNamespace(
        partition=partition, offset=offset, key=alert.account_id.encode(), value=alert.model_dump_json().encode(),
        headers=(), topic=ALERTS,
    )  # fmt: skip


def _event(alert: Alert, partition: int, offset: int) -> FakeEvent:
    event = FakeEvent(alert.model_dump_json().encode(), partition=partition)
    event.message.offset = offset
    return event


@pytest.fixture
def faust_acks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """``(partition, offset)`` of each re-read record acked to Faust, in order."""
    acked: list[tuple[int, int]] = []

    def ack_offsets(app: Any, tp: TP, offsets: Any) -> int:
        assert tp.topic == ALERTS
        acked.extend((tp.partition, o) for o in offsets)
        return len(list(offsets))

    monkeypatch.setattr(runtime_module, "ack_offsets", ack_offsets)
    return acked


async def _deliver(runtime: Any) -> None:
    runtime.dispatcher.tick()
    await runtime.dispatcher.scheduler.drain()


async def test_an_alert_skipped_between_two_is_reread_and_delivered_first(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Offsets 10 then 12 of a partition: offset 11 is read again and its alert dispatched before 12's; its ack
    goes to Faust before 12's (a commit never passes it while it waits), counted and logged once."""
    skipped = make_alert(account_id="skipped")
    reader = FakeRangeReader([_record(skipped, 3, 11)])
    runtime, _, notifier, _ = make_runtime(reader=reader)
    before = _sample(SKIPPED, outcome="repaired")
    first, after = _event(make_alert(), 3, 10), _event(make_alert(), 3, 12)
    order: list[str] = []
    first.ack = lambda: order.append("10")  # type: ignore[method-assign]
    after.ack = lambda: order.append("12")  # type: ignore[method-assign]
    monkeypatch.setattr(runtime_module, "ack_offsets", lambda app, tp, offsets: order.extend(f"{o}" for o in offsets))
    dispatched = _record_dispatches(runtime, monkeypatch)
    with capture_logs() as logs:
        await runtime.consume_alerts(FakeStream([first, after]))
    assert order == []  # nothing delivered yet: nothing acked
    await _deliver(runtime)
    assert dispatched == [_alert_id(first), skipped.alert_id, _alert_id(after)]
    assert sorted(a.alert_id for n in notifier.sent for a in n.alerts) == sorted(dispatched)
    assert reader.reads == [(3, 11, 12)]
    assert order == ["10", "11", "12"]
    assert _sample(SKIPPED, outcome="repaired") - before == 1
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [(e["event"], e["first_missing"], e["next_seen"], e["recovered"]) for e in errors] == [
        ("records skipped before reaching the notifier; re-read them from Kafka", 11, 12, 1)
    ]
    assert runtime.read_offsets == {3: 13}


def _alert_id(event: FakeEvent) -> str:
    return Alert.model_validate_json(event.value).alert_id


async def test_a_reread_alert_already_delivered_is_not_delivered_again(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
) -> None:
    """The alert re-read goes through the delivery log like any record: one delivered already is refused."""
    alert = make_alert()
    reader = FakeRangeReader([_record(alert, 1, 6)])
    runtime, _, notifier, _ = make_runtime(reader=reader)
    await runtime.consume_alerts(FakeStream([_event(alert, 1, 5)]))
    await _deliver(runtime)
    await runtime.consume_alerts(FakeStream([_event(make_alert(), 1, 7)]))
    await _deliver(runtime)
    assert [a.alert_id for n in notifier.sent for a in n.alerts] == [alert.alert_id]
    assert faust_acks == [(1, 6)]  # settled at once: the delivery log holds it


async def test_a_range_of_transaction_markers_is_no_skip(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
) -> None:
    """A jump over offsets that hold no record is read once, remembered as recordless (not lag), not counted;
    a later jump over the same offsets (the partition read again) is not read again."""
    reader = FakeRangeReader()
    runtime, *_ = make_runtime(reader=reader)
    before = (_sample(SKIPPED, outcome="repaired"), _sample(SKIPPED, outcome="lost"))
    with capture_logs() as logs:
        await runtime.consume_alerts(FakeStream([_event(make_alert(), 2, 20), _event(make_alert(), 2, 23)]))
        await runtime.consume_alerts(FakeStream([_event(make_alert(), 2, 20)]))  # read again after a seek
        runtime.read_offsets[2] = 21
        await runtime.consume_alerts(FakeStream([_event(make_alert(), 2, 23)]))
    assert reader.reads == [(2, 21, 23)]
    assert runtime.recordless.count(2, 20, 24) == 2
    assert (_sample(SKIPPED, outcome="repaired"), _sample(SKIPPED, outcome="lost")) == before
    assert faust_acks == []
    assert [e for e in logs if e["log_level"] == "error"] == []


async def test_offsets_that_cannot_be_reread_are_counted_and_logged_as_lost(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
) -> None:
    """A range the side reader cannot read to its end (retention deleted its start): the records still there
    are delivered, the rest counted as lost and logged with the range."""
    kept = make_alert(account_id="kept")
    reader = FakeRangeReader([_record(kept, 0, 44)], complete=False)
    runtime, _, notifier, _ = make_runtime(reader=reader)
    before = (_sample(SKIPPED, outcome="repaired"), _sample(SKIPPED, outcome="lost"))
    with capture_logs() as logs:
        await runtime.consume_alerts(FakeStream([_event(make_alert(), 0, 40), _event(make_alert(), 0, 45)]))
    await _deliver(runtime)
    assert kept.alert_id in [a.alert_id for n in notifier.sent for a in n.alerts]
    after = (_sample(SKIPPED, outcome="repaired"), _sample(SKIPPED, outcome="lost"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 3)
    lost = [e for e in logs if e["event"].endswith(": lost")]
    assert [(e["log_level"], e["partition"], e["first_missing"], e["next_seen"], e["lost"]) for e in lost] == [
        ("error", 0, 41, 45, 3)
    ]


async def test_a_loss_is_one_log_line_and_counted(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
) -> None:
    """Alerts retention deleted before the re-read: one log line for the loss (it names the range, what was
    recovered and what is lost), still counted; before, the re-read's own ERROR made it two (three with the
    side reader's retention line, which the notifier's reader no longer logs)."""
    reader = FakeRangeReader([_record(make_alert(account_id="kept"), 3, 12)], complete=False)
    runtime, *_ = make_runtime(reader=reader)
    lost_before = _sample(SKIPPED, outcome="lost")
    with capture_logs() as logs:
        await runtime.consume_alerts(FakeStream([_event(make_alert(), 3, 9), _event(make_alert(), 3, 14)]))
    await _deliver(runtime)
    assert _sample(SKIPPED, outcome="lost") - lost_before == 3
    loud = [e for e in logs if e["log_level"] in ("warning", "error", "critical")]
    assert [(e["event"], e["first_missing"], e["next_seen"], e["recovered"], e["lost"]) for e in loud] == [
        ("alerts skipped before reaching the notifier could not be re-read (retention?): lost", 10, 14, 1, 3)
    ]


async def test_the_first_record_after_an_assignment_is_checked_against_the_committed_offset(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After an assignment the first record's offset is compared with the group's committed offset (asked of
    the coordinator): the alerts between are re-read and delivered; a partition with nothing committed is not
    checked."""
    skipped = make_alert(account_id="head")
    reader = FakeRangeReader([_record(skipped, 4, 30)])
    runtime, _, notifier, _ = make_runtime(reader=reader)
    asked: list[list[TP]] = []

    async def group_committed_offsets(app: Any, tps: Any, timeout_s: float) -> dict[TP, int | None]:
        asked.append(list(tps))
        return {tp: 30 if tp == TP(ALERTS, 4) else None for tp in tps}

    monkeypatch.setattr(runtime_module, "group_committed_offsets", group_committed_offsets)
    monkeypatch.setattr(runtime_module, "committed_offsets", lambda consumer: {TP(ALERTS, 5): 3})  # not asked
    runtime.on_partitions_revoked(set())
    runtime.on_partitions_assigned({TP(ALERTS, 4), TP(ALERTS, 5)})
    runtime.on_recovered()
    await runtime.consume_alerts(FakeStream([_event(make_alert(), 4, 31), _event(make_alert(), 5, 9)]))
    await _deliver(runtime)
    assert reader.reads == [(4, 30, 31)]
    assert skipped.alert_id in [a.alert_id for n in notifier.sent for a in n.alerts]
    assert faust_acks == [(4, 30)]
    assert asked == [[TP(ALERTS, 4), TP(ALERTS, 5)]]  # once for the assignment: later records follow the previous


async def test_the_committed_offsets_of_an_assignment_are_asked_once_for_all_its_partitions(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twelve partitions assigned: the first record of the first one asks the coordinator for all twelve in one
    request, the others' first records reuse the answer (before: one request per partition, in turn, each up
    to the timeout while the coordinator is slow); the next assignment asks again, once; a coordinator that
    does not answer is not asked again for the rest of the assignment (Faust's copy is read instead)."""
    reader = FakeRangeReader([])
    runtime, *_ = make_runtime(reader=reader)
    asked: list[list[int]] = []
    answer: list[bool] = [True]

    async def group_committed_offsets(app: Any, tps: Any, timeout_s: float) -> dict[TP, int | None] | None:
        asked.append([tp.partition for tp in tps])
        return dict.fromkeys(tps, 10) if answer[0] else None

    monkeypatch.setattr(runtime_module, "group_committed_offsets", group_committed_offsets)
    monkeypatch.setattr(runtime_module, "committed_offsets", lambda consumer: {})
    runtime.on_partitions_revoked(set())
    runtime.on_partitions_assigned({TP(ALERTS, p) for p in range(12)})
    await runtime.consume_alerts(FakeStream([_event(make_alert(), p, 10) for p in (7, *range(12))]))
    assert asked == [[*range(12)]]
    assert reader.reads == []

    answer[0] = False
    runtime.on_partitions_revoked(set())
    runtime.on_partitions_assigned({TP(ALERTS, p) for p in range(6)})
    await runtime.consume_alerts(FakeStream([_event(make_alert(), p, 11) for p in range(6)]))
    assert asked == [[*range(12)], [*range(6)]]


async def test_fausts_committed_offset_is_used_when_the_coordinator_does_not_answer(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The coordinator not answering in time: the first record after an assignment is checked against
    Faust's own copy of the committed offset."""
    reader = FakeRangeReader([_record(make_alert(account_id="head"), 4, 30)])
    runtime, *_ = make_runtime(reader=reader)

    async def no_answer(app: Any, tps: Any, timeout_s: float) -> None:
        return None

    monkeypatch.setattr(runtime_module, "group_committed_offsets", no_answer)
    monkeypatch.setattr(runtime_module, "committed_offsets", lambda consumer: {TP(ALERTS, 4): 30})
    await runtime.consume_alerts(FakeStream([_event(make_alert(), 4, 31), _event(make_alert(), 4, 32)]))
    assert reader.reads == [(4, 30, 31)]
    assert faust_acks == []  # not settled yet: nothing delivered


async def test_a_rebalance_during_the_reread_drops_what_was_read(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
) -> None:
    """A rebalance while the range is read: the partition is read again from its committed offset, so what the
    side reader returned is not handled (nor counted)."""
    runtime, app, _, _ = make_runtime()

    class Rebalancing(FakeRangeReader):
        async def read_range(self, partition: int, start: int, end: int, *, first_only: bool = False) -> Any:
            app.consumer_generation_id += 1
            return [_record(make_alert(), partition, start)], True

    runtime.skipped_reader = Rebalancing()
    before = _sample(SKIPPED, outcome="repaired")
    await runtime.consume_alerts(FakeStream([_event(make_alert(), 6, 1), _event(make_alert(), 6, 3)]))
    assert _sample(SKIPPED, outcome="repaired") == before
    assert faust_acks == []


async def test_a_rebalance_while_the_committed_offset_is_asked_drops_what_was_read(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebalance while the group coordinator is asked for the committed offset (the first record after an
    assignment; the coordinator answers late during a rebalance): the partition may be another notifier's now,
    so the alerts re-read are not handled (nor acked, nor counted), as for a rebalance during the read."""
    reader = FakeRangeReader([_record(make_alert(account_id="head"), 4, 30)])
    runtime, app, notifier, _ = make_runtime(reader=reader)

    async def rebalancing(app_: Any, tps: Any, timeout_s: float) -> dict[TP, int | None]:
        app.consumer_generation_id += 1  # the next generation began while the coordinator was asked
        return dict.fromkeys(tps, 30)

    monkeypatch.setattr(runtime_module, "group_committed_offsets", rebalancing)
    before = _sample(SKIPPED, outcome="repaired")
    runtime.on_partitions_revoked(set())
    await runtime.repair_skipped(4, 31)
    await _deliver(runtime)
    assert _sample(SKIPPED, outcome="repaired") == before
    assert notifier.sent == []
    assert faust_acks == []
    assert runtime.acks.held() == 0


def _record_dispatches(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The alert ids the dispatcher is handed, in order."""
    dispatched: list[str] = []
    on_alert = runtime.dispatcher.on_alert

    def record_dispatch(alert: Alert, *args: Any, **kwargs: Any) -> None:
        dispatched.append(alert.alert_id)
        on_alert(alert, *args, **kwargs)

    monkeypatch.setattr(runtime.dispatcher, "on_alert", record_dispatch)
    return dispatched


async def test_a_rebalance_while_a_reread_alert_is_handled_drops_the_rest(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebalance while one re-read record is handled (its dead letter being written): the partition may be
    another notifier's now, so the records re-read after it are not handled (nor acked, nor counted), and the
    partition's read offset is not written back over the revocation's reset."""
    runtime, app, notifier, _ = make_runtime()
    invalid = SimpleNamespace(partition=6, offset=2, key=b"acct", value=b"not an alert", headers=(), topic=ALERTS)
    late = make_alert(account_id="late")
    runtime.skipped_reader = FakeRangeReader([invalid, _record(late, 6, 3)])

    async def rebalanced_meanwhile(*args: Any) -> None:
        app.consumer_generation_id += 1
        runtime.on_partitions_revoked(set())

    monkeypatch.setattr(runtime, "dead_letter_invalid", rebalanced_meanwhile)
    await runtime.consume_alerts(FakeStream([_event(make_alert(), 6, 1)]))
    dispatched = _record_dispatches(runtime, monkeypatch)
    before = _sample(SKIPPED, outcome="repaired")
    await runtime.repair_skipped(6, 4)
    await _deliver(runtime)
    assert _sample(SKIPPED, outcome="repaired") - before == 1  # the invalid one, handled before the rebalance
    assert dispatched == []
    assert late.alert_id not in [a.alert_id for n in notifier.sent for a in n.alerts]
    assert (6, 3) not in faust_acks
    assert runtime.read_offsets == {}


async def test_a_range_the_side_reader_cannot_read_is_counted_lost_and_the_notifier_goes_on(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    make_alert: Callable[..., Alert],
    faust_acks: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The side reader failing (its consumer cannot start: the broker away for a moment): the skipped range is
    counted lost and logged with its range, and the record that showed the jump is handled. It does not stop
    the notifier: Faust already committed past the skipped offsets, so the restart would never see them again
    (lost without being named or counted)."""
    runtime, *_ = make_runtime()

    class Unreachable(FakeRangeReader):
        async def read_range(self, partition: int, start: int, end: int, *, first_only: bool = False) -> Any:
            raise TimeoutError()

    runtime.skipped_reader = Unreachable()
    dispatched = _record_dispatches(runtime, monkeypatch)
    after = _event(make_alert(), 0, 45)
    before = _sample(SKIPPED, outcome="lost")
    with capture_logs() as logs:
        await runtime.consume_alerts(FakeStream([_event(make_alert(), 0, 40), after]))
    await _deliver(runtime)
    assert _sample(SKIPPED, outcome="lost") - before == 4
    assert dispatched[-1] == _alert_id(after)
    lost = [e for e in logs if e["event"].endswith(": lost")]
    assert [(e["log_level"], e["partition"], e["first_missing"], e["next_seen"], e["lost"]) for e in lost] == [
        ("error", 0, 41, 45, 4)
    ]
