"""The delivery log records (alert, target) deliveries per account and prunes old ones."""

from __future__ import annotations

from typing import Any

from alerts.delivery_log import DeliveryLog


def test_recorded_delivery_is_found_and_others_are_not() -> None:
    """A recorded (alert, target) is found with its ref; another target or alert is not."""
    table: dict[bytes, Any] = {}
    log = DeliveryLog(table, retention_seconds=3600.0)
    log.record("acme", [("a1", "csm/slack", "C1:1.000001")], now=100.0)

    record = log.delivered("acme", "a1", "csm/slack")
    assert record is not None
    assert (record.ref, record.delivered_at) == ("C1:1.000001", 100.0)
    assert log.delivered("acme", "a1", "csm/email") is None
    assert log.delivered("acme", "a2", "csm/slack") is None
    assert log.delivered("globex", "a1", "csm/slack") is None


def test_records_are_keyed_by_raw_account_id() -> None:
    """The table key is the account id bytes, the alerts topic's key, so the two are co-partitioned."""
    table: dict[bytes, Any] = {}
    DeliveryLog(table, retention_seconds=3600.0).record("acme", [("a1", "csm/slack", None)], now=1.0)

    assert list(table) == [b"acme"]
    assert list(table[b"acme"]) == ["a1|csm/slack"]


def test_records_older_than_retention_are_pruned_on_write() -> None:
    """Writing a new record drops the account's records older than the retention."""
    table: dict[bytes, Any] = {}
    log = DeliveryLog(table, retention_seconds=60.0)
    log.record("acme", [("old", "csm/slack", None)], now=0.0)
    log.record("acme", [("new", "csm/slack", None)], now=100.0)

    assert log.delivered("acme", "old", "csm/slack") is None
    assert log.delivered("acme", "new", "csm/slack") is not None
