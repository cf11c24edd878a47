"""Fixtures for the alerts unit tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from alerts.testing.factories import build_alert
from schemas.alert import Alert


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    """Factory: ``make_alert(severity="critical", labels={"team": "billing"})``."""
    return build_alert
