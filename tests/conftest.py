"""Shared fixtures: factories for events and accounts, usable by unit and integration tests."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from schemas.event import Event

_ids = itertools.count(1)
T0 = 1_795_420_800.0  # 2026-11-23T08:00:00Z


@pytest.fixture(autouse=True)
def _process_hooks_restored() -> Iterator[None]:
    """``configure_logging`` (called by many tests and by the CLI they run) installs process-wide hooks
    for uncaught thread exceptions and unraisable ones; pytest installs its own once per session, and a
    test that left ours in place would make every later test stop failing on such exceptions."""
    saved = (sys.excepthook, threading.excepthook, sys.unraisablehook)
    yield
    sys.excepthook, threading.excepthook, sys.unraisablehook = saved


@pytest.fixture
def make_event() -> Callable[..., Event]:
    """Factory: ``make_event(event="Login", ts=T0 + 60, account_id="acme", properties={...})``."""

    def factory(**overrides: Any) -> Event:
        fields: dict[str, Any] = {
            "event_id": f"e{next(_ids)}",
            "event": "Login",
            "account_id": "acme",
            "ts": T0,
            "user_id": None,
            "properties": {},
            "context": {},
        }
        fields.update(overrides)
        return Event(**fields)

    return factory
