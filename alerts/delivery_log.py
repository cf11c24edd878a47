"""The delivery log: which (alert, target) pairs were delivered, so nothing is ever sent twice.

The log lives in a changelog-backed Faust table keyed by ``account_id`` (raw bytes, exactly the key of
``preempt.alerts``), so its partitions are the alerts topic's partitions: the worker that owns an
account's alerts owns its delivery records, and a restarted or rebalanced worker recovers them from
the changelog before it consumes. Each table value is that account's records:
``{"<alert_id>|<target>": [ref, delivered_at]}``; records older than the retention are pruned on write.

The notifier records a delivery right after the channel accepted it and flushes the changelog
before acknowledging the alert record, so the alert's offset never moves past an unrecorded delivery;
it checks the log before every send.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

DeliveryTable = MutableMapping[bytes, Any]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One successful delivery: the channel's reference (Slack ``channel:ts``, email Message-ID) and when."""

    ref: str | None
    delivered_at: float


def record_key(alert_id: str, target: str) -> str:
    """The per-account key of one delivery: ``"<alert_id>|<target>"``."""
    return f"{alert_id}|{target}"


class DeliveryLog:
    """Read and write delivery records in ``table`` (a Faust table, or a dict in unit tests)."""

    def __init__(self, table: DeliveryTable, retention_seconds: float) -> None:
        self._table = table
        self.retention_seconds = retention_seconds

    def delivered(self, account_id: str, alert_id: str, target: str) -> DeliveryRecord | None:
        """The record of ``alert_id`` delivered to ``target``, or None when it was not (yet)."""
        records = self._table.get(account_id.encode())
        if not records:
            return None
        entry = records.get(record_key(alert_id, target))
        if entry is None:
            return None
        ref, at = entry
        return DeliveryRecord(ref=ref, delivered_at=float(at))

    def record(self, account_id: str, entries: list[tuple[str, str, str | None]], now: float) -> None:
        """Record deliveries ``(alert_id, target, ref)`` of one account in one table write."""
        key = account_id.encode()
        horizon = now - self.retention_seconds
        records = {k: v for k, v in (self._table.get(key) or {}).items() if float(v[1]) >= horizon}
        for alert_id, target, ref in entries:
            records[record_key(alert_id, target)] = [ref, now]
        self._table[key] = records
