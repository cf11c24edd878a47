"""Every reach into faust-streaming's, mode's and aiokafka's private API, in one module.

Preempt depends on a few behaviours of faust-streaming, mode and aiokafka that have no public API.
Each use lives here, with the upstream behaviour it works around, and
``tests/unit/streams/runtime/test_faust_compat.py`` holds one test per assumption that fails when
an upgrade changes it. Nothing else in the project may touch a private name of faust, mode or
aiokafka: the same test file scans ``streams``, ``alerts`` and ``bench`` and fails on any private
attribute, private import or upstream subclass outside this module.

The versions the assumptions were verified on are in :data:`TESTED_VERSIONS`;
:func:`require_tested_versions` refuses to start a worker or notifier on any other version (set
``PREEMPT_ALLOW_UNTESTED_FAUST=true`` to run anyway after the compat tests pass on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import Any, cast

import aiohttp.web
import faust
import faust.web
from faust.sensors.prometheus import FaustMetrics
from faust.streams import _current_event  # private: see current_event_scope
from faust.types import StreamT
from faust.types.tuples import Message

from schemas.errors import PreemptError

# Distribution name -> versions on which every assumption below was verified by the compat tests.
TESTED_VERSIONS: dict[str, tuple[str, ...]] = {
    "faust-streaming": ("0.15.3",),
    "mode-streaming": ("0.7.1",),
    # aiokafka's fetcher and connection internals are read here too.
    "aiokafka": ("0.14.0",),
}


class UntestedFaustError(PreemptError):
    """The installed faust-streaming or mode is not a version Preempt's workarounds were tested on."""


def untested_versions() -> list[str]:
    """``"<dist> <installed> (tested: <versions>)"`` for each dependency off the tested list."""
    problems: list[str] = []
    for dist, tested in TESTED_VERSIONS.items():
        try:
            installed = metadata.version(dist)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed not in tested:
            problems.append(f"{dist} {installed} (tested: {', '.join(tested)})")
    return problems


def require_tested_versions(allow_untested: bool = False) -> None:
    """Raise :class:`UntestedFaustError` (one line: what, and what to do) on an untested version.

    Called by ``preempt worker`` and ``preempt notifier`` before the app is built.
    """
    problems = untested_versions()
    if problems and not allow_untested:
        raise UntestedFaustError(
            "untested "
            + "; ".join(problems)
            + ": install the versions pinned in constraints.txt, or run tests/unit/streams/runtime/test_faust_compat.py"
            " on this version and set PREEMPT_ALLOW_UNTESTED_FAUST=true"
        )


# --- 1. Table writes outside per-event stream iteration -----------------------------------------
#
# Upstream behaviour: a table write picks its changelog partition (``Table.partition_for_key``) and,
# for RocksDB, the local partition database (``rocksdb.Store._set``) from the *current event*,
# ``faust.streams.current_event()``, a context variable holding a weakref that only the stream
# iterator sets. A ``take_events`` batch or a timer has none (faust-streaming #497, "Cannot modify
# table key from outside of stream iteration"), and ``use_partitioner=True`` does not change
# RocksDB's choice. We set the private context variable ``faust.streams._current_event`` to a
# placeholder event of the wanted partition for the duration of the writes.


def placeholder_event(app: faust.App, topic: str, partition: int) -> faust.Event:
    """An event that only carries ``(topic, partition)``, for :func:`current_event_scope`."""
    message = Message(topic, partition, -1, time.time(), 0, {}, None, None, None)
    return faust.Event(app, None, None, {}, message)


@contextmanager
def current_event_scope(event: faust.Event) -> Iterator[None]:
    """Within the block, ``faust.streams.current_event()`` is ``event`` (the caller keeps it alive)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


# --- 2. Flow-control resume empties the agent's buffer --------------------------------------------
#
# Upstream behaviour (mode 0.7 ``FlowControlEvent.resume`` -> ``clear()``): resuming flow control
# clears every queue registered with ``clear_on_resume=True`` -- every Faust channel queue, the
# agents' buffers included. faust-streaming 0.15's ``Recovery.on_recovery_completed`` resumes
# flow a second time *after* awaiting a seek, while the fetcher already delivers records, so the
# records waiting in an agent's queue at that moment were dropped without ever being processed
# (docs/pipeline.md, Known issues). Faust's revocation (``App._on_partitions_revoked``) clears the
# same queues explicitly with ``flow_control.clear()``, and that clear is needed: records left there
# would be skipped by the stream iterator -- and acked, which lets Faust commit past them. So only
# the clear *on resume* goes: the app's ``FlowControlEvent.resume`` is replaced on the instance by
# one that does what mode's does except ``clear()`` (its private ``_suspend``/``_resume`` events).


def resume_flow_without_clearing(app: faust.App) -> None:
    """Make ``app.flow_control.resume()`` leave the agents' queues as they are (revocation's
    ``flow_control.clear()`` still empties them)."""
    flow: Any = app.flow_control

    def resume() -> None:
        flow._suspend.clear()
        flow._resume.set()

    flow.resume = resume


# --- 3. A global table whose changelog is an existing topic ---------------------------------------
#
# Upstream behaviour: the partition assignor
# (``faust.assignor.partition_assignor._global_table_standby_assignments``) looks a global table's
# changelog up by ``table._changelog_topic_name()``, the *default* name
# ``<app-id>-<table>-changelog``, not by the ``changelog_topic`` the table was given; with another
# topic it fails the whole group assignment with a KeyError and the worker hangs at "performing
# partition assignments". Overriding the private method keeps the two in agreement.


#
# Also: Faust applies a table's changelog records — at recovery and, for a global table read with
# ``recovery_buffer_size=1``, live — only through ``Collection.apply_changelog_batch(batch)``, each event
# carrying its ``message``; there is no per-record hook. ``on_record`` is one, for a caller that must see
# every record as it arrives (the worker checks each account record then: streams/worker/enrich.py).


class ExistingTopicGlobalTable(faust.GlobalTable):  # type: ignore[misc]
    """A ``GlobalTable`` whose ``changelog_topic`` is an existing topic, named so for the assignor;
    ``on_record`` (when set) is called with each changelog record's message before it is applied."""

    on_record: Callable[[Any], None] | None = None

    def _changelog_topic_name(self) -> str:
        return str(self.changelog_topic.get_topic_name())

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        events = list(batch)
        on_record = self.on_record
        if on_record is not None:
            for event in events:
                on_record(event.message)
        super().apply_changelog_batch(events)


def assigned_active_partitions(app: faust.App, topic: str) -> set[int]:
    """The partitions of ``topic`` actively assigned to this member by Faust's assignor (its public
    ``assigned_actives()``; standby partitions left out)."""
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


