"""Account context for alerts: ``preempt.accounts`` read as a Faust global table.

Every worker holds every account (a ``GlobalTable`` reads all partitions of the compacted topic
and keeps following it), so enrichment never crosses the network. Values are the raw JSON records;
they are parsed on first use and re-parsed only when the record changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from pydantic import ValidationError

from schemas.account import Account
from schemas.error_text import first_problem
from streams.runtime.faust_compat import ExistingTopicGlobalTable
from streams.runtime.logs import get_logger
from streams.runtime.metrics import INVALID_ACCOUNT_RECORDS

log = get_logger(__name__)


class AccountsTable(ExistingTopicGlobalTable):
    """The accounts global table: its changelog is the existing ``preempt.accounts`` topic.

    Faust's assignor finds a global table's changelog by its default name; the base class (in
    ``streams.runtime.faust_compat``) names the real topic so the group assignment does not fail.
    """


def accounts_table(app: faust.App, topic_name: str, partitions: int) -> AccountsTable:
    """The accounts global table of ``app``, reading ``topic_name`` (raw JSON values by account id)."""
    topic = app.topic(topic_name, partitions=partitions, key_serializer="raw", value_serializer="raw")
    kwargs: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    table = AccountsTable(
        app,
        name="accounts",
        beacon=app.tables.beacon,
        partitions=partitions,
        changelog_topic=topic,
        # Apply account updates as they come. A global table's partitions are all "active"; Faust
        # keeps reading active changelog partitions after recovery only when recovery_buffer_size
        # is 1, and buffers their records by it (not by standby_buffer_size). Do NOT set
        # synchronize_all_active_partitions: with it, a whole fetch of events (5,000 records) was
        # skipped and acked in our tests — silently lost.
        standby_buffer_size=1,
        recovery_buffer_size=1,
        is_global=True,
        help="preempt.accounts: account context for alerts",
        **kwargs,
    )
    app.tables.add(table)
    return table


class AccountDirectory:
    """``lookup(account_id)`` → the latest ``Account`` from the accounts table, or None."""

    def __init__(self, table: Mapping[bytes, bytes]) -> None:
        self._table = table
        self._parsed: dict[str, tuple[bytes, Account | None]] = {}

    def lookup(self, account_id: str) -> Account | None:
        """The account record for ``account_id``; None when unknown or invalid (logged and counted once)."""
        raw = self._table.get(account_id.encode())
        if raw is None:
            return None
        cached = self._parsed.get(account_id)
        if cached is not None and cached[0] == raw:
            return cached[1]
        account: Account | None
        try:
            account = Account.model_validate_json(raw)
        except ValidationError as exc:
            log.warning(
                "invalid account record; alerts go out without account context",
                account_id=account_id,
                error=first_problem(exc.errors(), "(the record)"),  # the field and what is wrong, one line
            )
            INVALID_ACCOUNT_RECORDS.inc()
            account = None
        else:
            if account.account_id != account_id:
                # The key is the account id (docs/events.md): a record naming another account
                # (a sync keyed by name or CRM id) would give this account's alerts another
                # account's name and owner — and a backtest reads it as the other account's.
                log.warning(
                    "invalid account record; alerts go out without account context",
                    account_id=account_id,
                    error=f"the record under this key is for account_id {account.account_id!r} (key it by that)",
                )
                INVALID_ACCOUNT_RECORDS.inc()
                account = None
        self._parsed[account_id] = (raw, account)
        return account
