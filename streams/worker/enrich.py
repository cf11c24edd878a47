"""Account context for alerts: ``preempt.accounts`` read as a Faust global table.

Every worker holds every account (a ``GlobalTable`` reads all partitions of the compacted topic
and keeps following it), so enrichment never crosses the network. Values are the raw JSON records;
each is checked as it arrives (so a record that cannot be read is logged at once — rate-limited — and
handed to the dead-letter sink, which counts and dead-letters each record once across restarts:
streams/worker/account_letters.py — whether or not its account ever alerts); a valid one is parsed
again and kept when its account first alerts, and re-parsed only when the record changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import faust
from pydantic import ValidationError

from schemas.account import Account
from schemas.error_text import first_problem
from streams.runtime.faust_compat import ExistingTopicGlobalTable
from streams.runtime.log_throttle import LogThrottle
from streams.runtime.logs import get_logger

log = get_logger(__name__)

_INVALID = "invalid"

InvalidRecordSink = Callable[[Any, str], None]
"""Called with the Faust ``Message`` of an account record that cannot be read and what is wrong with it."""


class AccountsTable(ExistingTopicGlobalTable):
    """The accounts global table: its changelog is the existing ``preempt.accounts`` topic.

    Faust's assignor finds a global table's changelog by its default name; the base class (in
    ``streams.runtime.faust_compat``) names the real topic so the group assignment does not fail.
    Each record is shown to the ``AccountDirectory`` (the base class's ``on_record``) as it is applied,
    at recovery and live.
    """


def accounts_table(
    app: faust.App, topic_name: str, partitions: int, options: dict[str, Any] | None = None
) -> AccountsTable:
    """The accounts global table of ``app``, reading ``topic_name`` (raw JSON values by account id); ``options``
    go to its store (streams/runtime/table_store.py)."""
    topic = app.topic(topic_name, partitions=partitions, key_serializer="raw", value_serializer="raw")
    kwargs: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    table = AccountsTable(
        app,
        name="accounts",
        beacon=app.tables.beacon,
        partitions=partitions,
        changelog_topic=topic,
        options=options,
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

    def __init__(
        self,
        table: Mapping[bytes, bytes],
        on_invalid: InvalidRecordSink | None = None,
        log_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._parsed: dict[str, tuple[bytes, Account | None]] = {}
        self._on_invalid = on_invalid
        # A producer sending nothing but bad account records must not flood the log: the first is
        # logged at once, the next at most once per interval with how many were held back (as the
        # worker's late events and refused records: streams/runtime/log_throttle.py).
        self._throttle = LogThrottle(log_interval)
        self._clock = clock

    def lookup(self, account_id: str) -> Account | None:
        """The account record for ``account_id``; None when unknown or invalid (logged once; counted when
        dead-lettered, streams/worker/account_letters.py)."""
        raw = self._table.get(account_id.encode())
        if raw is None:
            return None
        cached = self._parsed.get(account_id)
        if cached is not None and cached[0] == raw:
            return cached[1]
        return self._parse(account_id, raw)[0]

    def observe(self, message: Any) -> None:
        """Read one record of the accounts topic as it arrives: an unreadable one is logged and handed to
        ``on_invalid`` now (which counts and dead-letters it, once). Before, a record was only read when
        its account alerted, so a bad record of an account that had not alerted yet was neither counted
        nor logged. Never raises."""
        try:
            key, value = message.key, message.value
            if value is None:  # a tombstone: the account has no record any more
                if isinstance(key, bytes):
                    self._parsed.pop(key.decode("utf-8", "replace"), None)
                return
            if not isinstance(key, bytes) or not isinstance(value, bytes):
                return
            account_id = key.decode("utf-8", "replace")
            problem = self._parse(account_id, value)[1]
            if problem is None:
                # Valid records are kept parsed only once their account alerts (lookup), as before:
                # holding every account's parsed record would cost memory on large account books.
                self._parsed.pop(account_id, None)
            elif self._on_invalid is not None:
                self._on_invalid(message, problem)
        except Exception as exc:  # noqa: BLE001 - a record of the accounts topic never stops the worker
            log.error("account record could not be checked", error=f"{type(exc).__name__}: {exc}"[:500])

    def _parse(self, account_id: str, raw: bytes) -> tuple[Account | None, str | None]:
        """The account of ``raw`` (cached), or None and what is wrong (logged, rate-limited)."""
        account: Account | None
        problem: str | None = None
        try:
            account = Account.model_validate_json(raw)
        except ValidationError as exc:
            problem = first_problem(exc.errors(), "(the record)")  # the field and what is wrong, one line
            account = None
        else:
            if account.account_id != account_id:
                # The key is the account id (docs/events.md): a record naming another account
                # (a sync keyed by name or CRM id) would give this account's alerts another
                # account's name and owner — and a backtest reads it as the other account's.
                problem = f"the record under this key is for account_id {account.account_id!r} (key it by that)"
                account = None
        if problem is not None:
            self._warn(account_id, problem)
        self._parsed[account_id] = (raw, account)
        return account, problem

    def _warn(self, account_id: str, problem: str) -> None:
        """The WARN for one unreadable record, at most one per interval (the others counted into the next)."""
        now = self._clock()
        if not self._throttle.open(now):
            self._throttle.hold(_INVALID)
            return
        log.warning(
            "invalid account record; alerts go out without account context",
            account_id=account_id,
            error=problem,
            more_invalid_since_last_warning=self._throttle.take(now)[_INVALID],
        )

    def flush_log(self) -> None:
        """Once the interval has passed, log how many unreadable records were held back since the last
        line (when they stop, the last interval's count would otherwise never reach the log)."""
        now = self._clock()
        if self._throttle.ready(now):
            log.warning(
                "invalid account records since the last warning",
                more_invalid_since_last_warning=self._throttle.take(now)[_INVALID],
            )
