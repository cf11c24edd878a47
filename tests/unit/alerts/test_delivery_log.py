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


def test_each_recipient_of_a_target_is_recorded_apart_from_the_target() -> None:
    """The ledger records the recipients a message reached, per alert and account: found for them only, listed
    for the dead letter, and no record of the target itself (it is delivered once every recipient is)."""
    from alerts.delivery_log import TargetLedger
    from alerts.testing.factories import build_alert

    table: dict[bytes, Any] = {}
    log = DeliveryLog(table, retention_seconds=3600.0)
    ledger = TargetLedger(log, "csm/email", lambda: 100.0)
    acme = build_alert(alert_id="a1")
    globex = build_alert(alert_id="g1", account_id="globex")
    ledger.record((acme, globex), ["ops@example.com", "jane@example.com"], "<m1@preempt>")

    assert ledger.reached(acme, "ops@example.com")
    assert ledger.reached(globex, "jane@example.com")
    assert not ledger.reached(acme, "boris@example.com")
    assert not TargetLedger(log, "csm/email#2", lambda: 100.0).reached(acme, "ops@example.com")
    assert log.recipients("acme", "a1", "csm/email") == ["jane@example.com", "ops@example.com"]
    assert log.recipients("acme", "a1", "csm/email#2") == []
    assert log.delivered("acme", "a1", "csm/email") is None
