"""Recalling the inhibit_rules sources of the last horizon after a restart or a rebalance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from structlog.testing import capture_logs

from alerts.inhibit_recall import recall_sources
from alerts.replay import replay_header
from schemas.alert import Alert
from streams.runtime.metrics import INHIBIT_RECALLS
from tests.unit.alerts import test_dispatch
from tests.unit.alerts.test_dispatch import _run_until_idle

setup = test_dispatch.setup  # the dispatcher fixture
RULES = [{"source_matchers": ['kind="composite"'], "target_matchers": ['kind!="composite"'], "equal": ["account_id"]}]
HORIZON = 3600.0


@dataclass
class Record:
    """What aiokafka gives: value, timestamp (ms), headers."""

    value: bytes | None
    timestamp: int
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class Topic:
    """A fake preempt.alerts: records per partition, offsets from 0; a read can fail or come back short."""

    partitions: dict[int, list[Record]]
    failing: set[int] = field(default_factory=set)
    short: set[int] = field(default_factory=set)
    asked: list[tuple[int, int]] = field(default_factory=list)

    async def offsets_since(self, partition: int, since_ms: int) -> tuple[int, int]:
        self.asked.append((partition, since_ms))
        if partition in self.failing:
            raise TimeoutError
        records = self.partitions.get(partition, [])
        first = next((i for i, r in enumerate(records) if r.timestamp >= since_ms), len(records))
        return first, len(records)

    async def read_range(
        self, partition: int, start: int, end: int, *, first_only: bool = False
    ) -> tuple[Sequence[Any], bool]:
        got = self.partitions[partition][start:end]
        return (got[:-1], False) if partition in self.short else (got, True)


def _record(alert: Alert, at: float, headers: Sequence[tuple[str, bytes]] = ()) -> Record:
    return Record(alert.model_dump_json().encode(), int(at * 1000), headers)


async def test_a_source_read_back_inhibits_a_target_after_a_restart(setup, make_alert) -> None:
    """The composite alert received ten minutes before the restart mutes its account's component alert after
    it; without the recall the new process sent it (it had forgotten the source)."""
    dispatcher, notifier, clock, _table, _ = setup(inhibit_rules=RULES)
    composite = make_alert(kind="composite", severity="critical")
    topic = Topic({0: [_record(composite, clock.now - 600)]})

    assert await recall_sources(topic, {0}, dispatcher, HORIZON, now=clock.now) == 1
    assert topic.asked == [(0, int((clock.now - HORIZON) * 1000))]
    component = make_alert(kind="threshold")
    other = make_alert(kind="threshold", account_id="globex")
    for alert in (component, other):
        dispatcher.on_alert(alert, lambda: None)
    await _run_until_idle(dispatcher, clock)
    assert [[a.alert_id for a in n.alerts] for n in notifier.sent] == [[other.alert_id]]


async def test_a_recalled_source_stays_active_only_for_the_rest_of_its_horizon(setup, make_alert) -> None:
    """Emitted 50 minutes ago, a source counts for ten more minutes (as if received then), not an hour more."""
    dispatcher, notifier, clock, _table, _ = setup(inhibit_rules=RULES)
    composite = make_alert(kind="composite", severity="critical")
    await recall_sources(Topic({0: [_record(composite, clock.now - 3000)]}), {0}, dispatcher, HORIZON, now=clock.now)
    clock.now += 601
    target = make_alert(kind="threshold")
    dispatcher.on_alert(target, lambda: None)
    await _run_until_idle(dispatcher, clock)
    assert [[a.alert_id for a in n.alerts] for n in notifier.sent] == [[target.alert_id]]


async def test_only_sources_of_the_horizon_are_taken_once_and_never_replays(setup, make_alert) -> None:
    """Targets, records that are no alerts, replays and sources already held are left out; the count says so."""
    dispatcher, _notifier, clock, _table, _ = setup(inhibit_rules=RULES)
    held = make_alert(kind="composite", severity="critical", account_id="held")
    dispatcher.on_alert(held, lambda: None)
    replayed = make_alert(kind="composite", severity="critical", account_id="replayed")
    new = make_alert(kind="composite", severity="critical", account_id="new")
    records = [
        _record(make_alert(kind="threshold"), clock.now - 60),
        Record(b"not an alert", int((clock.now - 60) * 1000)),
        _record(replayed, clock.now - 60, [replay_header(["csm:console"])]),
        _record(held, clock.now - 30),
        _record(new, clock.now - 10),
    ]
    assert await recall_sources(Topic({3: records}), {3}, dispatcher, HORIZON, now=clock.now) == 1
    assert dispatcher.inhibitor.inhibited_by(make_alert(kind="threshold", account_id="new"), [new]) is not None
    assert dispatcher.remember_sources([(clock.now, new), (clock.now - HORIZON, make_alert(kind="composite"))]) == 0


async def test_no_inhibit_rules_reads_nothing(setup, make_alert) -> None:
    """A routing file without inhibit_rules costs no read at all."""
    dispatcher, _notifier, clock, _table, _ = setup()
    topic = Topic({0: [_record(make_alert(kind="composite"), clock.now)]})
    assert await recall_sources(topic, {0}, dispatcher, HORIZON, now=clock.now) == 0
    assert topic.asked == []


async def test_a_partition_not_read_whole_is_counted_and_logged_and_the_others_are_recalled(setup, make_alert) -> None:
    """A failed read (partition 1) and a short one (partition 2) are `incomplete`, each a WARNING; what was read
    is still taken, and partition 0's source is recalled."""
    dispatcher, _notifier, clock, _table, _ = setup(inhibit_rules=RULES)
    sources = [make_alert(kind="composite", account_id=f"a{i}") for i in range(4)]
    topic = Topic(
        {0: [_record(sources[0], clock.now)], 2: [_record(s, clock.now) for s in sources[1:]]}, failing={1}, short={2}
    )
    before = {o: INHIBIT_RECALLS.labels(outcome=o)._value.get() for o in ("complete", "incomplete")}
    with capture_logs() as logs:
        assert await recall_sources(topic, {0, 1, 2}, dispatcher, HORIZON, now=clock.now) == 3
    after = {o: INHIBIT_RECALLS.labels(outcome=o)._value.get() for o in ("complete", "incomplete")}
    assert (after["complete"] - before["complete"], after["incomplete"] - before["incomplete"]) == (1, 2)
    warnings = [(r["partition"], r["reason"], r["read"]) for r in logs if r["log_level"] == "warning"]
    assert warnings == [(1, "TimeoutError: ", 0), (2, "not read whole in time", 2)]


async def test_partitions_past_the_budget_are_not_read(setup, make_alert) -> None:
    """Deliveries wait for the recall at most the budget: past it, partitions are counted, not read."""
    dispatcher, _notifier, clock, _table, _ = setup(inhibit_rules=RULES)
    topic = Topic({0: [_record(make_alert(kind="composite"), clock.now)]})
    with capture_logs() as logs:
        assert await recall_sources(topic, {0}, dispatcher, HORIZON, now=clock.now, budget_seconds=0.0) == 0
    assert topic.asked == []
    assert [r["reason"] for r in logs if r["log_level"] == "warning"] == ["out of time (0 s for every partition)"]