# --- 4. The offsets Faust committed --------------------------------------------------------------
#
# Upstream behaviour: Faust's ``Consumer`` keeps the offset it last committed per partition (the
# next offset to read) in the private mapping ``_committed_offset`` (updated by ``_commit_offsets``
# and ``perform_seek``, dropped on revocation); there is no public accessor, and asking the broker
# every few seconds would double the lag exporter's and the watchdog's cost.


class ClusterPartitionCounts:
    """Partition counts from the consumer client's cluster metadata, which every group member keeps.

    Upstream behaviour: Faust's ``Consumer.topic_partitions`` reads aiokafka's group coordinator
    ``_metadata_snapshot``, which only the group *leader* maintains (``_group_subscription``): on every
    other member it answers None for every topic — a deleted events topic or an added partition
    looked the same as no metadata. Read-only; None when the consumer is not started or the topic
    is not in the metadata.
    """

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def topic_partitions(self, topic: str) -> int | None:
        """Partitions of ``topic`` known to the consumer's client (None: unknown or absent)."""
        thread = getattr(self._app.consumer, "_thread", None)
        client = getattr(getattr(thread, "_consumer", None), "_client", None)
        cluster = getattr(client, "cluster", None)
        if cluster is None:
            return None
        partitions = cluster.partitions_for_topic(topic)
        return len(partitions) if partitions else None


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """The consumer's last committed offset per TP (``None``/missing: nothing committed yet).

    Faust's own copy (``Consumer._committed_offset``): it drops a partition's offset when the
    partition is revoked (every partition, with the eager assignor, at every rebalance) and learns it
    again only when recovery seeks back to the committed offsets, which a poll can come before. Where
    the group's offset must be known right after an assignment, ask :func:`group_committed_offsets`."""
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    return committed


