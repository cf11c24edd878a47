"""Process settings from the environment (``PREEMPT_`` prefix), typed and validated at start."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    FilePath,
    SecretStr,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.email_address import sender_address
from schemas.errors import ConfigError
from schemas.secret_url import secret_http_url

# Faust's broker URLs name the transport: kafka:// (or its alias aiokafka://); Kafka clients want host:port.
_BROKER_SCHEME = re.compile(r"^(?:kafka|aiokafka)://", re.IGNORECASE)
_REPO_PACK = Path(__file__).resolve().parents[2] / "rules" / "packs" / "default"


def _topic_prefix(value: str) -> str:
    """Kafka's topic name grammar (the broker refused another prefix at topic creation: 'cannot reach Kafka').
    A trailing ``.`` is the separator written out (``staging.``): topics are ``staging.events``, not
    ``staging..events``."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", value) or not value.rstrip("."):
        raise ValueError("a topic prefix is 1-200 of the characters Kafka allows in topic names: A-Z a-z 0-9 . _ -")
    return value.rstrip(".")


def _store(value: str) -> str:
    """The table stores Preempt runs on (Faust also names ones it cannot use here)."""
    if value.strip().lower() not in ("rocksdb://", "memory://"):
        raise ValueError("the store is rocksdb:// (production) or memory:// (tests, the demo)")
    return value.strip().lower()


def _web_host(value: str) -> str:
    """The interface the web ports listen on: a host name or an IP address, IPv6 with or without brackets. Empty
    was a Faust traceback at start ("host is required"), and an IPv6 address one too (Faust writes it into a
    URL without brackets)."""
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1].strip()
    if not host or any(c.isspace() or c in "/[]@?#" for c in host):
        raise ValueError(
            "an interface address or host name: 127.0.0.1 (the default), 0.0.0.0 or :: (every interface), "
            "or this machine's address"
        )
    return host


def _web_api_url(value: str) -> str:
    """Slack's Web API base: an http(s) URL with a host (a typo made every bot message fail at delivery)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http(s) URL with a host, e.g. https://slack.com/api/ (the default)")
    return value.strip()


def _filled_secret(value: SecretStr) -> SecretStr:
    """A secret set to nothing (``PREEMPT_SLACK_BOT_TOKEN=`` in an env file) is refused: taken as set, the
    empty bot token made every Slack post fail (not_authed), and every alert was dead-lettered; an empty signing
    secret answered every Slack button 503 "interactivity is not configured"."""
    if not value.get_secret_value().strip():
        raise ValueError("it is set but empty: give the value, or unset it")
    return value


_CLOSED_FOLDER = "(a folder on the way is closed to this user)"


def _given_path(value: object) -> object:
    """An empty path setting is ``Path("")``, which is ``.``: ``PREEMPT_RULES_PATH=`` (a variable a script
    left empty) loaded every rule file under the working folder, and ``PREEMPT_DATA_DIR=`` put the state there."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("an empty path means the working folder")
    return value


GivenPath = Annotated[Path, BeforeValidator(_given_path)]


def _data_dir(value: Path) -> Path:
    """A folder, or a path where one can be made (RocksDB writes a folder per app in it)."""
    try:
        conflict = value.exists() and not value.is_dir()
    except OSError as exc:  # in a folder without the x permission: a PermissionError traceback
        raise ValueError(f"cannot look at {value}: {exc.strerror or exc} {_CLOSED_FOLDER}") from None
    if conflict:
        raise ValueError(f"{value} exists and is not a folder; point it at a folder (it is made when missing)")
    return value


