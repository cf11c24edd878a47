"""``AccountDirectory``: account records from the accounts table, parsed once per record, bad ones logged
(rate-limited) and handed to the dead-letter sink (which counts them: test_account_letters.py)."""

from __future__ import annotations

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from streams.worker.enrich import AccountDirectory


def _invalid_records() -> float:
    return REGISTRY.get_sample_value("preempt_invalid_account_records_total") or 0.0


def test_a_valid_record_is_the_account_and_an_unknown_one_is_none() -> None:
    """A stored record becomes its ``Account`` (the same object while unchanged); an unknown id is None."""
    table = {b"acme": b'{"account_id": "acme", "name": "Acme", "tier": "enterprise"}'}
    directory = AccountDirectory(table)
    account = directory.lookup("acme")
    assert account is not None
    assert (account.name, account.tier) == ("Acme", "enterprise")
    assert directory.lookup("acme") is account
    assert directory.lookup("nobody") is None


def test_an_invalid_record_is_logged_once_until_it_changes() -> None:
    """An unreadable record yields None and one warning (counted when dead-lettered, not on use); a
    corrected record is used at once."""
    table = {b"acme": b'{"account_id": "acme", "mrr": -5}'}
    directory = AccountDirectory(table)
    before = _invalid_records()
    with capture_logs() as logs:
        assert directory.lookup("acme") is None
        assert directory.lookup("acme") is None
    assert [e["event"] for e in logs] == ["invalid account record; alerts go out without account context"]
    # the field and what is wrong, in one line (was pydantic's "1 validation error for Account")
    assert logs[0]["error"] == "mrr: must be at least 0, not -5"
    table[b"acme"] = b'{"account_id": "acme", "mrr": 5}'
    fixed = directory.lookup("acme")
    assert fixed is not None
    assert fixed.mrr == 5
    assert _invalid_records() == before


def test_a_record_with_a_huge_field_is_refused_so_alerts_stay_under_kafkas_record_limit() -> None:
    """A 600 KB account name makes the record invalid (logged), so alerts go out without it."""
    table = {b"acme": b'{"account_id": "acme", "name": "' + b"n" * 600_000 + b'"}'}
    with capture_logs() as logs:
        assert AccountDirectory(table).lookup("acme") is None
    assert len(logs) == 1


def test_a_record_under_another_accounts_key_is_refused_and_logged() -> None:
    """A record whose ``account_id`` is not its key (a sync keyed by name) does not enrich the key's
    account with another account's name and owner: None, one warning naming both."""
    table = {b"acme": b'{"account_id": "globex", "name": "Globex", "owner": {"name": "Gail"}}'}
    directory = AccountDirectory(table)
    with capture_logs() as logs:
        assert directory.lookup("acme") is None
        assert directory.lookup("acme") is None
    assert len(logs) == 1
    assert logs[0]["account_id"] == "acme"
    assert "'globex'" in logs[0]["error"]


class _Message:
    def __init__(self, key: bytes, value: bytes | None) -> None:
        self.key, self.value = key, value
        self.topic, self.partition, self.offset, self.headers = "preempt.accounts", 0, 7, []


def test_a_record_is_read_as_it_arrives_so_a_bad_one_is_dead_lettered_before_any_alert() -> None:
    """``observe`` (the table's apply hook) reads each record as it arrives: a bad one is logged and
    handed to the dead-letter sink once — before, only an alert of the account read it."""
    table: dict[bytes, bytes] = {}
    letters: list[tuple[bytes, str]] = []
    directory = AccountDirectory(table, lambda message, problem: letters.append((message.key, problem)))
    bad = b'{"account_id": "acme", "seats": -1}'
    with capture_logs() as logs:
        directory.observe(_Message(b"acme", bad))
        table[b"acme"] = bad
        assert directory.lookup("acme") is None  # already logged: not again
    assert len(logs) == 1
    assert letters == [(b"acme", "seats: must be at least 0, not -1")]
    good = b'{"account_id": "acme", "name": "Acme"}'
    directory.observe(_Message(b"acme", good))
    table[b"acme"] = good
    account = directory.lookup("acme")
    assert account is not None
    assert account.name == "Acme"
    directory.observe(_Message(b"acme", None))  # a tombstone
    del table[b"acme"]
    assert directory.lookup("acme") is None
    assert len(letters) == 1


def test_a_failing_dead_letter_sink_does_not_escape_observe() -> None:
    """Nothing about one account record may stop the worker: a sink that raises is logged."""

    def sink(message: object, problem: str) -> None:
        raise RuntimeError("producer gone")

    with capture_logs() as logs:
        AccountDirectory({}, sink).observe(_Message(b"acme", b"not json"))
    assert [e["event"] for e in logs][-1] == "account record could not be checked"


def test_a_flood_of_bad_records_is_logged_once_per_interval_with_the_count_held_back() -> None:
    """A producer sending only bad account records does not flood the log: the first WARN at once, the
    next ones held back and their count given by the next line (or by ``flush_log`` once the interval is
    over); each record still reaches the dead-letter sink."""
    now = [100.0]
    letters: list[bytes] = []
    directory = AccountDirectory({}, lambda message, problem: letters.append(message.key), 10.0, lambda: now[0])
    with capture_logs() as logs:
        for n in range(50):
            directory.observe(_Message(f"bad-{n}".encode(), b"not json"))
        directory.flush_log()  # within the interval: nothing yet
        now[0] += 10.0
        directory.observe(_Message(b"bad-50", b"not json"))
        for n in range(51, 54):
            directory.observe(_Message(f"bad-{n}".encode(), b"not json"))
        now[0] += 10.0
        directory.flush_log()
        directory.flush_log()  # nothing held: no line
    assert len(letters) == 54
    warned = [(e["event"], e.get("account_id"), e["more_invalid_since_last_warning"]) for e in logs]
    assert warned == [
        ("invalid account record; alerts go out without account context", "bad-0", 0),
        ("invalid account record; alerts go out without account context", "bad-50", 49),
        ("invalid account records since the last warning", None, 3),
    ]
