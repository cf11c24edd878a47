"""Shared fixtures: factories for events and accounts, usable by unit and integration tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from schemas.event import Event

_ids = itertools.count(1)
T0 = 1_795_420_800.0  # 2026-11-23T08:00:00Z


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