def _looked_at(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """pydantic's FilePath check, with a path it may not even look at (a folder on the way without the x
    permission) as a setting error instead of the PermissionError traceback it raised."""
    try:
        return handler(value)
    except OSError as exc:
        raise ValueError(f"cannot look at {value}: {exc.strerror or exc} {_CLOSED_FOLDER}") from None


# An existing file, as FilePath, that also reports a path this user may not look at as the setting's error.
ExistingFile = Annotated[FilePath, WrapValidator(_looked_at)]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


_LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # the stdlib's own aliases


def _log_level(value: str) -> str:
    """A log level name in any case, as its upper-case name (a typo would otherwise mean INFO)."""
    level = value.strip().upper()
    level = _LOG_LEVEL_ALIASES.get(level, level)
    if level not in LOG_LEVELS:
        raise ValueError(f"not a log level: use one of {', '.join(LOG_LEVELS)} (any case)")
    return level


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _cors_origin(value: str) -> str:
    """A browser origin as browsers send it in ``Origin`` (``https://app.example.com``), which the CORS check
    compares exactly: ``https://app.example.com/`` (a copied URL), ``HTTPS://App.example.com`` or ``…:443``
    never matched, and analytics.js in the browser was refused without a word on the server."""
    text = value.strip()
    if text == "*":
        raise ValueError("'*' is not supported: list the origins of your app, e.g. [\"https://app.example.com\"]")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin: write scheme://host[:port], e.g. https://app.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r} is not an origin: only scheme://host[:port], without a path")
    scheme = parts.scheme.lower()
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{scheme}://{host}" + ("" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}")


# Far above any real topic; a backtest keeps a clock per partition, and a typo of 10^8 took minutes and gigabytes.
MAX_TOPIC_PARTITIONS = 100_000


class Settings(BaseSettings):
    """Everything a worker, notifier or CLI command reads from its environment.

    ``PREEMPT_BROKER=kafka://10.0.0.5:9092 preempt worker`` — every field maps to
    ``PREEMPT_<FIELD>`` (upper case).
    """

    # allow_inf_nan: "inf" seconds overflowed where they became milliseconds (a traceback), "nan" passed some bounds.
    # hide_input_in_errors: a check across fields failed with every input in its message, the SASL password
    # too, in the traceback of whoever builds Settings() in their own code (the SDK's from_settings); the
    # CLI's one-line errors read each error's input itself and never show a secret's.
    model_config = SettingsConfigDict(
        env_prefix="PREEMPT_", extra="ignore", frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )

    # Kafka
    broker: str = Field("kafka://127.0.0.1:9092", description="Faust broker URLs, kafka://host:port[;…]")
    topic_prefix: Annotated[str, AfterValidator(_topic_prefix)] = Field(
        "preempt", description="prefix of every topic name"
    )
    # 12: the most rules workers one deployment can run without re-partitioning (a partition is
    # read by one worker), and 1, 2, 3, 4, 6 or 12 workers get equal shares. docs/pipeline.md, "Sizing".
    topic_partitions: int = Field(
        12, ge=1, le=MAX_TOPIC_PARTITIONS, description="partitions of the topics Preempt creates"
    )
    topic_replication: int = Field(
        1, ge=1, description="replication factor of the topics Preempt creates (3 on a production cluster)"
    )
    store: Annotated[str, AfterValidator(_store)] = Field(
        "rocksdb://", description="Faust table store: rocksdb:// (production) or memory://"
    )
    data_dir: Annotated[GivenPath, AfterValidator(_data_dir)] = Field(
        Path(".preempt-data"), description="Faust data dir (RocksDB files, one folder per app, brokers and web port)"
    )
    # Faust's RocksDB defaults (64 MiB write buffers, up to 3 of them, and a 2 GiB block cache, per partition
    # database of each table) let a long-running worker's memory grow by every byte of state it writes, for
    # hours, toward gigabytes: the soak (make soak) measured the rules worker's RSS climbing as fast as its
    # write-ahead logs (streams/runtime/table_store.py).
    table_write_buffer_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        le=256 * 1024 * 1024,
        description="worker and notifier, rocksdb:// store: bytes of writes each partition database of a table "
        "holds in memory before writing them to a file (at most 2 such buffers per database)",
    )
    table_block_cache_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024 * 1024,
        le=4 * 1024 * 1024 * 1024,
        description="worker and notifier, rocksdb:// store: bytes of each partition database's read cache (the "
        "rules worker's decoded states are cached before it: PREEMPT_WORKER_STATE_CACHE_ACCOUNTS)",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="worker and notifier: Faust's guarantee; exactly_once was measured and is not the default "
        "(docs/pipeline.md)",
    )
    # CLI commands ask the broker for metadata once, bounded by this, before they start work, so an
    # unreachable broker is one clear line within seconds (streams/runtime/broker_probe.py).
    broker_probe_seconds: float = Field(5.0, gt=0, description="how long commands wait for a broker to answer")
    # A changelog topic missing while the consumer group has read records of its source topic: the worker
    # and the notifier refuse to recreate it empty unless this is set (streams/runtime/missing_topics.py).
    accept_lost_state: bool = Field(
        False,
        description="worker and notifier: recreate missing changelog topics empty although state was built "
        "(that state is lost); set it for one start, then remove it",
    )
    allow_untested_faust: bool = Field(
        False,
        description="start even on faust-streaming/mode versions streams/runtime/faust_compat.py was not tested on",
    )
    # Kafka security, for every client (both apps, the SDK, the CLI, ingest, simulate, bench): turned
    # into client configuration in ONE place, streams/runtime/kafka_clients.py; documented in
    # docs/operations.md "Connecting to a secured Kafka". Checked together by _check_kafka_security.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to the brokers; a managed Kafka usually wants SASL_SSL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (required with SASL_PLAINTEXT / SASL_SSL)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name (with SASL_PLAINTEXT / SASL_SSL)")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret, never logged)")
    kafka_ssl_ca_file: ExistingFile | None = Field(
        None, description="CA bundle (PEM) that signed the brokers' certificates; None = the system CAs"
    )
    kafka_ssl_cert_file: ExistingFile | None = Field(None, description="client certificate (PEM), for mutual TLS")
    kafka_ssl_key_file: ExistingFile | None = Field(None, description="private key (PEM) of the client certificate")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="password of an encrypted client key")

    # Events
    max_event_bytes: int = Field(32 * 1024, ge=256, description="largest encoded event accepted (too_large above)")
    max_future_skew_seconds: float = Field(300.0, ge=0, description="reject timestamps further in the future")
    dedup_horizon_seconds: float = Field(
        24 * 3600.0, ge=0, description="how long an event_id is remembered per account to drop duplicates"
    )
    state_write_version: int = Field(
        2,
        ge=1,
        le=2,
        description="account state encoding the worker writes; 1 while rolling out the first release with "
        "typed rule state, so that workers of the release before it can still read what it writes",
    )
    # Failure policy (docs/pipeline.md): an account state larger than this is quarantined, never
    # written (Kafka's default record limit is 1 MB; the rest is left for key and headers).
    # At most 950,000: Faust's producer refuses records over 1,000,000 bytes (producer_max_request_size),
    # and a quarantined state's dead letter carries up to this many bytes plus headers.
    max_state_bytes: int = Field(
        900 * 1024,
        ge=1024,
        le=950_000,
        description="largest account state the rules worker writes; bigger ones are quarantined",
    )

    # Rules
    rules_path: GivenPath = Field(_REPO_PACK, description="rule file or directory")
    allowed_lateness_seconds: float = Field(5.0, ge=0, description="how far out of order events may arrive")
    event_time_only: bool = Field(False, description="only the watermark moves the clock (replays, parity)")
    # Live event→alert latency is allowed lateness + up to one tick: 0.2 s keeps p99 within lateness
    # + 0.5 s (`make bench`); a tick with nothing due costs one pass over the assigned partitions.
    clock_tick_seconds: float = Field(0.2, gt=0, description="rules worker: how often partition clocks advance")
    clock_future_tolerance_seconds: float = Field(
        1.0, ge=0, description="live mode: how far a partition's clock may run ahead of the wall clock"
    )
    clock_outage_grace_seconds: float = Field(
        60.0,
        ge=0,
        description="live mode: how long a partition's clock stays put after the broker did not answer for longer "
        "than the allowed lateness, so the events producers buffered meanwhile are not late (0: off)",
    )
    late_event_log_interval_seconds: float = Field(
        10.0,
        gt=0,
        description="at most one 'late event ignored' WARN per partition, one 'event dead-lettered' per process, "
        "per interval",
    )
    worker_batch_size: int = Field(
        2000, ge=1, description="rules worker: most records per batch (state is written once per account per batch)"
    )
    worker_batch_seconds: float = Field(
        0.2, gt=0, description="rules worker: longest wait to fill a batch before processing what arrived"
    )
    # Kafka Streams' commit.interval.ms trade-off: a live poll holds a few hundred records and
    # touches most accounts, and each touched state (its buffered events and dedup ids) was
    # serialized and written per batch (docs/pipeline.md, live latency). The states stay dirty in
    # the cache meanwhile, their writes spread over the interval; the batches' offsets are acked
    # only once their states are written. 3 s: about Faust's own commit interval (2.8 s), so what
    # a crash re-reads grows from ≤ 3.8 s to ≤ 5.8 s of events, for a third of the state writes.
    worker_state_write_interval_seconds: float = Field(
        3.0,
        ge=0,
        le=30,
        description="rules worker: each account's state is written about this often (the writes spread "
        "over the interval); offsets are acked after the write (0: after every batch)",
    )
    worker_batched_poll: bool = Field(
        True,
        description="rules worker: each poll's events go to the processor as one batch (false: per-record path)",
    )
    worker_session_timeout_seconds: float = Field(
        60.0,
        ge=6,
        description="rules worker: consumer-group session timeout (how soon a dead worker's partitions move on)",
    )
    # Liveness watchdog (streams/worker/liveness.py): an assigned partition with lag whose committed and
    # processed offsets do not move for this long is reported stalled (log, metric, /readyz).
    partition_stall_seconds: float = Field(
        120.0, gt=0, description="worker and notifier: lag without progress for this long marks a partition stalled"
    )
    # Faust's stop waits without a limit for each agent's record (streams/runtime/stop_deadline.py):
    # one stuck behind a deleted dead-letter topic kept a SIGTERMed process up for minutes. Below the
    # Kubernetes manifests' 60 s grace period, so the ERROR line comes before the kubelet's SIGKILL.
    # At least 25 s: the notifier waits up to 20 s for its deliveries in flight and the worker up to 15 s
    # for its state write as the stop begins (tests/unit/deploy/test_stop_grace.py); at most an hour.
    stop_timeout_seconds: float = Field(
        45.0,
        ge=25,
        le=3600,
        description="worker and notifier: a graceful stop still running this long after SIGTERM is "
        "logged (ERROR) and the process exits with status 1",
    )
    # Broker watch (streams/runtime/ops_web.py): the Faust apps' clients retry an unreachable broker
    # for ever; once no bootstrap server has answered for this long, /readyz says so (503).
    broker_unreachable_seconds: float = Field(
        15.0, gt=0, description="worker, notifier, ingest: /readyz answers 503 once no broker answered for this long"
    )
    # A state write is one account's state (median ~4 KB, tens of KB for busy accounts); Kafka's
    # default 16 KB producer batch holds two or three, so a batch's writes took hundreds of requests.
    worker_producer_batch_bytes: int = Field(
        256 * 1024, ge=16 * 1024, description="rules worker: producer batch size per partition (state writes, alerts)"
    )
    # A batch hands its alerts, dead letters and state writes to the producer in one synchronous burst
    # and then awaits their delivery (twice: alerts before states, states before the partition clocks),
    # so a linger only adds to each batch's waits (make bench: docs/pipeline.md, cost per event).
    worker_producer_linger_seconds: float = Field(
        0.001, ge=0, le=1, description="rules worker: producer linger (how long a batch of sends waits for more)"
    )
    # Faust's aiokafka consumer long-polls the broker for 1.5 s (``fetch_max_wait_ms``, fixed in
    # Faust) and aiokafka keeps one fetch per broker in flight. A fetch sent for the partitions
    # that are caught up (the accounts table, changelogs) while the events partitions still hold
    # unread records then blocks their next fetch for up to 1.5 s once they are read: a replay or a
    # catch-up spent ~1 s of every ~3-5 s idle that way (docs/pipeline.md, cost per event).
    worker_fetch_max_wait_seconds: float = Field(
        0.1,
        gt=0,
        le=1.5,
        description="rules worker: longest a fetch waits at the broker for new records (idle workers fetch this often)",
    )
    # Partitions added to the events topic reach a running worker with its next metadata refresh; the
    # worker then stops with one line (streams/runtime/copartitioning.py). Faust's default is 5 minutes,
    # for its consumer and its producer alike (streams/runtime/kafka_clients.metadata_max_age_ms).
    metadata_max_age_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="every producer and consumer (worker, notifier, ingest, publish, simulate): how often it refreshes "
        "topic metadata (sees added partitions, a topic deleted or created again)",
    )
    # A poll's events stay alive until its accounts are advanced; with Python's 700 the young
    # generation was collected ~400 times per 84,000 events and full collections walked the whole
    # process every ~2 polls (streams/worker/gc_tuning.py; docs/pipeline.md, cost per event).
    worker_gc_threshold: int = Field(
        50_000,
        ge=0,
        description="rules worker: allocations between young-generation garbage collections (0: Python's defaults)",
    )
    # Decoded states cost ~5x their serialized size (~20 KB per account with the default pack);
    # states beyond this many are decoded again from the table when their account comes back.
    worker_state_cache_accounts: int = Field(
        25_000, ge=100, description="rules worker: most decoded account states kept in memory between batches"
    )

    # Web (metrics, health, HTTP ingest)
    web_host: Annotated[str, AfterValidator(_web_host)] = Field(
        "127.0.0.1", description="interface the web ports (probes, /metrics, ingest) listen on"
    )
    worker_web_port: int = Field(6066, ge=1, le=65535, description="rules worker: /metrics, /healthz, /readyz")
    notifier_web_port: int = Field(6067, ge=1, le=65535, description="notifier: probes, /metrics, /slack/actions")
    ingest_api_keys: tuple[SecretStr, ...] = Field((), description="sha256 hex digests of accepted API keys")
    ingest_hmac_secret: SecretStr | None = Field(
        None, description="ingest: shared secret that turns request signing (HMAC) on; None = off"
    )
    # Unbounded, 0 or a negative number started an ingest that answered every request 413 (which the SDKs
    # never retry: each batch dropped) while /readyz said ready.
    ingest_max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="most bytes of a request body to /v1/events and the single-call tracking routes, as sent or "
        "inflated (413 above)",
    )
    # rudder-sdk-python fills a batch up to 4 MB of calls plus the one that passes it (each call up to
    # 4 MB) and drops a batch answered 413 without retrying it: the batch routes read up to this much
    # (docs/events.md, "Body size"). Parsing costs up to ~9x the body (measured), hence the slots below.
    ingest_max_batch_body_bytes: int = Field(
        8 * 1024 * 1024 + 64 * 1024,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="most bytes of a tracking-API batch body (/v1/batch, /v1/import, /v1/b), as sent or inflated "
        "(413 above); at least PREEMPT_INGEST_MAX_BODY_BYTES",
    )
    ingest_large_bodies_in_flight: int = Field(
        1,
        ge=1,
        le=64,
        description="batch bodies over PREEMPT_INGEST_MAX_BODY_BYTES read and parsed at once; one more is "
        "answered 429 with Retry-After (the SDKs retry it)",
    )
    # The one large-body slot was held for as long as a sender kept its connection open without sending
    # the rest of its body: one stalled upload made every other sender's large batch 429 "busy".
    ingest_body_read_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="longest time a request body may take to arrive, from its headers on; a slower or stalled "
        "one is answered 408 and frees its large-body slot (the SDKs give up after 10-15 s)",
    )
    # A parse is one long C call (orjson, json) for millions of tiny values: in a thread it still held the
    # interpreter lock, and the event loop with it, for seconds (streams/ingest/parse_lanes.py).
    ingest_parse_large_bodies_in_processes: bool = Field(
        True,
        description="parse each batch body over PREEMPT_INGEST_MAX_BODY_BYTES in a process of its own (forked from "
        "a fork server), so /healthz and other requests never wait for it; false: in a thread",
    )
    ingest_port: int = Field(
        6068,
        ge=0,
        le=65535,
        description="port of `preempt ingest` (/v1/events, the tracking API /v1/batch…, /metrics, /healthz)",
    )
    # Ingest hardening (docs/events.md): bounds on what one request may cost before and after auth.
    ingest_max_items: int = Field(1000, ge=1, description="most items in one ingest request (413 above)")
    ingest_max_shared_context_bytes: int = Field(
        8 * 1024, ge=0, description="most bytes of a batch's shared `context` (400 above); it is never copied whole"
    )
    # Off by default: the inflated size is bounded by ingest_max_body_bytes and inflated only after the
    # key, so a ratio bounds nothing more, while the SDKs' own batches (100 calls that carry the same
    # flags or settings object) inflate 100-200 times and were refused 413, which the SDKs never retry.
    ingest_max_gzip_ratio: float | None = Field(
        None, gt=1, description="most decompressed/compressed ratio of a gzip body (413 above); None: no ratio limit"
    )
    # Under the shortest request timeout of the SDKs (Analytics.NET: 5 s, @segment/analytics-node: 10 s),
    # or the SDK gives up first and never sees the 429's Retry-After (analytics-node then counts the
    # attempt against maxRetries and drops the batch sooner; a 429 it retries without counting).
    ingest_kafka_timeout_seconds: float = Field(
        4.0, gt=0, description="longest wait for Kafka's acks before answering 429 with Retry-After"
    )
    # Writes the broker refuses while it answers (events topic deleted, too few in-sync replicas, no
    # WRITE ACL) answer every request 429/503: /readyz says so (streams/ingest/write_health.py).
    ingest_writes_failing_seconds: float = Field(
        30.0,
        gt=0,
        description="ingest: writes to a topic (events, account updates, the account merger's) that all failed for "
        "this long (3 at least), with no success, make /readyz 503 'writes failing' until one succeeds",
    )
    ingest_account_catch_up_seconds: float = Field(
        30.0,
        gt=0,
        description="ingest: longest the account merger waits to have read preempt.accounts up to its end before "
        "a batch of group-call patches (a failed attempt, retried)",
    )
    ingest_replay_cache_size: int = Field(
        100_000, ge=1, description="signatures remembered inside the tolerance window to refuse replays"
    )
    # Tracking API (Segment/RudderStack SDKs): where the account id is, and what group traits mean.
    ingest_account_id_paths: tuple[str, ...] = Field(
        ("context.groupId", "traits.company.id"),
        description="dotted paths tried in order for a tracking call's account id (group calls: groupId)",
    )
    ingest_cors_origins: tuple[Annotated[str, AfterValidator(_cors_origin)], ...] = Field(
        (), description="browser origins allowed to call the tracking API (analytics.js); empty = none"
    )
    ingest_event_only_sources: tuple[str, ...] = Field(
        (),
        description="sources (names in PREEMPT_INGEST_API_KEYS) whose keys send events but never change account "
        "records: a browser's public key",
    )
    ingest_group_traits: dict[str, str] = Field(
        default_factory=dict, description="extra group trait → account field mappings, e.g. {'csm': 'owner.email'}"
    )

    # Notifier
    routes_path: GivenPath | None = Field(None, description="routing YAML; None = console preview receiver")
    slack_bot_token: Annotated[SecretStr, AfterValidator(_filled_secret)] | None = Field(
        None, description="Slack bot token (xoxb-…) for receivers with a channel (secret)"
    )
    slack_webhook_url: Annotated[SecretStr, AfterValidator(secret_http_url)] | None = Field(
        None,
        description="Slack incoming-webhook URL, for entries without a channel (any, without a bot token) and "
        "without a webhook_url of their own (secret)",
    )
    slack_api_url: Annotated[str, AfterValidator(_web_api_url)] = Field(
        "https://slack.com/api/", description="Slack Web API base URL (a proxy or a test server)"
    )
    slack_signing_secret: Annotated[SecretStr, AfterValidator(_filled_secret)] | None = Field(
        None, description="Slack app signing secret; verifies /slack/actions button presses (secret)"
    )
    smtp_host: str = Field("127.0.0.1", min_length=1, description="SMTP relay host for email receivers")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP relay port")
    smtp_username: str | None = Field(None, description="SMTP login user; None = no login")
    smtp_password: SecretStr | None = Field(None, description="SMTP login password (secret)")
    smtp_starttls: bool = Field(False, description="upgrade the SMTP connection with STARTTLS")
    smtp_use_tls: bool = Field(False, description="implicit TLS from the first byte (port 465); wins over STARTTLS")
    smtp_allow_plaintext_auth: bool = Field(
        False,
        description="allow SMTP login without STARTTLS or implicit TLS (the password travels in clear text)",
    )
    smtp_from: Annotated[str, AfterValidator(sender_address)] = Field(
        "Preempt <preempt@localhost>", description="sender (From:) of alert emails"
    )
    delivery_give_up_seconds: float = Field(
        3600.0, gt=0, description="how long retryable delivery failures are retried before dead-lettering"
    )
    delivery_retry_initial_seconds: float = Field(
        1.0, gt=0, description="first retry backoff without a Retry-After hint (doubles, with jitter)"
    )
    delivery_retry_max_seconds: float = Field(300.0, gt=0, description="cap of the retry backoff")
    delivery_failing_seconds: float = Field(
        300.0,
        gt=0,
        description="notifier: a target whose every delivery attempt failed for this long (3 at least), with no "
        "success, makes /readyz 503 'deliveries failing' until one succeeds",
    )
    delivery_log_retention_seconds: float = Field(
        7 * 24 * 3600.0, gt=0, description="how long delivery records are kept to refuse re-sends"
    )
    inhibit_horizon_seconds: float = Field(
        3600.0, gt=0, description="how long an alert the notifier received counts as active for inhibit_rules"
    )
    notifier_max_pending_deliveries: int = Field(
        20_000,
        ge=1,
        description="notifier: at this many deliveries pending in memory (about 9 KB each) it stops reading new "
        "alerts until a tenth of them are settled; they wait in preempt.alerts (alerts/intake.py)",
    )
    notifier_commit_interval_seconds: float = Field(
        2.8, gt=0, description="how often the notifier commits the offsets of settled alerts (Faust's default)"
    )
    notifier_session_timeout_seconds: float = Field(
        60.0, ge=6, description="consumer-group session timeout: how soon a dead notifier's partitions move on"
    )
    smtp_ca_file: ExistingFile | None = Field(
        None, description="CA bundle (PEM) to verify the SMTP server's certificate; None = the system CAs"
    )

    # Logs
    log_format: Literal["json", "console"] = Field(
        "json", description="json: one JSON object a line on stderr (production); console: for people"
    )
    # Case-insensitive (``debug`` = ``DEBUG``); anything else was silently read as INFO.
    log_level: Annotated[str, AfterValidator(_log_level)] = Field(
        "INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)"
    )

    @model_validator(mode="after")
    def _check_broker_has_no_credentials(self) -> Settings:
        """Credentials copied into the address (``user:password@host:port``, as service URIs write them)
        are refused without showing them: a Kafka address takes none, and the entry was taken for a host
        name, so the password ended up in "cannot reach Kafka at …" lines, readiness reasons and paths."""
        servers = self.bootstrap_servers
        if not any("@" in server for server in servers):
            return self
        without = ";".join(server.rpartition("@")[2] for server in servers)
        raise ValueError(
            "PREEMPT_BROKER holds credentials before '@' (not shown); a Kafka address takes none: write "
            f"PREEMPT_BROKER=kafka://{without} and put them in PREEMPT_KAFKA_SASL_USERNAME and "
            "PREEMPT_KAFKA_SASL_PASSWORD (with PREEMPT_KAFKA_SECURITY_PROTOCOL=SASL_SSL and "
            "PREEMPT_KAFKA_SASL_MECHANISM)"
        )

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        """One clear error for a security set-up that cannot work (or would silently not be used)."""
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol.endswith("SSL")
        if sasl:
            missing = [
                f"PREEMPT_KAFKA_{name.upper()}"
                for name, value in (
                    ("sasl_mechanism", self.kafka_sasl_mechanism),
                    ("sasl_username", self.kafka_sasl_username),
                    ("sasl_password", self.kafka_sasl_password),
                )
                if not (value.get_secret_value() if isinstance(value, SecretStr) else value)
            ]
            if missing:
                raise ValueError(f"PREEMPT_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        elif self.kafka_sasl_mechanism or self.kafka_sasl_username or self.kafka_sasl_password:
            raise ValueError(
                f"PREEMPT_KAFKA_SASL_* is set but PREEMPT_KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL; "
                "set it to SASL_SSL (or SASL_PLAINTEXT)"
            )
        ssl_files = self.kafka_ssl_ca_file or self.kafka_ssl_cert_file or self.kafka_ssl_key_file
        if not tls and (ssl_files or self.kafka_ssl_key_password):
            raise ValueError(
                f"PREEMPT_KAFKA_SSL_* is set but PREEMPT_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS; "
                "set it to SSL or SASL_SSL"
            )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError(
                "PREEMPT_KAFKA_SSL_CERT_FILE and PREEMPT_KAFKA_SSL_KEY_FILE go together: set both or neither"
            )
        if self.kafka_ssl_key_password is not None and self.kafka_ssl_key_file is None:
            raise ValueError("PREEMPT_KAFKA_SSL_KEY_PASSWORD is set without PREEMPT_KAFKA_SSL_KEY_FILE")
        return self

    @model_validator(mode="after")
    def _check_smtp_credentials_encrypted(self) -> Settings:
        """A password is never sent over a clear-text SMTP session unless that is explicitly allowed; the
        SMTP settings that cannot work together are refused here, not by the first email (which would
        retry them for an hour, or dead-letter every alert)."""
        if self.smtp_username and not (self.smtp_password and self.smtp_password.get_secret_value()):
            raise ValueError(
                "PREEMPT_SMTP_USERNAME is set without PREEMPT_SMTP_PASSWORD: every email would log in with an "
                "empty password; set the password too, or unset the username to send without logging in"
            )
        if self.smtp_username and not (self.smtp_use_tls or self.smtp_starttls) and not self.smtp_allow_plaintext_auth:
            raise ValueError(
                "PREEMPT_SMTP_USERNAME is set but neither PREEMPT_SMTP_STARTTLS nor PREEMPT_SMTP_USE_TLS is on: "
                "the password would travel unencrypted; turn one on "
                "(or set PREEMPT_SMTP_ALLOW_PLAINTEXT_AUTH=true for a trusted local relay)"
            )
        return self

    def smtp_warnings(self) -> list[str]:
        """SMTP settings that work, but likely not as meant: the notifier logs each at start (WARNING).
        Refusing them would stop notifiers that ran before (the shipped configmap turns STARTTLS on, and
        the documented Secret used to give a password alone)."""
        warnings = []
        if self.smtp_starttls and self.smtp_use_tls:
            warnings.append(
                "PREEMPT_SMTP_STARTTLS and PREEMPT_SMTP_USE_TLS are both on: USE_TLS wins (TLS from the first "
                "byte, port 465); turn STARTTLS off to say so, or USE_TLS off to upgrade a plain connection (587)"
            )
        if self.smtp_password and self.smtp_password.get_secret_value() and not self.smtp_username:
            warnings.append(
                "PREEMPT_SMTP_PASSWORD is set without PREEMPT_SMTP_USERNAME: emails are sent without logging in; "
                "set the username to log in, or unset the password"
            )
        return warnings

    def guarantee_warnings(self) -> list[str]:
        """What ``processing_guarantee`` does not give, logged at the start of a worker and a notifier
        (WARNING). ``exactly_once`` makes Faust's consumer read committed records only, but Preempt's
        outputs go outside Faust's transactions (docs/pipeline.md, "exactly_once today"): delivery stays
        at least once, with each ``alert_id`` delivered once by the notifier."""
        if self.processing_guarantee != "exactly_once":
            return []
        return [
            "PREEMPT_PROCESSING_GUARANTEE=exactly_once reads only committed records, but alerts, state and "
            "dead letters are not written in Kafka transactions: a crash can write an alert twice, as with "
            "at_least_once (the notifier delivers each alert_id once); see docs/pipeline.md, 'exactly_once today'"
        ]

    def topic(self, name: str) -> str:
        """Full topic name for a logical name: ``topic('events.dlq')`` → ``preempt.events.dlq``."""
        return f"{self.topic_prefix}.{name}"

    @property
    def web_url_host(self) -> str:
        """``web_host`` as the host part of a URL: an IPv6 address in brackets (``[::1]``)."""
        return f"[{self.web_host}]" if ":" in self.web_host else self.web_host

    @property
    def bootstrap_servers(self) -> list[str]:
        """The broker URL as a kafka-python/aiokafka bootstrap list."""
        hosts = (_BROKER_SCHEME.sub("", h.strip()) for h in self.broker.replace(";", ",").split(","))
        return [h for h in hosts if h]

    def app_data_dir(self, app_id: str, web_port: int) -> Path:
        """Faust's data dir for one process of the app ``app_id``:
        ``PREEMPT_DATA_DIR/<app id>@<bootstrap servers>/port-<web port>``.

        RocksDB keeps, per table partition, the changelog offset its state is at. Shared between two
        clusters (or topic prefixes), a worker moved to the other one would trust state and offsets
        that do not belong to it: Faust stops with a ``ConsistencyError`` when the offset is past the
        changelog's end, and silently keeps the other cluster's state when it is not. One folder per
        app and brokers makes a moved worker rebuild from its own changelog instead.

        Within it, one folder per web port: two workers of one app on one machine (the scale-out the
        docs describe: the same settings, another ``PREEMPT_WORKER_WEB_PORT``) each open every table
        partition they are given, active or standby, and RocksDB locks a partition's database for
        one process: with one shared folder the second worker crashed on the first partition both
        held ("While lock file: …/account-state-0.db/LOCK"). A port is taken by one process of the
        machine at a time and stays the same across restarts, so a restarted worker finds its files.
        """
        name = re.sub(r"[^A-Za-z0-9._@+-]", "_", f"{app_id}@{'+'.join(self.bootstrap_servers)}")
        if len(name) > 120:  # many brokers: keep the name short and still distinct
            name = f"{name[:100]}.{hashlib.sha256(name.encode()).hexdigest()[:16]}"
        return self.data_dir / name / f"port-{web_port}"

    def prepare_app_data_dir(self, app_id: str, web_port: int) -> tuple[Path, Path | None]:
        """:meth:`app_data_dir`, with its parents made (Faust makes only the last level), and the folder
        it moved there: the tables a version before the per-port folders kept in ``<app id>@<bootstrap
        servers>/v1`` move into the first process's own folder, so an upgrade with a persistent volume
        (compose) keeps its RocksDB files instead of rebuilding every table from the changelog and
        leaving them on disk. Only one process can take them (a rename); the others rebuild, as a new
        worker does. None when nothing was moved."""
        folder = self.app_data_dir(app_id, web_port)
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # read-only, not ours, or under a file: say which setting, not mkdir's traceback
            raise ConfigError(
                f"PREEMPT_DATA_DIR={self.data_dir}: cannot make the folder {folder.parent} "
                f"({exc.strerror or exc}); point PREEMPT_DATA_DIR at a folder this user can write"
            ) from None
        legacy = folder.parent / "v1"
        if folder.exists() or not legacy.is_dir():
            return folder, None
        folder.mkdir()
        try:
            legacy.rename(folder / "v1")
        except OSError:  # another process of the machine took them first
            return folder, None
        return folder, legacy
