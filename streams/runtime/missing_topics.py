"""Topics deleted under a running rules worker or notifier, and changelog topics missing at start.

A table's changelog topic is the only durable copy of its state. Deleted under a running process
(``kafka-topics.sh --delete``), the group rebalances, the table's partitions are no longer assigned
(the process goes on from an empty table) and every state write is retried for ever; nothing named
the cause. Restarted, the process created the changelog again, *empty*: every account's state (or
the notifier's delivery log and snoozes) was gone, and the group's committed offsets meant the records
that built it were not read again — silently. So:

* while running, :func:`watch_topics` notices a watched topic gone from the clients' metadata
  (refreshed every ``PREEMPT_METADATA_MAX_AGE_SECONDS``, at once after a failed write): a changelog
  is a process-wide failure — one CRITICAL line naming it, ``/readyz`` 503, ``preempt_topic_missing``,
  and the process stops (it could only go on with empty state, and its restart asks the operator);
  a topic it only writes (the rules worker's alerts topic, its dead-letter topic) makes it not ready, naming
  the topic, until the topic is back — the writes wait in the producer meanwhile and go out then. A written
  topic counts as missing once the producer asks for it and its metadata still lacks it, seen before or
  not: the first dead letter after the dead-letter topic was deleted (or never created, where the broker
  does not create topics) waited for it in silence;
* at start, :func:`check_state_kept` refuses to recreate a missing changelog empty while the consumer
  group has committed offsets past the start of the source topic (state existed and would not be
  rebuilt), unless ``PREEMPT_ACCEPT_LOST_STATE=true``. A new deployment (nothing committed) and a
  replay (offsets reset to the earliest) start as before.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Iterable
from typing import Any

import faust
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError

from schemas.errors import ConfigError
from streams.runtime.faust_compat import (
    consumer_metadata_topics,
    producer_metadata_requested,
    producer_metadata_topics,
    table_store_files,
)
from streams.runtime.logs import get_logger
from streams.runtime.metrics import TOPIC_MISSING
from streams.runtime.settings import Settings

log = get_logger(__name__)

DOCS = "docs/operations.md, PreemptTopicMissing"
WATCH_INTERVAL_SECONDS = 2.0


class LostStateError(ConfigError):
    """A changelog topic is missing while the state it held was built: recreating it empty loses that state."""


class MissingTopicWatch:
    """Which watched topics were deleted: seen in the metadata once, absent from it now. Pure: the caller
    passes, per topic, whether the latest metadata lists it (None: no metadata to tell).

    A topic never seen is not missing: at start the metadata may not list it yet (``existed``: topics known
    to exist all the same, as the process created them before it started). A topic is missing once
    it has been absent for ``confirm_s`` (``now`` is the caller's clock): aiokafka leaves a topic out of
    its metadata for any error of it (a leader election's ``LEADER_NOT_AVAILABLE`` too), and the next
    refresh (``PREEMPT_METADATA_MAX_AGE_SECONDS``) lists it again — only a deleted topic stays away.
    """

    def __init__(self, topics: Iterable[str], confirm_s: float = 0.0, *, existed: Iterable[str] = ()) -> None:
        self.topics = tuple(topics)
        self.confirm_s = confirm_s
        self._seen: set[str] = set(existed)  # known to exist without being seen (created at start)
        self._absent_since: dict[str, float] = {}
        self.missing: set[str] = set()

    def observe(self, listed: Callable[[str], bool | None], now: float = 0.0) -> tuple[list[str], list[str]]:
        """Record the metadata now; return the topics gone since the last call and those back."""
        gone: list[str] = []
        back: list[str] = []
        for topic in self.topics:
            present = listed(topic)
            if present is None:
                continue
            if present:
                self._seen.add(topic)
                self._absent_since.pop(topic, None)
                if topic in self.missing:
                    self.missing.discard(topic)
                    back.append(topic)
            elif topic in self._seen and topic not in self.missing:
                since = self._absent_since.setdefault(topic, now)
                if now - since >= self.confirm_s:
                    self.missing.add(topic)
                    gone.append(topic)
        return gone, back


def confirm_seconds(settings: Settings) -> float:
    """How long a watched topic must be absent from the metadata to count as deleted: past one refresh
    (``PREEMPT_METADATA_MAX_AGE_SECONDS``) plus 5 s, and at least 15 s (a leader election's error)."""
    return max(15.0, settings.metadata_max_age_seconds + 5.0)


def changelog_reason(topic: str) -> str:
    """``/readyz``'s reason (and the CRITICAL line's) for a changelog topic deleted under the process."""
    return (
        f"changelog topic {topic} does not exist (deleted?): its table's state can no longer be written or "
        f"recovered; stopping (a restart refuses to recreate it empty: restore it, replay or accept the loss, {DOCS})"
    )


def written_reason(topic: str, partitions: int, creator: str) -> str:
    """``/readyz``'s reason for a topic the process writes, deleted under it."""
    return (
        f"topic {topic} does not exist (deleted?): its records wait in the producer; recreate it with "
        f"{partitions} partitions ({creator} creates it at start), they go out then"
    )


def dead_letter_reason(topic: str, settings: Settings, process: str = "worker", item: str = "record") -> str:
    """``/readyz``'s reason for a dead-letter topic missing (deleted, or never created where the broker does not
    create topics): the ``process`` (``worker``, ``notifier``) waits at the ``item`` that needs a dead letter."""
    return (
        f"dead-letter topic {topic} does not exist (deleted, or never created): the {process} waits at the {item} "
        "that needs a dead letter (order is kept, none is lost) and goes on by itself once the topic exists; "
        f"create it: kafka-topics.sh --bootstrap-server {settings.bootstrap_servers[0]} --create --topic {topic} "
        f"--partitions {settings.topic_partitions} --replication-factor {settings.topic_replication} "
        f"(or start another preempt {process}: it creates the deployment's topics at start; {DOCS})"
    )


def watch_topics(
    app: faust.App,
    *,
    changelogs: Iterable[str],
    written: Iterable[str],
    reason_for: Callable[[str], str],
    stop: Callable[[Exception], None],
    confirm_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], tuple[str, ...]]:
    """Add a timer to ``app`` that watches its ``changelogs`` (in the consumer's metadata: it reads them)
    and the topics it only writes, ``written`` (in the producer's; ``reason_for`` says what to do);
    return ``/readyz``'s reasons for the missing ones. A topic counts as missing once absent from the
    metadata for ``confirm_s`` (``confirm_seconds``: past one metadata refresh).

    A changelog gone: CRITICAL ``changelog topic missing; stopping``, ``stop(LostStateError)`` once.
    A written topic gone: ERROR ``topic missing; not ready until it is back``, INFO ``topic back``.
    ``preempt_topic_missing{app,topic}`` is 1 while a topic is missing.
    """
    changelog_watch = MissingTopicWatch(changelogs, confirm_s)
    # The written topics were made at start (ensure_topics): they count as seen. Before, a topic deleted before
    # the first metadata listing it (the timer's first tick; once the producer has written to any topic, its
    # refreshes list only those) was never missing: the worker stayed ready while its dead letters waited.
    written = tuple(written)
    written_watch = MissingTopicWatch(written, confirm_s, existed=written)
    name = app.conf.name
    stopping: list[str] = []
    for topic in (*changelog_watch.topics, *written_watch.topics):
        TOPIC_MISSING.labels(app=name, topic=topic).set(0)

    def listed_in(
        topics: frozenset[str] | None, requested: frozenset[str] | None = None
    ) -> Callable[[str], bool | None]:
        # A topic the client does not ask the metadata of (requested: None, every topic) is absent from
        # it whether it exists or not: nothing is known of it.
        return lambda topic: (
            None if topics is None or (requested is not None and topic not in requested) else (topic in topics)
        )

    async def check() -> None:
        now = clock()
        gone, _ = changelog_watch.observe(listed_in(consumer_metadata_topics(app)), now)
        for topic in gone:
            TOPIC_MISSING.labels(app=name, topic=topic).set(1)
            if not stopping:
                stopping.append(topic)
                reason = changelog_reason(topic)
                log.critical("changelog topic missing; stopping", topic=topic, reason=reason)
                stop(LostStateError(reason))
        written_listed = listed_in(producer_metadata_topics(app), producer_metadata_requested(app))
        lost, back = written_watch.observe(written_listed, now)
        for topic in lost:
            TOPIC_MISSING.labels(app=name, topic=topic).set(1)
            log.error("topic missing; not ready until it is back", topic=topic, reason=reason_for(topic))
        for topic in back:
            TOPIC_MISSING.labels(app=name, topic=topic).set(0)
            log.info("topic back", topic=topic)

    app.timer(interval=WATCH_INTERVAL_SECONDS, name="topic-watch")(check)

    def reasons() -> tuple[str, ...]:
        return (
            *(changelog_reason(t) for t in sorted(changelog_watch.missing)),
            *(reason_for(t) for t in sorted(written_watch.missing)),
        )

    return reasons


def crash_on(app: faust.App) -> Callable[[Exception], None]:
    """A ``stop`` for :func:`watch_topics` that crashes ``app`` (the crash task is kept alive)."""
    tasks: list[asyncio.Future[Any]] = []
    return lambda error: tasks.append(asyncio.ensure_future(app.crash(error)))


def records_read(admin: KafkaAdminClient, group: str, source: str) -> int:
    """Records of ``source`` behind the offsets ``group`` committed (0: nothing committed, or offsets at the
    start of the topic — a new deployment, or a replay after ``--reset-offsets --to-earliest``).

    A committed offset behind the partition's log start (retention deleted records past it, unread) counts
    the offsets before it: the records the group read there are gone, and how many they were can no longer
    be told. Counted as 0 before, a changelog missing then looked like a new deployment's and was made
    again empty, the state built from those records lost without a word. So does one at the log start of a
    partition that holds no record any more (retention deleted every record the group read, and nothing
    came since: an idle partition): no replay can rebuild anything there. It counted 0 as well, as a
    replay's offset at the start of records still there does."""
    committed = {
        tp: meta.offset
        for tp, meta in admin.list_group_offsets({group: None}).get(group, {}).items()
        if tp.topic == source and meta.offset >= 0
    }
    if not committed:
        return 0
    earliest = admin.list_partition_offsets(dict.fromkeys(committed, OffsetSpec.EARLIEST))
    latest = admin.list_partition_offsets(dict.fromkeys(committed, OffsetSpec.LATEST))

    def read(tp: TopicPartition, offset: int) -> int:
        start: int = earliest[tp].offset
        if offset > start:
            return offset - start
        if offset < start or (tp in latest and latest[tp].offset == start):
            return offset  # retention deleted what the group read (and what it did not, if any)
        return 0  # at the start of records still there: a new deployment's, or a replay's

    return sum(read(tp, offset) for tp, offset in committed.items() if tp in earliest)


def check_state_kept(
    admin: KafkaAdminClient,
    settings: Settings,
    missing: list[str],
    *,
    group: str,
    source: str,
    rebuildable: Iterable[str] = (),
) -> None:
    """Before ``missing`` changelog topics are created: ``LostStateError`` when ``group`` has read records of
    ``source`` (its tables' state existed and would not be rebuilt), unless ``PREEMPT_ACCEPT_LOST_STATE``.

    ``rebuildable``: changelogs whose table may start empty (it holds no state an alert depends on, e.g. the
    rules worker's ``partition-progress``): one missing is made without asking — after an upgrade from a
    version without that table it is new, not lost (an INFO line says so)."""
    optional = sorted(set(missing) & set(rebuildable))
    missing = [name for name in missing if name not in optional]
    if optional:
        log.info("changelog topics of tables that start empty created (new in this version, or lost)", topics=optional)
    try:
        read = records_read(admin, group, source) if missing else 0
    except KafkaError as exc:  # the group's ACL is checked before (check_permissions): a broker fault
        raise LostStateError(
            f"changelog topic {', '.join(missing)} does not exist and Kafka did not show consumer group {group}'s "
            f"committed offsets ({type(exc).__name__}), so whether its state would be lost is not known; "
            "try again once the broker answers"
        ) from None
    if not read:
        return
    names = ", ".join(missing)
    if settings.accept_lost_state:
        log.warning(
            "changelog topics missing; recreated empty (PREEMPT_ACCEPT_LOST_STATE=true)",
            topics=missing,
            group=group,
            records_not_replayed=read,
        )
        return
    bootstrap = settings.bootstrap_servers[0]
    raise LostStateError(
        f"changelog topic {names} does not exist, but consumer group {group} has read {read} records of {source}: "
        "recreated empty, the state built from them would be lost and they would not be read again. Restore the "
        f"topic (from a backup or mirror); or replay: kafka-consumer-groups.sh --bootstrap-server {bootstrap} "
        f"--group {group} --reset-offsets --to-earliest --topic {source} --execute (records past retention are "
        f"gone); or accept the loss: start once with PREEMPT_ACCEPT_LOST_STATE=true ({DOCS})"
    )


def discard_stale_stores(app: faust.App, created: Iterable[str]) -> None:
    """Remove the local store files of the tables whose changelog topic was just ``created`` (it was
    missing): they belong to the deleted topic, and Faust's recovery stops on them at every start."""
    paths = table_store_files(app, created)
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    if paths:
        log.warning(
            "local table files of a recreated changelog topic removed",
            topics=sorted(created),
            folder=str(paths[0].parent),
            files=[path.name for path in paths],
        )
