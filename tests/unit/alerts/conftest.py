"""Fixtures for the alerts unit tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas.alert import Alert
from tests.unit.alerts.factories import build_alert


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    """Factory: ``make_alert(severity="critical", labels={"team": "billing"})``."""
    return build_alert
