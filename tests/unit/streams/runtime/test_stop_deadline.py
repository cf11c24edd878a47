"""The stop deadline: a graceful stop still running after PREEMPT_STOP_TIMEOUT_SECONDS ends the process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from streams.runtime import stop_deadline
from streams.runtime.faust_compat import AppWithBeforeStop


class _Exit:
    """Records the exit status ``os._exit`` would have been given."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.called = threading.Event()

    def __call__(self, status: int) -> None:
        self.statuses.append(status)
        self.called.set()


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    yield
    for name in ("proc", "other", "stop-test"):
        stop_deadline.disarm(name)


def test_a_stop_past_its_deadline_is_logged_and_exits_with_status_1() -> None:
    exit_ = _Exit()
    with capture_logs() as logs:
        assert stop_deadline.arm("proc", 0.05, exit_process=exit_)
        assert exit_.called.wait(5)
    assert exit_.statuses == [1]
    (line,) = [entry for entry in logs if entry["event"] == "graceful stop did not finish; exiting without it"]
    assert line["log_level"] == "error"
    assert line["process"] == "proc"
    assert line["seconds"] == 0.05


def test_arming_twice_keeps_the_first_deadline_and_disarm_cancels_it() -> None:
    exit_ = _Exit()
    assert stop_deadline.arm("other", 0.3, exit_process=exit_)
    assert not stop_deadline.arm("other", 0.01, exit_process=exit_)
    stop_deadline.disarm("other")
    assert not exit_.called.wait(0.6)
    assert exit_.statuses == []


@pytest.mark.parametrize("seconds", [None, 30.0])
def test_the_app_arms_the_deadline_as_its_stop_begins_only_when_given_one(
    monkeypatch: pytest.MonkeyPatch, seconds: float | None
) -> None:
    armed: list[tuple[str, float]] = []
    monkeypatch.setattr(stop_deadline, "arm", lambda name, s: armed.append((name, s)) or True)
    app = AppWithBeforeStop("stop-test", broker="kafka://127.0.0.1:1", store="memory://")
    app.stop_deadline_seconds = seconds
    asyncio.run(app.on_stop())
    assert armed == ([] if seconds is None else [("stop-test", 30.0)])