async def group_committed_offsets(app: faust.App, tps: Iterable[Any], timeout_s: float) -> dict[Any, int | None] | None:
    """The consumer group's committed offset of each of ``tps`` (None: nothing committed), asked of the
    group coordinator; None when it does not answer within ``timeout_s`` (or the consumer is not running).

    Upstream behaviour: aiokafka's ``GroupCoordinator.fetch_committed_offsets`` (what
    ``AIOKafkaConsumer.seek_to_committed`` uses) retries a retriable error forever, so it is bounded
    here, inside the consumer's thread (``ConsumerThread.call_thread``): a fetch left running there
    would hold up the thread's other calls (commits, seeks)."""
    from aiokafka.errors import KafkaError

    wanted = list(tps)
    stand_in = getattr(app.consumer, "_stand_in_group_committed", None)
    if stand_in is not None:
        return None if stand_in is False else {tp: stand_in.get(tp) for tp in wanted}
    thread = getattr(app.consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    coordinator = getattr(client, "_coordinator", None)
    if thread is None or coordinator is None:
        return None

    async def fetch() -> Mapping[Any, Any] | None:
        try:
            async with asyncio.timeout(timeout_s):
                return cast(Mapping[Any, Any], await coordinator.fetch_committed_offsets(set(wanted)))
        except (TimeoutError, KafkaError):
            return None

    got = await thread.call_thread(fetch)
    if got is None:
        return None
    found = {(tp.topic, tp.partition): meta.offset for tp, meta in got.items()}
    return {tp: (at if (at := found.get((tp.topic, tp.partition))) is not None and at >= 0 else None) for tp in wanted}


# --- 5. Why a partition is not consumed (diagnostics for the stall watchdog) ---------------------
#
# Upstream behaviour: Faust only fetches the partitions in ``Consumer._active_partitions``
# (assigned minus ``_paused_partitions``, minus partitions whose stream buffer is under high
# pressure, ``_buffered_partitions``); recovery pauses the source partitions on every assignment
# and resumes them only when the recovery of *that* consumer generation completes; aiokafka keeps
# a fetched batch in ``Fetcher._records`` until Faust asks for the partition. None of this has a
# public accessor; the watchdog logs it when it reports a stall so the cause is in the log.


def partition_flow_state(app: faust.App, tp: Any) -> dict[str, Any]:
    """Faust's and aiokafka's view of ``tp``'s fetch path (read-only; missing attributes are None)."""
    consumer = app.consumer
    active = getattr(consumer, "_active_partitions", None)
    paused = getattr(consumer, "_paused_partitions", None)
    buffered = getattr(consumer, "_buffered_partitions", None)
    thread = getattr(consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    fetcher = getattr(client, "_fetcher", None)
    records = getattr(fetcher, "_records", None)
    client_paused: bool | None = None
    if client is not None and not getattr(client, "_closed", True):
        client_paused = any(_same_tp(p, tp) for p in client.paused())
    return {
        "faust_active": None if active is None else tp in active,
        "faust_paused": None if paused is None else tp in paused,
        "faust_buffer_full": None if buffered is None else tp in buffered,
        "consumer_flow_active": getattr(consumer, "flow_active", None),
        "flow_control_active": app.flow_control.is_active(),
        "generation": app.consumer_generation_id,
        "aiokafka_paused": client_paused,
        "aiokafka_buffered_batch": None if records is None else any(_same_tp(k, tp) for k in records),
    }


def _same_tp(a: Any, b: Any) -> bool:
    return bool(getattr(a, "topic", None) == b.topic and getattr(a, "partition", None) == b.partition)


# --- 6. Records the worker processed without Faust delivering them --------------------------------
#
# Upstream behaviour: Faust commits a partition only up to the first offset that was never acked
# (``Consumer._new_offset`` walks the sorted ``_acked`` list; with a hole of two or more records
# right after the committed offset it returns None on every commit, for as long as the assignment
# lasts; a one-record hole, or any hole while nothing or 0 is committed, it commits past). Records that Faust
# fetched but never handed to the stream (see ``streams.worker.gap_repair``) are re-read and processed by
# the worker, yet Faust never acks them: the partition's committed offset then stops for good while
# everything after it is processed -- a silent commit stall. Faust marks offset ranges it knows
# need no ack (compaction, transaction markers) with the private ``Consumer._add_gap``; we mark
# the re-read records the same way once their results are handed to the producer.


async def mark_offsets_done(app: faust.App, tp: Any, start: int, end: int) -> None:
    """Let Faust commit past ``[start, end)`` of ``tp`` (records the worker processed itself)."""
    consumer: Any = app.consumer
    if end > start:
        await consumer._add_gap(tp, start, end - 1)


# --- 7. One batch per poll for the events topic (issue 11 item 1) -------------------------------
#
# Upstream behaviour: ``Consumer._drain_messages`` (the fetcher task) turns every fetched record
# into a Message, then awaits ``wait_first(conductor_callback(message), suspend_flow.wait())`` --
# four asyncio tasks per record -- before the stream wraps it in an Event and the agent acks it one
# by one: ~150 µs of CPU per record. The drain loop reads the records through the bound method
# ``Consumer.getmany`` (looked up once when the fetcher starts), an async generator over
# ``_wait_next_records`` (a poll of at most ``broker_max_poll_records``). We replace ``getmany`` on
# the app's consumer instance with one that hands the events topic's records of each poll to
# ``handler`` as one batch and yields every other topic's records (table changelogs, recovery) to
# Faust's normal path exactly as the original does. The handler acks through ``ack_offsets``:
# Faust's ``Consumer.ack`` bookkeeping (``_acked``, ``_acked_index``, ``_n_acked``) without
# Message objects, so Faust's commit timer commits them (flushing the producer first).

PollHandler = Callable[[dict[Any, list[Any]], int], Awaitable[None]]


def divert_topic_polls(app: faust.App, topic: str, handler: PollHandler) -> None:
    """Hand each poll's records of ``topic`` to ``await handler({tp: [ConsumerRecord]}, generation)``."""
    consumer: Any = app.consumer

    async def getmany(timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109 - Faust passes it
        records, active_partitions = await consumer._wait_next_records(timeout)
        generation_id = app.consumer_generation_id
        if records is None or consumer.should_stop:
            return
        if not consumer.flow_active:
            # As Faust's getmany: a poll that returns while flow is stopped (a rebalance) seeks
            # back to the committed offsets; its records are dropped.
            try:
                await consumer.perform_seek()
            except Exception as exc:  # noqa: BLE001 - Faust logs and carries on here too
                consumer.log.warning(f"exception performing seek when flow not active {exc}")
            return
        mine: dict[Any, list[Any]] = {}
        rest: dict[Any, list[Any]] = {}
        for tp, batch in records.items():
            if tp.topic != topic:
                rest[tp] = batch
            elif active_partitions is None or tp in active_partitions or tp in consumer._buffered_partitions:
                mine[tp] = batch
        if mine:
            await handler(mine, generation_id)
        to_message = consumer._to_message
        for tp, record in consumer.scheduler.iterate(rest):
            if not consumer.flow_active or app.consumer_generation_id != generation_id:
                break
            if active_partitions is None or tp in active_partitions or tp in consumer._buffered_partitions:
                app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
                yield tp, to_message(tp, record)

    consumer.getmany = getmany


# --- The isolation level of Faust's consumer ------------------------------------------------------
#
# Upstream behaviour: Faust's aiokafka driver (``AIOKafkaConsumerThread._create_worker_consumer``)
# gives its worker consumer ``isolation_level="read_committed"`` when the consumer is
# ``in_transaction`` (``processing_guarantee="exactly_once"`` in a running worker: ``app.in_worker``)
# and ``"read_uncommitted"`` otherwise; no public accessor says which. A side consumer that re-reads
# what Faust's consumer skipped (``streams.worker.gap_repair``) must see the same records: a
# read_uncommitted one would take an aborted transaction's records (never delivered to the worker)
# for skipped ones, and a read_committed one would wait for an open transaction Faust reads through.


def consumer_isolation_level(app: faust.App) -> str:
    """The ``isolation_level`` Faust's aiokafka driver gives ``app``'s worker consumer. Ask it once
    the worker runs (Faust reads ``app.in_transaction``, cached, when it creates its consumer)."""
    consumer: Any = app.consumer
    return "read_committed" if consumer.in_transaction else "read_uncommitted"


# --- 8. How long a fetch waits at the broker ------------------------------------------------------
#
# Upstream behaviour: Faust's ``AIOKafkaConsumerThread._create_worker_consumer`` creates the
# aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. aiokafka keeps
# one fetch per broker in flight and leaves partitions holding unread records out of the next
# fetch; a fetch made of caught-up partitions only (a global table, changelogs, drained events
# partitions) is parked by the broker for the whole wait, and the events partitions read in the
# meantime cannot be fetched again until it returns. aiokafka's consumer passes its private
# ``_fetch_max_wait_ms`` to its ``Fetcher`` when it starts; we set it on the consumer Faust
# creates, before Faust starts it.


def set_fetch_max_wait(app: faust.App, seconds: float) -> None:
    """Make the worker consumer Faust creates for ``app`` wait at most ``seconds`` per fetch."""
    consumer: Any = app.consumer
    thread = consumer._thread
    create = thread._create_worker_consumer

    def create_worker_consumer(transport: Any) -> Any:
        client = create(transport)
        client._fetch_max_wait_ms = max(1, round(seconds * 1000))
        return client

    thread._create_worker_consumer = create_worker_consumer


# --- 8a. A seek back to the committed offset of a partition with nothing committed --------------
#
# Upstream behaviour: a poll that returns while the flow is stopped -- one that began before a
# rebalance returns records of the new assignment -- is dropped by ``Consumer.getmany`` (and by our
# diverted poll), which then calls ``perform_seek`` so the records are read again from the committed
# offsets; recovery calls it too. ``perform_seek`` calls ``seek_to_committed``, and aiokafka's
# ``AIOKafkaConsumer.seek_to_committed`` seeks only partitions whose committed offset is above 0: a
# partition with nothing committed (a new group, or nothing acked before a crash) keeps the position
# the dropped poll advanced, and those records are never read (until a restart). The wrapped
# ``seek_to_committed`` sends such partitions of the topics the app's agents read to their first
# offset -- what the apps' ``consumer_auto_offset_reset="earliest"`` reads; table changelogs are
# left to recovery.


def seek_uncommitted_to_beginning(app: faust.App) -> None:
    """Make ``app``'s consumer re-read from the start a source partition with nothing committed
    whenever Faust seeks back to the committed offsets (instead of leaving it where it was)."""
    consumer: Any = app.consumer
    seek_to_committed = consumer.seek_to_committed

    async def seek_back() -> Mapping[Any, int | None]:
        committed: Mapping[Any, int | None] = await seek_to_committed()
        # The topics the app's agents read: not table changelogs, nor Faust's leader-assignor topic.
        sources = {name for agent in app.agents.values() for name in getattr(agent.channel, "topics", ())}
        fresh = [tp for tp, offset in committed.items() if not offset and tp.topic in sources]
        if fresh:
            await consumer._thread.seek_to_beginning(*fresh)
        return committed

    consumer.seek_to_committed = seek_back


# --- 8b. When a partition's highwater was learnt ----------------------------------------------------
#
# Upstream behaviour: aiokafka stamps each partition's highwater with the wall-clock time of the
# fetch response that carried it (``AIOKafkaConsumer.last_poll_timestamp``, public in aiokafka),
# but Faust's consumer exposes only the offset (``Consumer.highwater``); its aiokafka consumer is
# the private ``AIOKafkaConsumerThread._consumer``. A live worker that has evaluated a partition up
# to its highwater knows it quiet as of that time, not as of now: the fetcher cannot take a
# response in while a batch holds the event loop, so after a long batch the highwater is stale.


def highwater_time(app: faust.App, tp: Any) -> float | None:
    """Wall-clock seconds of the fetch response that gave ``tp``'s highwater (None: not known yet)."""
    thread = getattr(app.consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    if client is None:
        return None
    try:
        stamp = client.last_poll_timestamp(tp)
    except AssertionError:  # not assigned (any more)
        return None
    return None if stamp is None else stamp / 1000.0


# --- 8c. When a request of the worker consumer last went unanswered --------------------------------
#
# Upstream behaviour: aiokafka's fetcher logs a fetch that failed (``AIOKafkaClient.send`` raising a
# ``KafkaError``: the broker refused the connection, cut it, or did not answer in time) and tries
# again; nothing public says when it happened. A gap between two fetch answers (8b) is an outage
# only if a request failed in it: a long batch holding the event loop leaves a gap too, while the
# producers write on. We wrap ``send`` of the client of the aiokafka consumer Faust creates
# (``AIOKafkaConsumer._client``, which its fetcher and group coordinator call through the attribute).

_UNANSWERED: weakref.WeakKeyDictionary[faust.App, float] = weakref.WeakKeyDictionary()


def watch_unanswered_requests(app: faust.App) -> None:
    """Remember the wall-clock time at which a request of ``app``'s worker consumer last failed
    (:func:`last_unanswered_request`). Call before Faust starts the consumer."""
    from aiokafka.errors import KafkaError

    consumer: Any = app.consumer
    thread = consumer._thread
    create = thread._create_worker_consumer

    def create_worker_consumer(transport: Any) -> Any:
        client = create(transport)
        kafka_client = client._client
        send = kafka_client.send

        async def send_watched(*args: Any, **kwargs: Any) -> Any:
            try:
                return await send(*args, **kwargs)
            except KafkaError:
                _UNANSWERED[app] = time.time()
                raise

        kafka_client.send = send_watched
        return client

    thread._create_worker_consumer = create_worker_consumer


def last_unanswered_request(app: faust.App) -> float | None:
    """Wall-clock seconds of the latest failed request of ``app``'s worker consumer (None: none yet,
    or not watched: :func:`watch_unanswered_requests`)."""
    return _UNANSWERED.get(app)


def ack_offsets(app: faust.App, tp: Any, offsets: Iterable[int]) -> int:
    """Mark ``offsets`` of ``tp`` processed, as ``Consumer.ack`` does for a delivered message.

    A poll's offsets of one partition are usually one contiguous run above the committed offset
    and not acked yet: they are added in bulk (the same result as one at a time, without a Python
    step per offset).
    """
    consumer: Any = app.consumer
    committed = consumer._committed_offset[tp]
    index = consumer._acked_index[tp]
    acked = consumer._acked[tp]
    offsets = list(offsets)
    if (
        offsets
        and (committed is None or offsets[0] >= committed)
        and offsets == list(range(offsets[0], offsets[0] + len(offsets)))
        and index.isdisjoint(offsets)
    ):
        index.update(offsets)
        acked.extend(offsets)
        n = len(offsets)
    else:
        n = 0
        for offset in offsets:
            if (committed is None or offset >= committed) and offset not in index:
                index.add(offset)
                acked.append(offset)
                n += 1
    consumer._n_acked += n
    return n


def acked_offsets(app: faust.App, tp: Any) -> list[int]:
    """The offsets of ``tp`` acked and not yet committed: Faust's private ``Consumer._acked``
    (the list :func:`ack_offsets` appends to), for diagnostics and tests."""
    consumer: Any = app.consumer
    return list(consumer._acked[tp])


def flow_active(app: faust.App) -> bool:
    """False while a rebalance has stopped the consumer's flow (records then belong to no one)."""
    return bool(getattr(app.consumer, "flow_active", True)) and app.flow_control.is_active()


def count_received(app: faust.App, tp: Any, n: int, last_offset: int) -> None:
    """Count ``n`` records of ``tp`` in Faust's sensors once per batch, as ``on_message_in`` does per
    message (``messages_received*`` of the Monitor and of the Prometheus sensor's private
    ``_metrics``), so dashboards built on Faust's counters still see the batched events, and mark
    the TP's stream as active for Faust's slow-processing detector."""
    monitor: Any = app.monitor
    monitor.messages_received_total += n
    monitor.messages_received_by_topic[tp.topic] += n
    monitor.tp_read_offsets[tp] = last_offset
    # Faust's livelock detector (``verify_event_path``) reads this per-TP time, set per stream event.
    stream_inbound = getattr(monitor, "stream_inbound_time", None)
    if stream_inbound is not None:
        stream_inbound[tp] = monitor.time()
    metrics = getattr(monitor, "_metrics", None)
    if metrics is not None:
        metrics.messages_received.inc(n)
        metrics.messages_received_per_topics.labels(topic=tp.topic).inc(n)
        metrics.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(last_offset)


# --- 8. Faust's Prometheus sensor, subclassed by streams.runtime.faust_sensor -------------------
#
# Upstream behaviour: ``PrometheusMonitor`` keeps its ``FaustMetrics`` in the private attribute
# ``_metrics`` (set in ``__init__``, read by every hook) and names a stream's metric label with the
# private ``_stream_label``. ``AggregatingPrometheusMonitor`` counts the per-message hooks in plain
# integers and moves them into those same metrics, under the same labels, when ``/metrics`` is
# scraped; :func:`count_received` feeds the batched path's counts into them. Neither has a public
# accessor. (The hooks it overrides are the public ``SensorT`` interface.)


def prometheus_metrics(monitor: Any) -> FaustMetrics | None:
    """The ``FaustMetrics`` a ``PrometheusMonitor`` exports (None for any other monitor)."""
    metrics: FaustMetrics | None = getattr(monitor, "_metrics", None)
    return metrics


def stream_label(monitor: Any, stream: StreamT[Any]) -> str:
    """The label ``PrometheusMonitor`` gives ``stream`` in ``<prefix>_total_events_per_stream``."""
    return str(monitor._stream_label(stream))


# --- 9. Whether this worker's table recovery has completed ----------------------------------------
#
# Upstream behaviour: the app's ``TableManager`` holds its ``Recovery`` service in ``recovery``,
# whose ``completed`` event is set the first time the tables of an assignment are restored (it is
# never cleared; a later recovery shows in ``app.in_recovery``). Neither is on the typed
# ``TableManagerT``, and the public ``wait_until_recovery_completed`` waits; ``/readyz`` needs the
# answer now.


def tables_recovered(app: faust.App) -> bool:
    """True once Faust has restored the tables of an assignment (the first recovery is done)."""
    return bool(cast(Any, app.tables).recovery.completed.is_set())


# --- 10. Faust's web requests and responses are aiohttp's -----------------------------------------
#
# Upstream behaviour: ``faust.web.Request`` and ``faust.web.Response`` are abstract; Faust's only
# web driver (``aiohttp://``, the default ``web`` setting) hands views aiohttp's own ``Request`` and
# builds aiohttp ``Response`` objects (Faust itself casts them so in the driver). The notifier's
# ``/slack/actions`` page reads the body as a bounded stream and closes the connection of an
# oversized request, which only aiohttp's objects can do.


def aiohttp_request(request: faust.web.Request) -> aiohttp.web.Request:
    """The aiohttp request behind a Faust view's ``request`` (body stream, content length)."""
    return cast(aiohttp.web.Request, request)


def close_connection_after(response: faust.web.Response) -> None:
    """Close the client's connection once ``response`` is sent (do not read the rest of the body)."""
    cast(aiohttp.web.Response, response).force_close()


# --- 10b. The topic the leader assignor declares at every start ---------------------------------
#
# Upstream behaviour: unless ``topic_disable_leader`` is set, Faust's ``LeaderAssignor`` declares the
# one-partition topic ``<app id>-__assignor-__leader`` whenever the worker starts (a CreateTopics
# request even when it exists), as the tables declare their changelogs. A Kafka user without CREATE on
# it stops the worker with a TopicAuthorizationFailedError traceback; the permission check
# (``streams.runtime.kafka_permissions``) names the topic first. The name is on the private
# ``_leader_assignor``.


def leader_topic_name(app: faust.App) -> str | None:
    """The name of the topic Faust's leader assignor declares at start (None: the app has none)."""
    if app.conf.topic_disable_leader:
        return None
    return str(cast(Any, app)._leader_assignor._leader_topic_name)


# --- 10c. How long Faust's web server keeps a connection that sends no whole request ------------
#
# Upstream behaviour: Faust's aiohttp driver makes ``AppRunner(web_app, access_log=None)`` in
# ``Web.__init__`` (``_runner``), so aiohttp's ``RequestHandler`` default ``keepalive_timeout`` of
# 3630 s applies: a connection that sends nothing, or trickles a request's headers, was held for an
# hour on the worker's and the notifier's ports (ingest's ``aiohttp.web.run_app`` sets 75 s). The
# runner hands its keyword arguments (``_kwargs``) to the server it makes when the web server starts.

WEB_IDLE_TIMEOUT_SECONDS = 75.0  # aiohttp.web.run_app's default, which ingest's port has


def bound_idle_connections(app: faust.App, seconds: float = WEB_IDLE_TIMEOUT_SECONDS) -> None:
    """Close a connection to ``app``'s web server that has not sent a whole request within ``seconds``
    (or stays idle that long after an answer). Call before the web server starts."""
    cast(Any, app.web)._runner._kwargs["keepalive_timeout"] = seconds


# --- 11. One logged-in connection for the Kafka access check ------------------------------------
#
# Upstream behaviour: ``aiokafka.conn.create_conn`` (not in aiokafka's documented API) opens one
# connection to one broker and performs the TLS handshake and the SASL login in it, raising the
# broker's own refusal (``SaslAuthenticationFailed``…) or the ``ssl`` error at once. The public
# clients retry a refused login until their bootstrap timeout and then report "Unable to
# bootstrap", which hides the cause the access check (``kafka_clients.check_access``) exists to name.


async def open_connection(host: str, port: int, *, client_id: str, request_timeout_ms: int, **security: Any) -> Any:
    """An open, logged-in connection to the broker at ``host:port`` (the caller closes it).

    ``security`` is ``streams.runtime.kafka_clients.aiokafka_config``'s keyword arguments.
    """
    from aiokafka.conn import create_conn

    return await create_conn(host, port, client_id=client_id, request_timeout_ms=request_timeout_ms, **security)


# Upstream behaviour: a listener accepts ``ApiVersions`` (all ``create_conn`` sends without SASL) before
# any login, so a client that does not log in to a SASL listener gets an open connection; the broker
# cuts it at the first real request. And when the broker does not enable the asked SASL mechanism,
# aiokafka raises ``UnsupportedSaslMechanismError`` with the connection's repr, dropping the list of
# mechanisms the broker sent; ``SaslHandshake`` is also allowed before a login, so asking again on a
# connection without SASL gets that list back.


async def request_metadata(conn: Any) -> None:
    """One metadata request (for no topic) on a connection from :func:`open_connection`."""
    from aiokafka.protocol.metadata import MetadataRequest

    await conn.send(MetadataRequest([]))


async def offered_sasl_mechanisms(
    host: str, port: int, *, client_id: str, request_timeout_ms: int, **security: Any
) -> list[str]:
    """The SASL mechanisms the listener at ``host:port`` enables, asked on a connection that does not log in.

    ``security`` is ``aiokafka_config``'s keyword arguments for a ``SASL_*`` protocol.
    """
    from aiokafka.conn import create_conn
    from aiokafka.protocol.admin import SaslHandShakeRequest

    mechanism = security["sasl_mechanism"]
    bare = {key: value for key, value in security.items() if not key.startswith("sasl_")}
    bare["security_protocol"] = str(security["security_protocol"]).removeprefix("SASL_")
    conn = await create_conn(host, port, client_id=client_id, request_timeout_ms=request_timeout_ms, **bare)
    try:
        response = await conn.send(SaslHandShakeRequest(mechanism))
        return [str(name) for name in response.enabled_mechanisms]
    finally:
        conn.close()


# --- 12. Work before a graceful stop, while the consumer and the tables still run ----------------
#
# Upstream behaviour: ``App.on_stop`` (a documented override point: "remember to call super")
# stops the consumer's flow, revokes and stops the tables (``_stop_consumer``) and only then sends
# ``on_before_shutdown`` and flushes the producer; the consumer's own stop commits what is acked.
# A worker that holds acks until its states are written (the rules worker's write interval) must
# write them before ``_stop_consumer``: ``on_before_shutdown`` comes too late (a RocksDB store is
# closed by then). The override runs ``before_stop`` first, then Faust's ``on_stop``.


class AppWithBeforeStop(faust.App):
    """Faust's app with ``before_stop``: awaited as a graceful stop begins, before Faust stops the
    consumer's flow and the tables (the rules worker writes the states it holds there).

    With ``stop_deadline_seconds`` (set by ``preempt worker`` and ``preempt notifier``, not by tests
    that run an app in their own process), a stop still running that long after it began ends the
    process with an ERROR line (``streams/runtime/stop_deadline.py``): Faust's stop has no limit."""

    before_stop: Callable[[], Awaitable[None]] | None = None
    stop_deadline_seconds: float | None = None

    async def on_stop(self) -> None:
        """``before_stop``, then Faust's own stop (consumer, tables, a last flush and commit)."""
        if self.stop_deadline_seconds is not None:
            from streams.runtime import stop_deadline

            stop_deadline.arm(str(self.conf.id), self.stop_deadline_seconds)
        if self.before_stop is not None:
            await self.before_stop()
        await super().on_stop()


# --- 13. Stand-ins for Faust's consumer in tests ------------------------------------------------
#
# The readers above (``committed_offsets``, ``partition_flow_state``) take Faust's private state
# of the consumer; a test's stand-in consumer gets that state here, so no module but this one
# names Faust's private attributes.


def stand_in_consumer_state(
    consumer: Any,
    *,
    committed: Mapping[Any, int | None],
    group_committed: Mapping[Any, int | None] | bool | None = None,
    active: set[Any] | None = None,
    acks: bool = False,
    add_gap: Callable[[Any, int, int], Awaitable[None]] | None = None,
) -> None:
    """Give a test's stand-in ``consumer`` what the functions above use: its committed offsets per
    TP (Faust's copy); optionally the group's (what :func:`group_committed_offsets` answers; False: the
    coordinator does not answer), the set of partitions Faust would fetch (the same set object, so a
    stand-in that resumes partitions updates it in place), Faust's empty ack bookkeeping (``acks``: for
    ``ack_offsets``/``acked_offsets``) and the gap-marking coroutine ``mark_offsets_done`` calls."""
    consumer._committed_offset = committed
    if group_committed is not None:
        consumer._stand_in_group_committed = group_committed
    if active is not None:
        consumer._active_partitions = active
    if acks:
        consumer._acked_index = defaultdict(set)
        consumer._acked = defaultdict(list)
        consumer._n_acked = 0
    if add_gap is not None:
        consumer._add_gap = add_gap


# --- 14. A record header key that is not UTF-8 ----------------------------------------------------
#
# Upstream behaviour: Kafka's header keys are strings, but the broker stores whatever bytes a client
# sent (librdkafka, Go and Java clients can send any). aiokafka decodes each key with strict UTF-8
# while it unpacks a fetched batch (``aiokafka.consumer.fetcher.PartitionRecords._unpack_records``
# iterating a C ``DefaultRecordBatch``; the pure-Python batch wraps the error in a
# ``CorruptRecordException``). The error escapes Faust's fetcher, which crashes the whole worker;
# restarted, it fetches the same record and crashes again: one record stopped the service. The
# fetcher's ``MemoryRecords`` is replaced by one that frames batches itself (aiokafka's pure-Python
# framing, C batches inside, so the fast path is unchanged) and, when a batch's records cannot be
# unpacked because a header key is not UTF-8, unpacks that batch again with the pure-Python reader
# decoding such keys with U+FFFD, skipping the records already delivered. The record then goes on
# like any other (header keys mean nothing to Preempt; values and keys are untouched).


class _LenientSlice(bytearray):
    """A slice of a batch whose ``decode`` replaces invalid UTF-8 (the reader decodes header keys so)."""

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytearray.decode(self, encoding, "replace")


class _LenientBuffer(bytearray):
    """A batch's bytes whose slices are :class:`_LenientSlice` (integers are still integers)."""

    def __getitem__(self, index: Any) -> Any:
        item = bytearray.__getitem__(self, index)
        return _LenientSlice(item) if isinstance(index, slice) else item


def _lenient_batch(raw: Any) -> Any:
    """aiokafka's pure-Python v2 batch over ``raw``, decoding invalid header keys with U+FFFD."""
    from aiokafka.record.default_records import _DefaultRecordBatchPy

    class LenientBatch(_DefaultRecordBatchPy):  # type: ignore[misc]
        def _maybe_uncompress(self) -> None:
            super()._maybe_uncompress()
            if not isinstance(self._buffer, _LenientBuffer):  # type: ignore[has-type]
                self._buffer = _LenientBuffer(self._buffer)  # type: ignore[has-type]

    return LenientBatch(raw)


def _header_key_error(exc: BaseException) -> bool:
    return isinstance(exc, UnicodeDecodeError) or isinstance(exc.__cause__, UnicodeDecodeError)


class _RecoveringBatch:
    """A fetched v2 batch (aiokafka's own object, every attribute passed through) whose iteration
    falls back to :func:`_lenient_batch` when a header key is not UTF-8."""

    __slots__ = ("_batch", "_raw")

    def __init__(self, batch: Any, raw: Any) -> None:
        self._batch = batch
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __next__(self) -> Any:  # control batches are read with next()
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        from aiokafka.errors import CorruptRecordException

        last: int | None = None
        try:
            for record in self._batch:
                last = record.offset
                yield record
        except (UnicodeDecodeError, CorruptRecordException) as exc:
            if not _header_key_error(exc):
                raise
            from streams.runtime.logs import get_logger

            get_logger(__name__).warning(
                "record header key is not UTF-8; read with U+FFFD in its place",
                base_offset=self._batch.base_offset,
                after_offset=last,
            )
            for record in _lenient_batch(self._raw):
                if last is None or record.offset > last:
                    yield record


class LenientMemoryRecords:
    """Drop-in for ``aiokafka.record.memory_records.MemoryRecords`` in the fetcher (see above)."""

    def __init__(self, data: bytes) -> None:
        from aiokafka.record.memory_records import _MemoryRecordsPy

        self._records = _MemoryRecordsPy(data)

    def size_in_bytes(self) -> int:
        return int(self._records.size_in_bytes())

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        raw = self._records._next_slice
        batch = self._records.next_batch()
        if batch is None or raw is None or batch.magic < 2:
            return batch
        return _RecoveringBatch(batch, raw)


def tolerate_non_utf8_header_keys() -> None:
    """Make aiokafka's fetcher (every consumer of this process) read records whose header keys are
    not UTF-8 instead of failing on them (idempotent)."""
    from aiokafka.consumer import fetcher

    fetcher.MemoryRecords = LenientMemoryRecords


# --- 15. A consumer stopped while its broker is away --------------------------------------------
#
# Upstream behaviour (aiokafka 0.14.0, ``aiokafka.consumer.fetcher.Fetcher.close``): the fetcher
# cancels its pending fetch requests and awaits each one unguarded. A request that failed while the
# broker is away sleeps its retry backoff outside its own ``CancelledError`` handler, so awaiting it
# raises ``CancelledError`` out of ``close``: the consumer's stop fails, Faust's consumer thread dies
# with that traceback, and mode waits 60 s for the dead thread before it gives up. A rules worker or
# notifier sent SIGTERM during a broker outage took 64 s to stop (Kubernetes' grace period is 60 s).
# ``close`` here does the same, but a request that ended cancelled is not an error of the close.


UPSTREAM: dict[str, Callable[..., Any]] = {}
"""Upstream functions replaced here, by name (their tests check the behaviour worked around is still there)."""


async def _close_fetcher(self: Any) -> None:
    self._closed = True
    self._fetch_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await self._fetch_task
    for waiter in self._fetch_waiters:  # fail every pending fetchone/fetchall call
        self._notify(waiter)
    for task in self._pending_tasks:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # The close itself was cancelled (then the request it awaited is cancelled with it, so
            # ``task.cancelled()`` alone cannot tell): pass it on.
            current = asyncio.current_task()
            if not task.cancelled() or (current is not None and current.cancelling()):
                raise


def stop_fetchers_cleanly() -> None:
    """Make aiokafka's fetcher (every consumer of this process) close without raising when its pending
    requests end cancelled (idempotent)."""
    from aiokafka.consumer import fetcher

    if fetcher.Fetcher.close is not _close_fetcher:
        UPSTREAM["Fetcher.close"] = fetcher.Fetcher.close
        fetcher.Fetcher.close = _close_fetcher


# --- 16. The topics in the metadata of the worker's consumer and producer -------------------------
#
# Upstream behaviour: Faust keeps no view of which topics exist. Its consumer's aiokafka client
# (``Consumer._thread._consumer._client``) refreshes the metadata of the subscribed topics (sources
# and changelogs) every ``consumer_metadata_max_age_ms``; the producer's client (``Producer._producer``,
# an ``AIOKafkaProducer``, whose ``client`` is public) refreshes the topics it writes at once when a
# write fails. A topic deleted under the process drops out of that client's ``cluster`` at the next
# refresh (aiokafka logs "Topic … not found in cluster metadata", at every retry), and nothing else
# says so: the producer retries the write for ever. ``streams.runtime.missing_topics`` reads the
# topic sets here.


def _cluster_topics(client: Any) -> frozenset[str] | None:
    cluster = getattr(client, "cluster", None)
    if cluster is None or getattr(client, "_sync_task", None) is None:  # not bootstrapped: no metadata yet
        return None
    return frozenset(cluster.topics(exclude_internal_topics=False))


def consumer_metadata_topics(app: faust.App) -> frozenset[str] | None:
    """Topics in the consumer client's latest metadata (None: the consumer has none yet)."""
    thread = getattr(app.consumer, "_thread", None)
    return _cluster_topics(getattr(getattr(thread, "_consumer", None), "_client", None))


def producer_metadata_topics(app: faust.App) -> frozenset[str] | None:
    """Topics in the (non-transactional) producer client's latest metadata (None: no producer started)."""
    return _cluster_topics(getattr(getattr(app.producer, "_producer", None), "client", None))


def producer_metadata_requested(app: faust.App) -> frozenset[str] | None:
    """The topics the producer client asks the metadata of (None: every topic).

    Upstream behaviour: ``AIOKafkaClient`` asks for every topic while its ``_topics`` is empty; a send to a
    topic its metadata lacks (``_wait_on_metadata`` → ``add_topic``) adds that topic, and from then on
    every refresh asks for ``_topics`` only: a topic outside it drops out of ``cluster`` although it
    exists, until the producer first sends to it."""
    requested = getattr(getattr(getattr(app.producer, "_producer", None), "client", None), "_topics", None)
    return frozenset(requested) if requested else None


# --- 17. The local files of a table's store ------------------------------------------------------
#
# Upstream behaviour: Faust's RocksDB store keeps each partition of a table in
# ``Store.partition_path(partition)`` (``<tabledir>/<table>-<partition>.db``) together with the
# changelog offset it has read. Opened against a changelog topic made anew (empty), recovery stops
# the worker with ``ConsistencyError`` ("persisted offset … is higher than the last offset in that
# topic") and a traceback, at every restart. The memory store keeps no files.


def table_store_files(app: faust.App, changelogs: Iterable[str]) -> list[Any]:
    """The local store files (``pathlib.Path``) of ``app``'s tables whose changelog topic is in ``changelogs``."""
    import re

    names = set(changelogs)
    found: list[Any] = []
    for table in app.tables.values():
        if table.changelog_topic.get_topic_name() not in names:
            continue
        partition_path = getattr(table.data, "partition_path", None)
        if partition_path is None:  # not a store with files
            continue
        first = partition_path(0)
        pattern = re.compile(re.escape(first.name.removesuffix("0.db")) + r"\d+\.db")
        if first.parent.is_dir():
            found.extend(sorted(p for p in first.parent.iterdir() if pattern.fullmatch(p.name)))
    return found


# --- 18. Failed writes of a table's RocksDB store ---------------------------------------------------
#
# Upstream behaviour: Faust's RocksDB store writes from several places that handle a failure
# differently: a table write (``Store._set`` / ``_del``) raises into the caller; a changelog batch
# (``apply_changelog_batch``: recovery, standbys and global tables, read all the time) fails inside
# the recovery loop, which logs "Error in recovery" as a WARNING and goes on; the changelog offset
# written after each send (``set_persisted_offset``, from a produce callback) fails in asyncio's
# "Exception in callback" log line; a partition's database that cannot be opened
# (``_open_for_partition``) crashes the app with a traceback. A full disk fails all of them (RocksDB's
# IOError, a plain ``Exception`` from rocksdict). Each of these methods is wrapped once so that the
# handlers given to :func:`watch_store_writes` see every such failure first; it is raised on as before.

_STORE_WRITES = ("_set", "_del", "apply_changelog_batch", "set_persisted_offset", "_open_for_partition")
_store_write_handlers: list[Callable[[BaseException], None]] = []


def watch_store_writes(handler: Callable[[BaseException], None]) -> Callable[[], None]:
    """Call ``handler`` with every exception a RocksDB table store raises while it writes or opens a
    partition's database (the process's own handler decides; the exception is raised on). Returns
    the function that stops calling it (tests)."""
    from faust.stores import rocksdb

    store = rocksdb.Store
    if not getattr(store, "_preempt_writes_watched", False):
        for name in _STORE_WRITES:
            setattr(store, name, _watched_store_write(getattr(store, name)))
        store._preempt_writes_watched = True  # type: ignore[attr-defined]  # marks the wrapping as done
    _store_write_handlers.append(handler)
    return lambda: _store_write_handlers.remove(handler)


def _watched_store_write(method: Callable[..., Any]) -> Callable[..., Any]:
    def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            for handler in _store_write_handlers:
                handler(exc)
            raise

    watched.__name__ = method.__name__
    watched.__doc__ = method.__doc__
    return watched


# --- 19. Faust's record skip, on demand (tests only) ----------------------------------------------
#
# Upstream behaviour: faust-streaming 0.15 was seen to acknowledge a record without handing it to an
# agent (about one in 80,000, soon after an assignment); it cannot be made to happen on demand. Its
# drain loop reads ``Consumer.getmany`` (a public method of ``faust.transport.consumer.Consumer``) and,
# seeing the next offset jump past a record, marks the offset done itself (``Consumer._add_gap``), so
# the commit passes a record no agent was given. Dropping the record from what ``getmany`` yields
# reproduces exactly that; the notifier's skip repair is tested against it
# (``tests/integration/skipping_notifier.py``).


def drop_one_record(topic: str, partition: int, offset: int, on_drop: Callable[[], None]) -> None:
    """Make every Faust consumer of this process skip ``topic:partition:offset`` once; ``on_drop`` is called
    when it does. For tests that need Faust's skip; never called by the product."""
    from faust.transport.consumer import Consumer

    original = Consumer.getmany
    dropped: list[bool] = []

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109 - Faust's signature
        async for tp, message in original(self, timeout):
            if not dropped and (tp.topic, tp.partition, message.offset) == (topic, partition, offset):
                dropped.append(True)
                on_drop()
                continue
            yield tp, message

    Consumer.getmany = getmany  # type: ignore[method-assign]


# --- 20. A record's own delivery future ---------------------------------------------------------
#
# Upstream behaviour: ``Topic.send`` (and ``send(force=True)``) builds the record's ``FutureMessage``,
# publishes it and returns the *producer's* future; the producer's answer then fails or fulfils the
# ``FutureMessage`` too (``Topic._on_published``), which ``send`` keeps to itself. A record the broker
# refuses (too large, not authorised) therefore left a failed ``FutureMessage`` nobody read, and the
# collector's sweep made asyncio log "FutureMessage exception was never retrieved" with a traceback,
# even when the caller handled the refusal (a dead letter written cut). Publishing through the
# public ``as_future_message`` + ``publish_message`` and awaiting the ``FutureMessage`` reads it.


async def publish(
    topic: faust.TopicT,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Any = None,
    partition: int | None = None,
) -> asyncio.Future[Any]:
    """Hand one record to the producer now (not attached to an offset: ``send(force=True)``); returns
    its own ``FutureMessage``, which the broker's answer fulfils or fails. Await *that* future, not the
    producer's: awaiting it is what reads a refusal."""
    message = topic.as_future_message(key=key, value=value, partition=partition, headers=headers)
    await topic.publish_message(message)
    return cast(asyncio.Future[Any], message)


# --- 21. Pausing partitions without dropping the poll being handed over ---------------------------
#
# Upstream behaviour: ``Consumer.pause_partitions`` takes partitions out of the set of active partitions,
# and ``Consumer.getmany``, while it hands over a poll one record at a time, silently drops every record
# whose partition is no longer active -- unless the partition is in the private ``_buffered_partitions``
# (the partitions Faust itself stops fetching because an agent's buffer is under pressure, whose fetched
# records it still hands over). aiokafka's position is already past the dropped records and nothing seeks
# back: the notifier saw an offset jump and Faust's gap bookkeeping committed past alerts still waiting.
# Pausing the alerts for the notifier's intake limit (``alerts/intake.py``) therefore also puts them in
# ``_buffered_partitions``, as buffer pressure does: no new fetch, the current poll handed over in full.
# Faust's recovery resumes every assigned partition after a rebalance (``Recovery``), so a pause never
# outlives the assignment it was made in.


def pause_fetching(app: faust.App, tps: Collection[Any]) -> None:
    """Stop fetching ``tps``; the records of the poll being handed over still reach the agents."""
    consumer: Any = app.consumer  # Faust's Consumer (ConsumerT does not declare _buffered_partitions)
    consumer.pause_partitions(tps)
    consumer._buffered_partitions.update(tps)


def resume_fetching(app: faust.App, tps: Collection[Any]) -> None:
    """Fetch ``tps`` again (undoes :func:`pause_fetching`)."""
    consumer: Any = app.consumer
    consumer._buffered_partitions.difference_update(tps)
    consumer.resume_partitions(tps)


# --- 22. Whether the consumer group still counts this process as a member ---------------------------


def group_membership_lost(app: faust.App) -> bool:
    """Whether the consumer group no longer counts this process as a member: its session expired (a
    process paused past the session timeout: SIGSTOP, a VM or container freeze, a long GC or swap
    stall) and the group handed its partitions to the other workers. Writing the states, progress
    and clocks of those partitions now would overwrite the new owner's newer ones in the changelogs.

    Upstream behaviour: aiokafka's ``GroupCoordinator.reset_generation`` (on a heartbeat or sync
    answered ``UNKNOWN_MEMBER_ID`` / ``ILLEGAL_GENERATION``) sets ``generation`` to
    ``OffsetCommitRequest.DEFAULT_GENERATION_ID`` (-1) and ``member_id`` to the empty string, and only
    then revokes the partitions (``_on_join_prepare``), while Faust's ``consumer_generation_id`` stays
    the old one until the next assignment. A process that has not joined yet has no assignment to
    write for, so the same reading means nothing then. False without a running aiokafka consumer."""
    thread = getattr(app.consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    coordinator = getattr(client, "_coordinator", None)
    if coordinator is None:
        return False
    return getattr(coordinator, "generation", None) == -1 and getattr(coordinator, "member_id", None) == ""


# --- 23. Table recovery of a changelog partition without an offset --------------------------------


async def _seek_offsets_known(self: Any, consumer: Any, tps: Any, offsets: Any, title: str) -> None:
    for tp in tps:
        at = offsets.get(tp)
        if at is None or at < -1:  # no offset read or persisted yet: from the start, as Faust's -1
            offsets[tp] = -1
    await UPSTREAM["Recovery._seek_offsets"](self, consumer, tps, offsets, title)


def seek_unread_changelogs_from_start() -> None:
    """Make Faust's table recovery seek a changelog partition it holds no offset for to its start
    instead of crashing the worker (idempotent).

    Upstream behaviour: ``Recovery.add_standby`` records a standby partition without a persisted
    offset as ``None`` (``offsets.setdefault(tp, None)``); ``_build_offsets`` turns it into -1 before
    the first seek, but when rebalances follow each other (a worker paused past its session rejoins,
    and the group rebalances again before the recovery finishes) the standby seek of
    ``_restart_recovery`` can get the ``None``: aiokafka's ``seek`` raised ``ValueError('Offset must
    be a positive integer')`` and the worker stopped (seen once in four runs of
    tests/integration/test_pipeline_paused_worker.py). -1 is what Faust itself seeks as 0."""
    from faust.tables.recovery import Recovery

    if Recovery._seek_offsets is not _seek_offsets_known:
        UPSTREAM["Recovery._seek_offsets"] = Recovery._seek_offsets
        Recovery._seek_offsets = _seek_offsets_known  # type: ignore[method-assign]
