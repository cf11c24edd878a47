"""The Faust rules app ``<prefix>-rules`` (``preempt-rules`` by default).

``preempt.events`` (raw bytes) → decode (dead letters to ``preempt.events.dlq``) → per-account rule
engine with its state in a changelog-backed table (written once per touched account per batch) →
findings → enrich from ``preempt.accounts`` (a global table) → alerts on ``preempt.alerts`` keyed by
account. A timer moves each partition's clock so deadlines fire without new events. See
docs/pipeline.md for the guarantees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import faust

from rules.engine import EventOutcome
from schemas.decoder import Reason
from streams.runtime.data_dir import prepared_data_dir
from streams.runtime.faust_compat import (
    AppWithBeforeStop,
    consumer_isolation_level,
    seek_unread_changelogs_from_start,
    stop_fetchers_cleanly,
    tolerate_non_utf8_header_keys,
)
from streams.runtime.kafka_clients import faust_credentials, metadata_max_age_ms
from streams.runtime.logs import get_logger
from streams.runtime.metrics import expose_worker_series
from streams.runtime.missing_topics import confirm_seconds, dead_letter_reason, watch_topics, written_reason
from streams.runtime.ops_web import broker_unreachable, register_liveness
from streams.runtime.settings import Settings
from streams.runtime.table_store import table_options
from streams.runtime.topics import TopicNames, changelog_topics, rules_app_id
from streams.worker.account_letters import INVALID_ACCOUNT, AccountDeadLetters
from streams.worker.agents import WorkerRuntime, install_agents
from streams.worker.clock import PartitionClocks
from streams.worker.emit import ALERT_TOO_LARGE, OutputWriter
from streams.worker.enrich import AccountDirectory, accounts_table
from streams.worker.gap_repair import GapRepair
from streams.worker.liveness import PartitionWatchdog
from streams.worker.partition_scope import PartitionEvents
from streams.worker.processor import ALERT_BUILD_FAILED, FORWARDED, PROCESSING_ERROR, RuleEnginePort, RulesProcessor
from streams.worker.progress import PROGRESS_TABLE, SKIP_REASONS, PartitionProgress
from streams.worker.state_cache import EVALUATION_ERROR, STATE_TOO_LARGE, STATE_UNREADABLE, STATE_UNWRITABLE, StateCache
from streams.worker.wakeups import WakeupIndex
from streams.worker.web import register_web

if TYPE_CHECKING:
    from rules.findings import Finding
    from rules.state import AccountState

STATE_TABLE = "account-state"
CLOCK_TABLE = "partition-clock"

log = get_logger(__name__)


app_id = rules_app_id
"""The Faust app id (consumer group, changelog topic prefix): ``<topic_prefix>-rules``; defined with the topic
names (``streams/runtime/topics.py``), whose partition check reads the changelog topics it names."""


def load_engine(settings: Settings) -> tuple[RuleEnginePort[AccountState, Finding], list[str]]:
    """The rule engine for ``settings.rules_path`` and the ids of its rules."""
    from rules.engine import RuleEngine
    from rules.loader import load_rules

    ruleset = load_rules(settings.rules_path)
    engine = RuleEngine(
        ruleset, dedup_horizon=settings.dedup_horizon_seconds, state_version=settings.state_write_version
    )
    rule_ids = [rule.id for rule in ruleset.enabled]
    return engine, rule_ids


def create_app(
    settings: Settings, engine: RuleEnginePort[Any, Any] | None = None, rule_ids: list[str] | None = None
) -> AppWithBeforeStop:
    """Build the rules app for ``settings`` (no I/O until the worker starts)."""
    tolerate_non_utf8_header_keys()  # one such record crashed the worker, again after every restart
    stop_fetchers_cleanly()  # a SIGTERM while the broker was away took 64 s (faust_compat section 15)
    seek_unread_changelogs_from_start()  # a standby without an offset stopped a worker after a pause
    if engine is None:
        engine, rule_ids = load_engine(settings)
    names = TopicNames.from_settings(settings)
    partitions = settings.topic_partitions
    # The states the worker holds are written as a graceful stop begins (before_stop, below).
    app = AppWithBeforeStop(
        app_id(settings),
        broker=settings.broker,
        store=settings.store,
        datadir=str(prepared_data_dir(settings, app_id(settings), settings.worker_web_port)),
        topic_partitions=partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        web_host=settings.web_url_host,
        # web_host only names the server in URLs (an IPv6 address in brackets); Faust listens on
        # web_bind (default 0.0.0.0, every interface). PREEMPT_WEB_HOST is the interface to listen on
        # (docs/operations.md).
        web_bind=settings.web_host,
        web_port=settings.worker_web_port,
        web_in_thread=False,
        # Faust's /table and /router pages would serve account state, owner emails and MRR to
        # anyone who can reach the port; the app does not use them.
        web_tables_enabled=False,
        web_router_enabled=False,
        broker_credentials=faust_credentials(settings),
        stream_buffer_maxsize=16384,
        broker_max_poll_records=5000,
        producer_linger=settings.worker_producer_linger_seconds,
        broker_session_timeout=settings.worker_session_timeout_seconds,
        producer_max_batch_size=settings.worker_producer_batch_bytes,
        consumer_metadata_max_age_ms=metadata_max_age_ms(settings),
        producer_metadata_max_age_ms=metadata_max_age_ms(settings),
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    events = app.topic(names.events, partitions=partitions, **raw)
    alerts = app.topic(names.alerts, partitions=partitions, **raw)
    dlq = app.topic(names.events_dlq, partitions=partitions, **raw)
    as_bytes: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "partitions": partitions}
    # Each table's RocksDB memory bounded (Faust's defaults grow toward gigabytes: streams/runtime/table_store.py).
    state_table = app.Table(STATE_TABLE, **as_bytes, options=table_options(settings))
    clock_table = app.Table(CLOCK_TABLE, **as_bytes, options=table_options(settings))
    progress_table = app.Table(PROGRESS_TABLE, **as_bytes, options=table_options(settings))
    accounts = accounts_table(app, names.accounts, partitions, table_options(settings))

    clocks = PartitionClocks(settings.allowed_lateness_seconds, settings.event_time_only)
    cache = StateCache(
        state_table, engine.new_state, engine.loads, engine.dumps, max_clean=settings.worker_state_cache_accounts
    )
    # Each bad account record dead-lettered once, its mark in the progress table (account_letters.py).
    account_letters = AccountDeadLetters(dlq, progress_table, PartitionEvents(app, names.events).scope)
    directory = AccountDirectory(accounts, account_letters, settings.late_event_log_interval_seconds)
    accounts.on_record = directory.observe  # each account record checked as it arrives
    bind_accounts = getattr(engine, "bind_accounts", None)
    if bind_accounts is not None:  # the real engine: risk models with account features read the table
        bind_accounts(directory.lookup)
    processor = RulesProcessor(
        engine, settings, cache, clocks, WakeupIndex(), directory.lookup, rule_ids=rule_ids or ()
    )
    _expose_series(engine)
    writer = OutputWriter(PartitionEvents(app, names.events), state_table, clock_table, alerts, dlq, events)
    runtime = WorkerRuntime(app, settings, names.events, processor, writer, state_table, clock_table)
    runtime.progress = PartitionProgress(progress_table, PartitionEvents(app, names.events), names.events)
    runtime.account_letters = account_letters
    gap_repair = runtime.gap_repair = GapRepair(
        settings, names.events, isolation_level=lambda: consumer_isolation_level(app)
    )
    app.before_stop = runtime.write_before_stop

    async def close_gap_repair(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await gap_repair.close()  # its side consumer, started by the first gap or tail probe

    app.on_before_shutdown.connect(close_gap_repair)
    install_agents(app, runtime, events, settings)

    async def flush_account_log() -> None:  # the held-back 'invalid account record' lines, once due
        directory.flush_log()

    app.timer(interval=settings.late_event_log_interval_seconds, name="account-log")(flush_account_log)
    register_web(app, settings=settings)  # /metrics (Faust's sensor + preempt_*), /healthz, /readyz, broker watch
    _register_watchdog(app, runtime, settings)
    return app


def _expose_series(engine: RuleEnginePort[Any, Any]) -> None:
    """A 0 for every outcome and reason the worker counts, and for the alerts of each rule it runs, so the first
    one shows in increase() and rate()."""
    ruleset = getattr(engine, "rules", None)  # the real engine's RuleSet (a test's fake engine has none)
    alert_rules = [(rule.id, rule.severity) for rule in getattr(ruleset, "enabled", ())]
    quarantines = (STATE_UNREADABLE, STATE_UNWRITABLE, STATE_TOO_LARGE, EVALUATION_ERROR)
    expose_worker_series(
        outcomes=[*(outcome.value for outcome in EventOutcome), "dead_lettered", FORWARDED],
        dead_letter_reasons=[
            *(reason.value for reason in Reason),
            PROCESSING_ERROR,
            ALERT_BUILD_FAILED,
            ALERT_TOO_LARGE,
            INVALID_ACCOUNT,
            *quarantines,
        ],
        quarantine_reasons=quarantines,
        skip_reasons=SKIP_REASONS,
        alert_rules=alert_rules,
    )


def _register_watchdog(app: faust.App, runtime: WorkerRuntime, settings: Settings) -> None:
    """The liveness watchdog (``streams.worker.liveness``): a timer, and its stalls on ``/readyz``."""
    watchdog = PartitionWatchdog(
        app,
        runtime.events_topic,
        settings.partition_stall_seconds,
        processed=lambda: runtime.processed_offsets,
        ready=lambda: runtime.recovered,
        settle=runtime.settle_recordless_tail,
        broker_down=lambda: broker_unreachable(app),
    )
    app.timer(interval=watchdog.interval_s, name="partition-watchdog")(watchdog.check)
    # A changelog deleted under the worker stops it; the alerts or dead-letter topic missing makes it not
    # ready, named (the output waits behind the record it cannot write, and goes out once the topic is back).
    names = TopicNames.from_settings(settings)
    missing = watch_topics(
        app,
        changelogs=[t.name for t in changelog_topics(app, settings.topic_partitions)],
        written=[names.alerts, names.events_dlq],
        reason_for=lambda topic: (
            dead_letter_reason(topic, settings)
            if topic == names.events_dlq
            else written_reason(topic, settings.topic_partitions, "preempt worker")
        ),
        stop=runtime.stop,
        confirm_s=confirm_seconds(settings),
    )
    register_liveness(app, watchdog.stalled, lambda: (*runtime.missing_events_topic(), *watchdog.unreadable()), missing)
