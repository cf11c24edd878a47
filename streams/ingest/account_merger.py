"""Group calls → ``preempt.accounts``: account patches merged into the current record, never wiping it.

Why a merger and not a write from the HTTP handler: an account record is a whole value on a
compacted topic, so updating some fields means read-modify-write, and with several ingest
replicas behind a load balancer two replicas could each read the old record and write their own
patch over it — one update lost. Instead, the handler only appends the patch to
``preempt.accounts.updates`` (keyed by account, so every patch of an account lands on one
partition, in order). Every ``preempt ingest`` process runs one ``AccountMerger`` in the consumer
group ``<prefix>-ingest-accounts``: Kafka gives each partition of the updates topic to exactly
one of them, so the patches of an account are applied by one merger at a time, in the order they
were accepted.

The merger keeps a view of ``preempt.accounts`` (every partition, followed continuously, so full
records written by other tools — ``preempt simulate``, a CRM sync — are merged onto too). Before
each batch of patches it waits until the view has read up to the end offsets of
``preempt.accounts`` as they are at that moment, so it sees its own previous writes and those of
the previous owner of the partition after a rebalance. Then, per patch in order, it merges the
patch into the record (``group_traits.merge_account``), writes the changed records (acks=all) and
only then commits the patches' offsets. A crash between the write and the commit re-applies the
same patches in the same order on top of the same state: the result is the same record.

Limits (docs/events.md): a full record that another writer produces while a patch of the same
account is being merged is last-writer-wins; a merger that lost its partitions but is still
writing (longer than the session timeout) can write once more, which converges to the same
record because it applies the same patches to the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from schemas.account import Account
from schemas.error_text import first_problem
from streams.ingest.group_traits import merge_account
from streams.ingest.sink import CONTENT_TYPE_HEADER
from streams.ingest.write_health import WRITE_ACCOUNT_MERGES, IngestWriteHealth
from streams.runtime.logs import get_logger
from streams.runtime.metrics import CONSUMER_LAG, INGEST_ACCOUNT_MERGES

log = get_logger(__name__)


async def _stop_following(task: asyncio.Task[None] | None, consumer: AIOKafkaConsumer | None) -> None:
    """Cancel the task that reads ``consumer`` (waiting for it to end), then disconnect the consumer."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if consumer is not None:
        await consumer.stop()


class AccountsView:
    """The latest record of every account on ``preempt.accounts``, read from the beginning and followed."""

    def __init__(
        self,
        bootstrap_servers: list[str],
        topic: str,
        security: Mapping[str, Any] | None = None,
        metadata_max_age_ms: int = 300_000,
    ) -> None:
        self.topic = topic
        # A topic deleted leaves the view with no partitions until a metadata refresh shows it again
        # (aiokafka's default: 5 minutes, the merger stuck all that time after the topic is back).
        self._metadata_max_age_ms = metadata_max_age_ms
        self.records: dict[bytes, bytes] = {}  # raw JSON, parsed when merged onto (a few hundred bytes each)
        self._bootstrap_servers = bootstrap_servers
        self._security: dict[str, Any] = dict(security or {})  # streams.runtime.kafka_clients.aiokafka_config
        self._consumer: AIOKafkaConsumer | None = None  # built in start(): aiokafka needs the running loop
        self._read_to: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and start following the topic."""
        self._consumer = AIOKafkaConsumer(
            self.topic,
            **self._security,
            bootstrap_servers=self._bootstrap_servers,
            client_id="preempt-ingest-accounts-view",
            group_id=None,  # no group: every partition, from the beginning
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=self._metadata_max_age_ms,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._follow(self._consumer), name="accounts-view")

    async def stop(self) -> None:
        """Stop following and disconnect."""
        await _stop_following(self._task, self._consumer)

    def get(self, key: bytes) -> dict[str, Any] | None:
        """The account's current record (None when there is none or it is not a JSON object)."""
        raw = self.records.get(key)
        if raw is None:
            return None
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def unreadable(self, key: bytes) -> bool:
        """Whether the account has a record that is not a JSON object (``get`` reads it as none)."""
        return key in self.records and self.get(key) is None

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batch.values():
                    for record in records:
                        self._apply(record)
                async with self._progress:
                    for tp in consumer.assignment():
                        self._read_to[tp] = await consumer.position(tp)
                    self._progress.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka trouble: keep following, merges wait (and say so)
                log.warning("accounts view could not read preempt.accounts; retrying", error=str(exc))
                await asyncio.sleep(1.0)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None:
            return
        if record.value is None:
            self.records.pop(record.key, None)  # a tombstone deletes the account
        else:
            self.records[record.key] = record.value

    async def catch_up(self, timeout_s: float) -> None:
        """Return once the view has read every record written to the topic before this call.

        Raises ``TimeoutError`` when that takes longer than ``timeout_s``.
        """
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("the accounts view is not started")
        async with asyncio.timeout(timeout_s):
            assigned: set[TopicPartition] = set()
            while not assigned:  # the no-group assignment happens right after start
                assigned = consumer.assignment()
                if not assigned:
                    await asyncio.sleep(0.05)
            ends = await consumer.end_offsets(list(assigned))
            async with self._progress:
                await self._progress.wait_for(lambda: all(self._read_to.get(tp, -1) >= end for tp, end in ends.items()))


