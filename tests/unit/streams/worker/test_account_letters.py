"""``AccountDeadLetters``: each unreadable account record dead-lettered once, across restarts and rebalances."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from streams.runtime.dead_letters import SOURCE_OFFSET, SOURCE_PARTITION, DeadLetterRecord
from streams.worker.account_letters import AccountDeadLetters, mark_key


class _Message:
    def __init__(self, partition: int, offset: int, key: bytes = b"acme") -> None:
        self.key, self.value, self.headers = key, b"not json", []
        self.topic, self.partition, self.offset = "preempt.accounts", partition, offset


class _Letters(AccountDeadLetters):
    """Records what it would send instead of sending it, and which partition each mark was written on."""

    def __init__(self, marks: dict[bytes, bytes], cap: int = 1000) -> None:
        self.sent: list[tuple[int, int]] = []
        self.scopes: list[int] = []
        super().__init__(None, marks, self._scope_of, pending_per_partition=cap)

    @contextlib.contextmanager
    def _scope_of(self, partition: int) -> Iterator[None]:
        self.scopes.append(partition)
        yield

    def _emit(self, letter: DeadLetterRecord) -> None:
        headers = dict(letter.headers)
        self.sent.append((int(headers[SOURCE_PARTITION]), int(headers[SOURCE_OFFSET])))


def _counted() -> float:
    return REGISTRY.get_sample_value("preempt_invalid_account_records_total") or 0.0


def _failed(reason: str) -> float:
    return REGISTRY.get_sample_value("preempt_invalid_account_letters_failed_total", {"reason": reason}) or 0.0


def _read_topic(letters: AccountDeadLetters, records: list[tuple[int, int]], mine: list[int]) -> None:
    """A worker start on the ``memory://`` store: the whole topic read at recovery, then the rebuild."""
    for partition, offset in records:
        letters(_Message(partition, offset), "(the record): not JSON")
    letters.resume(mine)


def test_a_restart_that_reads_the_topic_again_dead_letters_only_records_not_dead_lettered_before() -> None:
    """The marks (the progress table, recovered with the partition) survive the restart: the records read
    again are not dead-lettered a second time, one written while the worker was down is, once."""
    marks: dict[bytes, bytes] = {}
    before = _counted()
    first = _Letters(marks)
    _read_topic(first, [(0, 3), (1, 5), (0, 9)], [0, 1])
    assert first.sent == [(0, 3), (0, 9), (1, 5)]
    assert marks == {mark_key(0): b"10", mark_key(1): b"6"}
    assert set(first.scopes) == {0, 1}  # each mark on its own partition's changelog
    first(_Message(1, 7), "bad")  # live
    assert first.sent[-1] == (1, 7)

    again = _Letters(marks)  # the same table, recovered
    _read_topic(again, [(0, 3), (1, 5), (0, 9), (1, 7), (0, 12)], [0, 1])
    assert again.sent == [(0, 12)]
    assert _counted() == before + 5  # each record counted once, as it is dead-lettered


def test_only_the_owner_of_the_partition_dead_letters_and_a_rebalance_gap_is_covered() -> None:
    """A record of a partition the worker does not own waits; when the partition comes to it, the record is
    dead-lettered if its former owner had not (a record read during a rebalance, when no one owned it)."""
    marks: dict[bytes, bytes] = {}
    a, b = _Letters(marks), _Letters(marks)
    a.resume([0])
    b.resume([1])
    a(_Message(0, 1), "bad")
    b(_Message(0, 1), "bad")
    assert (a.sent, b.sent) == ([(0, 1)], [])
    a.hold()
    b.hold()  # a rebalance: partition 0 moves to b
    a(_Message(0, 2), "bad")
    b(_Message(0, 2), "bad")
    assert (a.sent, b.sent) == ([(0, 1)], [])
    a.resume([1])
    b.resume([0])
    assert (a.sent, b.sent) == ([(0, 1)], [(0, 2)])  # the earlier record waited too, below the mark: not again


def test_records_that_overflow_the_waiting_room_beyond_the_mark_are_named() -> None:
    """More bad records than a worker keeps while it owns no partition: those it drops are said in an ERROR
    when they were never dead-lettered (past the mark), and the newest are dead-lettered."""
    letters = _Letters({}, cap=2)
    before = _failed("buffer_full")
    with capture_logs() as logs:
        _read_topic(letters, [(0, 1), (0, 2), (0, 3)], [0])
    assert letters.sent == [(0, 2), (0, 3)]
    assert _failed("buffer_full") == before + 1  # counted, not only logged
    assert [(e["event"], e["dropped"]) for e in logs] == [
        (
            "invalid account records not dead-lettered: more arrived while no worker held their partition "
            "than a worker keeps",
            1,
        )
    ]


def test_an_unreadable_mark_is_logged_and_read_as_none() -> None:
    """A mark that is not a number is an ERROR and counts as no mark: the records are dead-lettered (again)."""
    letters = _Letters({mark_key(0): b"??"})
    with capture_logs() as logs:
        _read_topic(letters, [(0, 4)], [0])
    assert letters.sent == [(0, 4)]
    assert [e["event"] for e in logs] == ["unreadable account dead-letter mark ignored"]


def test_a_dead_letter_the_topic_refuses_is_counted_and_logged() -> None:
    """The dead-letter write fails (the mark is already past the record): an ERROR and
    ``preempt_invalid_account_letters_failed_total{reason="write_failed"}``, not a silent loss."""

    class _Refusing:  # the dead-letter topic as ``faust_compat.publish`` uses it
        def as_future_message(self, **_kwargs: object) -> object:
            return object()

        async def publish_message(self, _message: object) -> None:
            raise RuntimeError("topic authorization failed")

    async def scenario() -> None:
        letters = AccountDeadLetters(_Refusing(), {}, lambda _p: contextlib.nullcontext())
        letters.resume([0])
        letters(_Message(0, 4), "(the record): not JSON")
        await asyncio.gather(*letters._sending)

    before = _failed("write_failed")
    with capture_logs() as logs:
        asyncio.run(scenario())
    assert _failed("write_failed") == before + 1
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "invalid account record could not be dead-lettered"
    ]
