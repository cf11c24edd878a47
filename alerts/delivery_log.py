"""The delivery log: which (alert, target) pairs were delivered, so nothing is ever sent twice.

The log lives in a changelog-backed Faust table keyed by ``account_id`` (raw bytes, exactly the key of
``preempt.alerts``), so its partitions are the alerts topic's partitions: the worker that owns an
account's alerts owns its delivery records, and a restarted or rebalanced worker recovers them from
the changelog before it consumes. Each table value is that account's records:
``{"<alert_id>|<target>": [ref, delivered_at]}``; records older than the retention are pruned on write.

An email target that did not reach all its recipients at once also records each recipient it reached, under
``"<alert_id>|<target>>"<address>"`` (``TargetLedger``, written by the email channel; an email every recipient took
is recorded as delivered to the target only, keeping the account's value small): a message that reached some
recipients and failed for others until the give-up window is dead-lettered ``gave_up``, and its replay (or a
retry after a restart) goes only to the recipients not recorded.

The notifier records a delivery right after the channel accepted it and flushes the changelog
before acknowledging the alert record, so the alert's offset never moves past an unrecorded delivery;
it checks the log before every send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from schemas.alert import Alert

DeliveryTable = MutableMapping[bytes, Any]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One successful delivery: the channel's reference (Slack ``channel:ts``, email Message-ID) and when."""

    ref: str | None
    delivered_at: float


def record_key(alert_id: str, target: str) -> str:
    """The per-account key of one delivery: ``"<alert_id>|<target>"``."""
    return f"{alert_id}|{target}"


def recipient_target(target: str, address: str) -> str:
    """The record target of one recipient of ``target``: ``"<target>><address>"``."""
    return f"{target}>{address}"


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

    def recipients(self, account_id: str, alert_id: str, target: str) -> list[str]:
        """The recipients of ``target`` recorded as having ``alert_id`` (sorted)."""
        prefix = record_key(alert_id, recipient_target(target, ""))
        records = self._table.get(account_id.encode()) or {}
        return sorted(key[len(prefix) :] for key in records if key.startswith(prefix))


class TargetLedger:
    """The recipients of one delivery target, in the delivery log (``alerts.channels.base.RecipientLedger``)."""

    def __init__(self, log: DeliveryLog, target: str, clock: Callable[[], float]) -> None:
        self._log = log
        self._target = target
        self._clock = clock

    def reached(self, alert: Alert, address: str) -> bool:
        """True when ``address`` is recorded as having ``alert`` at this target."""
        found = self._log.delivered(alert.account_id, alert.alert_id, recipient_target(self._target, address))
        return found is not None

    def record(self, alerts: tuple[Alert, ...], addresses: Iterable[str], ref: str | None) -> None:
        """Record that ``addresses`` took the message ``ref`` holding ``alerts`` (one table write per account)."""
        reached = list(addresses)
        by_account: dict[str, list[tuple[str, str, str | None]]] = {}
        for alert in alerts:
            by_account.setdefault(alert.account_id, []).extend(
                (alert.alert_id, recipient_target(self._target, address), ref) for address in reached
            )
        now = self._clock()
        for account_id, entries in by_account.items():
            if entries:
                self._log.record(account_id, entries, now)