class AccountMerger:
    """Folds the account patches of ``updates_topic`` into full records on ``accounts_topic``."""

    def __init__(
        self,
        bootstrap_servers: list[str],
        *,
        updates_topic: str,
        accounts_topic: str,
        group_id: str,
        catch_up_timeout_s: float = 30.0,
        retry_s: float = 2.0,
        security: Mapping[str, Any] | None = None,
        metadata_max_age_ms: int = 300_000,
    ) -> None:
        self.view = AccountsView(bootstrap_servers, accounts_topic, security, metadata_max_age_ms)
        self.accounts_topic = accounts_topic
        self.catch_up_timeout_s = catch_up_timeout_s
        self.retry_s = retry_s
        self.updates_topic = updates_topic
        self.group_id = group_id
        self._bootstrap_servers = bootstrap_servers
        self._security: dict[str, Any] = dict(security or {})  # streams.runtime.kafka_clients.aiokafka_config
        self._metadata_max_age_ms = metadata_max_age_ms
        self._consumer: AIOKafkaConsumer | None = None  # built in start(): aiokafka needs the running loop
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self.merged = 0  # patches applied since start (for logs and tests)
        # Set by the ingest app: every batch's outcome, so a merger that merges nothing any more (the
        # accounts topic deleted or unwritable, the view unable to read it) is on /readyz.
        self.health: IngestWriteHealth | None = None

    async def start(self) -> None:
        """Connect everything and start merging (called from the app's startup)."""
        await self.view.start()
        self._producer = AIOKafkaProducer(
            **self._security,
            bootstrap_servers=self._bootstrap_servers,
            client_id="preempt-ingest-accounts",
            acks="all",
            linger_ms=5,
            metadata_max_age_ms=self._metadata_max_age_ms,
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            self.updates_topic,
            **self._security,
            bootstrap_servers=self._bootstrap_servers,
            client_id="preempt-ingest-accounts-merger",
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=self._metadata_max_age_ms,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(self._consumer, self._producer), name="account-merger")

    async def stop(self) -> None:
        """Stop merging and disconnect (called from the app's cleanup)."""
        await _stop_following(self._task, self._consumer)
        if self._producer is not None:
            await self._producer.stop()
        await self.view.stop()

    async def _run(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while True:
            batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
            try:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                if batch:
                    await self.merge_batch(consumer, producer, batch)
                    if self.health is not None:
                        self.health.succeeded(self.accounts_topic)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka trouble: re-read the same patches later
                error = f"{type(exc).__name__}: {exc}"  # a TimeoutError's str() is empty
                if self.health is not None:
                    self.health.write_failed(WRITE_ACCOUNT_MERGES, self.accounts_topic, error)
                log.warning("account merge failed; retrying the same patches", error=error)
                for tp, records in batch.items():
                    with contextlib.suppress(Exception):  # a partition revoked meanwhile is re-read by its owner
                        consumer.seek(tp, records[0].offset)
                await asyncio.sleep(self.retry_s)
            await self._report_lag(consumer)

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        """``preempt_consumer_lag{app="<prefix>-ingest-accounts"}`` (its group): account updates not merged yet."""
        lag = 0
        try:
            for tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    lag += max(0, highwater - await consumer.position(tp))
        except Exception as exc:  # noqa: BLE001 - a partition revoked between the two calls; next round
            log.debug("account merger lag not measured", error=str(exc))
            return
        CONSUMER_LAG.labels(app=self.group_id, topic=self.updates_topic).set(lag)

    async def merge_batch(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    ) -> None:
        """Merge one fetched batch of patches, write the changed records, then commit the patches."""
        try:
            await self.view.catch_up(self.catch_up_timeout_s)
        except TimeoutError:
            within = f"{self.catch_up_timeout_s:g} s"
            raise TimeoutError(
                f"the accounts view did not read {self.accounts_topic} up to its end within {within}"
            ) from None
        changed: dict[bytes, dict[str, Any]] = {}
        for records in batch.values():
            for record in records:
                if record.key is None or record.value is None:
                    INGEST_ACCOUNT_MERGES.labels(outcome="invalid_patch").inc()
                    continue
                current = changed.get(record.key) or self.view.get(record.key)
                unreadable = current is None and self.view.unreadable(record.key)
                merged = self._merge(record.key, current, record.value, stored_unreadable=unreadable)
                if merged is not None and merged != current:
                    changed[record.key] = merged
        started = time.monotonic()
        futures = [
            await producer.send(self.accounts_topic, key=key, value=orjson.dumps(value), headers=[CONTENT_TYPE_HEADER])
            for key, value in changed.items()
        ]
        await asyncio.gather(*futures)
        # The next batch's catch_up reads these writes back before merging onto them.
        await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        self.merged += sum(len(r) for r in batch.values())
        if changed:
            log.info(
                "accounts updated from group calls", accounts=len(changed), seconds=round(time.monotonic() - started, 3)
            )

    def _merge(
        self, key: bytes, current: dict[str, Any] | None, raw_patch: bytes, *, stored_unreadable: bool = False
    ) -> dict[str, Any] | None:
        account_id = key.decode("utf-8", "replace")
        try:
            patch = orjson.loads(raw_patch)
            if not isinstance(patch, dict) or patch.get("account_id") != account_id:
                raise ValueError("the patch is not an object for this account")
            Account.model_validate(merge_account({"account_id": account_id}, patch))
        except (ValueError, ValidationError) as exc:
            INGEST_ACCOUNT_MERGES.labels(outcome="invalid_patch").inc()
            problem = first_problem(exc.errors(), "(the patch)") if isinstance(exc, ValidationError) else str(exc)
            log.error("account patch ignored", account_id=account_id, error=problem)
            return None
        if stored_unreadable:
            # Not JSON, or not an object: as invalid as an account failing validation, and as overwritten.
            return self._replaced(account_id, patch, "the stored record is not a JSON object")
        merged = merge_account(current, patch)
        try:
            Account.model_validate(merged)
        except ValidationError as exc:
            # The stored record is not a valid account (the worker ignores it too); the group call
            # is the product's current word on the account, so it replaces the record.
            return self._replaced(account_id, patch, first_problem(exc.errors(), "(the record)"))
        INGEST_ACCOUNT_MERGES.labels(outcome="merged" if merged != current else "unchanged").inc()
        return merged

    @staticmethod
    def _replaced(account_id: str, patch: dict[str, Any], error: str) -> dict[str, Any]:
        INGEST_ACCOUNT_MERGES.labels(outcome="replaced_invalid_record").inc()
        log.warning("invalid account record replaced by group traits", account_id=account_id, error=error)
        return merge_account({"account_id": account_id}, patch)
