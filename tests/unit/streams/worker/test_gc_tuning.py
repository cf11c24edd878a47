"""The rules worker's garbage-collector settings: frozen once, young threshold raised, 0 turns it off."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from streams.worker import gc_tuning


class FakeGc:
    """The ``gc`` functions ``tune_gc`` calls, recording what was asked."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threshold: tuple[int, ...] = (700, 10, 10)

    def collect(self) -> int:
        self.calls.append("collect")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def get_threshold(self) -> tuple[int, ...]:
        return self.threshold

    def set_threshold(self, *threshold: int) -> None:
        self.calls.append("set_threshold")
        self.threshold = threshold

    def get_freeze_count(self) -> int:
        return 123


@pytest.fixture
def fake_gc(monkeypatch: pytest.MonkeyPatch) -> FakeGc:
    fake = FakeGc()
    monkeypatch.setattr(gc_tuning, "gc", fake)
    monkeypatch.setattr(gc_tuning, "_tuned", False)
    return fake


def test_collects_then_freezes_and_raises_the_young_threshold_once_per_process(fake_gc: FakeGc) -> None:
    """The first call collects, freezes and sets the young threshold (older ones kept); later calls do nothing."""
    assert gc_tuning.tune_gc(10_000) is True
    assert fake_gc.calls == ["collect", "freeze", "set_threshold"]
    assert fake_gc.threshold == (10_000, 10, 10)
    assert gc_tuning.tune_gc(50_000) is False
    assert fake_gc.calls == ["collect", "freeze", "set_threshold"]
    assert fake_gc.threshold == (10_000, 10, 10)


def test_a_zero_threshold_keeps_pythons_collector_as_it_is(fake_gc: FakeGc) -> None:
    """``PREEMPT_WORKER_GC_THRESHOLD=0``: no collection, no freeze, Python's thresholds."""
    assert gc_tuning.tune_gc(0) is False
    assert fake_gc.calls == []
    assert fake_gc.threshold == (700, 10, 10)


def test_the_runtime_tunes_the_collector_when_the_tables_are_recovered(monkeypatch: pytest.MonkeyPatch) -> None:
    """``WorkerRuntime.on_recovered`` applies ``worker_gc_threshold`` (the worker is built and connected then)."""
    from streams.runtime.settings import Settings
    from streams.worker import agents

    asked: list[int] = []

    def tune_gc(threshold: int) -> bool:
        asked.append(threshold)
        return True

    monkeypatch.setattr(agents, "tune_gc", tune_gc)
    app: Any = SimpleNamespace(consumer=SimpleNamespace(assignment=lambda: set()))
    runtime = agents.WorkerRuntime(app, Settings(worker_gc_threshold=4321), "events", None, None, {}, {})  # type: ignore[arg-type]
    runtime.on_recovered()
    assert asked == [4321]
    assert runtime.recovered
