"""The account merger's core: a batch of patches → merged records written, then the offsets committed."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from streams.ingest.account_merger import AccountMerger

TP = TopicPartition("t.accounts.updates", 0)


class FakeConsumer:
    """Records what was committed."""

    def __init__(self) -> None:
        self.committed: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(offsets)


class FakeProducer:
    """Keeps what was sent; every send is acknowledged at once."""

    def __init__(self, log: list[str]) -> None:
        self.sent: list[tuple[str, bytes, dict[str, Any]]] = []
        self.log = log

    async def send(self, topic: str, *, key: bytes, value: bytes, headers: Any) -> asyncio.Future[None]:
        self.sent.append((topic, key, orjson.loads(value)))
        self.log.append("send")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def record(offset: int, key: bytes | None, value: Any) -> ConsumerRecord[bytes, bytes]:
    raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    return ConsumerRecord(TP.topic, TP.partition, offset, 0, 0, key, raw, None, 0, 0, [])


def merger_with(existing: dict[bytes, bytes]) -> tuple[AccountMerger, list[str]]:
    merger = AccountMerger(["127.0.0.1:1"], updates_topic=TP.topic, accounts_topic="t.accounts", group_id="g")
    merger.view.records.update(existing)
    order: list[str] = []

    async def caught_up(timeout_s: float) -> None:
        order.append("catch_up")

    merger.view.catch_up = caught_up  # type: ignore[method-assign]
    return merger, order


def merges(outcome: str) -> float:
    return REGISTRY.get_sample_value("preempt_ingest_account_merges_total", {"outcome": outcome}) or 0.0


async def test_patches_merge_in_order_onto_the_current_record_then_commit() -> None:
    """Catch up first; patches of one account merge in order into one written record; commit last."""
    merger, order = merger_with({b"acme": orjson.dumps({"account_id": "acme", "name": "Acme", "tier": "smb"})})
    consumer, producer = FakeConsumer(), FakeProducer(order)
    batch = {
        TP: [
            record(7, b"acme", {"account_id": "acme", "plan": "free"}),
            record(8, b"acme", {"account_id": "acme", "plan": "pro", "owner": {"email": "cs@v.test"}}),
            record(9, b"new-co", {"account_id": "new-co", "name": "New Co"}),
        ]
    }
    await merger.merge_batch(consumer, producer, batch)  # type: ignore[arg-type]
    assert order == ["catch_up", "send", "send"]
    assert producer.sent == [
        (
            "t.accounts",
            b"acme",
            {"account_id": "acme", "name": "Acme", "tier": "smb", "plan": "pro", "owner": {"email": "cs@v.test"}},
        ),
        ("t.accounts", b"new-co", {"account_id": "new-co", "name": "New Co"}),
    ]
    assert consumer.committed == [{TP: 10}]


async def test_a_patch_that_changes_nothing_writes_nothing() -> None:
    """A group call repeating what the record says is counted as unchanged and not written again."""
    merger, order = merger_with({b"acme": orjson.dumps({"account_id": "acme", "plan": "pro"})})
    consumer, producer = FakeConsumer(), FakeProducer(order)
    before = merges("unchanged")
    await merger.merge_batch(consumer, producer, {TP: [record(0, b"acme", {"account_id": "acme", "plan": "pro"})]})  # type: ignore[arg-type]
    assert producer.sent == []
    assert merges("unchanged") == before + 1
    assert consumer.committed == [{TP: 1}]


async def test_bad_patches_are_skipped_and_counted_and_invalid_records_replaced() -> None:
    """Undecodable or foreign patches are counted and skipped; a stored record that is not an account is replaced."""
    merger, order = merger_with({b"broken": orjson.dumps({"account_id": "broken", "mrr": -1, "junk": True})})
    consumer, producer = FakeConsumer(), FakeProducer(order)
    invalid, replaced = merges("invalid_patch"), merges("replaced_invalid_record")
    batch = {
        TP: [
            record(0, b"acme", b"{not json"),
            record(1, b"acme", {"account_id": "other", "plan": "pro"}),
            record(2, None, {"account_id": "acme"}),
            record(3, b"acme", {"account_id": "acme", "mrr": -5}),
            record(4, b"broken", {"account_id": "broken", "plan": "pro"}),
        ]
    }
    with capture_logs() as logs:
        await merger.merge_batch(consumer, producer, batch)  # type: ignore[arg-type]
    assert producer.sent == [("t.accounts", b"broken", {"account_id": "broken", "plan": "pro"})]
    assert merges("invalid_patch") == invalid + 4
    assert merges("replaced_invalid_record") == replaced + 1
    # the field and what is wrong (was pydantic's "1 validation error for Account", naming neither)
    errors = {(e["event"], e["account_id"]): e["error"] for e in logs if "error" in e}
    assert errors[("account patch ignored", "acme")] == "mrr: must be at least 0, not -5"
    assert errors[("invalid account record replaced by group traits", "broken")].startswith("mrr: "), errors
    assert consumer.committed == [{TP: 5}]


async def test_a_stored_record_that_is_not_a_json_object_is_counted_and_logged_as_replaced() -> None:
    """A record on the accounts topic that is not JSON, or JSON but not an object (another tool's bytes, a
    partial write), was read as "no record": the group call's traits replaced it counted as an ordinary
    `merged`, with no log line — the operator could not tell that whatever stood there (a CRM sync's name,
    owner, MRR) was overwritten. It is counted `replaced_invalid_record` and logged, like an invalid account."""
    merger, order = merger_with({b"garbage": b"\xff not json", b"array": b"[1, 2]"})
    consumer, producer = FakeConsumer(), FakeProducer(order)
    replaced, merged = merges("replaced_invalid_record"), merges("merged")
    batch = {
        TP: [
            record(0, b"garbage", {"account_id": "garbage", "plan": "pro"}),
            record(1, b"array", {"account_id": "array", "plan": "pro"}),
            record(2, b"fresh", {"account_id": "fresh", "plan": "pro"}),
        ]
    }
    with capture_logs() as logs:
        await merger.merge_batch(consumer, producer, batch)  # type: ignore[arg-type]
    assert [key for _, key, _ in producer.sent] == [b"garbage", b"array", b"fresh"]
    assert merges("replaced_invalid_record") == replaced + 2
    assert merges("merged") == merged + 1  # only the account that had no record at all
    warned = [e["account_id"] for e in logs if e["event"] == "invalid account record replaced by group traits"]
    assert warned == ["garbage", "array"]
