"""The start-up permission check (streams/runtime/kafka_permissions.py) on a group that already has
members: a second replica, as in every rolling update."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from alerts.app import app_id as notify_app_id
from streams.runtime.kafka_permissions import check_permissions
from streams.runtime.settings import Settings
from tests.integration.conftest import ManagedProcess
from tests.integration.deploy_tools import REPO
from tests.integration.notifier_harness import notifier_settings, start_notifier


def test_checking_a_group_with_a_faust_member_logs_no_warning(
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While a notifier runs, the next one's check of the group logs nothing: kafka-python's admin cannot decode
    a Faust member's metadata and wrote a WARNING with the whole group (members, hosts, assignments) at every
    start of a second replica — noise on every rollout."""
    settings = notifier_settings(settings_factory, REPO / "deploy" / "routes.demo.yaml")
    start_notifier(process_factory, settings)
    with caplog.at_level(logging.DEBUG, logger="kafka"):
        check_permissions(settings, group_id=notify_app_id(settings))
    warnings = [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
    assert any(r.name.startswith("kafka.") for r in caplog.records)  # the capture saw the admin client's lines
