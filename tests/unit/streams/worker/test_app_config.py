"""The rules app's Faust configuration: built-in table/router pages off, Kafka security from settings."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
from faust.auth import SASLCredentials
from prometheus_client import REGISTRY

from streams.runtime.metrics import expose_worker_series
from streams.runtime.settings import Settings
from streams.worker.app import create_app, load_engine


def test_rules_app_serves_no_table_or_router_pages_and_uses_the_kafka_credentials(tmp_path: Path) -> None:
    """Faust's /table and /router pages are off; SASL_SSL settings become the app's broker credentials."""
    settings = Settings(
        topic_prefix=f"ut{uuid.uuid4().hex[:8]}",
        store="memory://",
        data_dir=tmp_path,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="preempt",
        kafka_sasl_password="s3cret",
    )
    app = create_app(settings)
    assert app.conf.web_tables_enabled is False
    assert app.conf.web_router_enabled is False
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.username, credentials.mechanism.value) == ("preempt", "SCRAM-SHA-512")
    assert credentials.ssl_context is not None


def test_worker_engine_writes_the_state_version_of_the_settings() -> None:
    """PREEMPT_STATE_WRITE_VERSION=1 makes the worker write the encoding older workers read; 2 by default."""
    pack = Path(__file__).resolve().parents[4] / "rules" / "packs" / "default"
    for settings, version in ((Settings(rules_path=pack), 2), (Settings(rules_path=pack, state_write_version=1), 1)):
        engine, _ = load_engine(settings)
        assert orjson.loads(engine.dumps(engine.new_state()))["v"] == version


def test_rules_app_listens_on_the_web_host_only(tmp_path: Path) -> None:
    """The worker's web server binds PREEMPT_WEB_HOST (127.0.0.1 by default), not Faust's all-interfaces default."""
    base = {"topic_prefix": f"ut{uuid.uuid4().hex[:8]}", "store": "memory://", "data_dir": tmp_path}
    assert create_app(Settings(**base)).conf.web_bind == "127.0.0.1"
    assert create_app(Settings(**base, web_host="0.0.0.0")).conf.web_bind == "0.0.0.0"


def test_rules_app_takes_an_ipv6_web_host(tmp_path: Path) -> None:
    """PREEMPT_WEB_HOST=:: (every interface of an IPv6 or dual-stack pod) or ::1 is listened on as given and
    written in brackets in the app's URL; Faust's settings failed on it with a ValueError traceback."""
    base = {"topic_prefix": f"ut{uuid.uuid4().hex[:8]}", "store": "memory://", "data_dir": tmp_path}
    for given, bind in (("::", "::"), ("::1", "::1"), ("[::1]", "::1")):
        conf = create_app(Settings(**base, web_host=given)).conf
        assert (conf.web_bind, str(conf.canonical_url)) == (bind, f"http://[{bind}]:6066")


def test_rules_app_keeps_its_rocksdb_files_per_app_and_brokers(tmp_path: Path) -> None:
    """The same PREEMPT_DATA_DIR used against another broker or topic prefix gives the worker another
    RocksDB folder, so it never trusts offsets and state from a changelog that is not its own."""
    base = {"store": "rocksdb://", "data_dir": tmp_path}
    local = create_app(Settings(**base, topic_prefix="acme", broker="kafka://127.0.0.1:9092"))
    managed = create_app(Settings(**base, topic_prefix="acme", broker="kafka://kafka.example:9093"))
    other_prefix = create_app(Settings(**base, topic_prefix="beta", broker="kafka://127.0.0.1:9092"))
    dirs = {Path(app.conf.datadir) for app in (local, managed, other_prefix)}
    assert len(dirs) == 3
    assert all(d.parent.parent == tmp_path for d in dirs)
    assert Path(local.conf.datadir) == tmp_path / "acme-rules@127.0.0.1_9092" / "port-6066"


def test_two_rules_workers_on_one_machine_keep_their_rocksdb_files_apart(tmp_path: Path) -> None:
    """Two workers with the same settings but their own web ports get their own RocksDB folders, both
    made at start (sharing one, the second crashed on RocksDB's lock of a partition both were given)."""
    base = {"store": "rocksdb://", "data_dir": tmp_path / "data", "topic_prefix": "acme"}
    first = create_app(Settings(**base, worker_web_port=6066))
    second = create_app(Settings(**base, worker_web_port=6166))
    assert first.conf.datadir != second.conf.datadir
    for app in (first, second):
        Path(app.conf.datadir).mkdir()  # what Faust does at start: the last level only


def test_rules_app_data_dir_may_not_exist_yet(tmp_path: Path) -> None:
    """A PREEMPT_DATA_DIR that does not exist yet is created (Faust itself makes only the last level)."""
    data_dir = tmp_path / "not" / "yet"
    app = create_app(Settings(topic_prefix="acme", store="memory://", data_dir=data_dir))
    assert data_dir.is_dir()
    Path(app.conf.datadir).mkdir(exist_ok=True)  # what Faust does at start


def test_rules_app_gives_its_outcomes_and_reasons_a_zero_series_at_start(tmp_path: Path) -> None:
    """Every event outcome, dead-letter reason and quarantine reason has a series before its first count, so
    Prometheus's increase() and rate() (and the alert rules on them) see the first one."""
    create_app(Settings(topic_prefix=f"ut{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path))
    for outcome in ("accepted", "duplicate", "late", "dead_lettered", "forwarded"):
        assert REGISTRY.get_sample_value("preempt_events_total", {"outcome": outcome}) is not None
    reasons = ("invalid_json", "number_out_of_range", "processing_error", "alert_build_failed", "state_too_large")
    for reason in (*reasons, "invalid_account"):
        assert REGISTRY.get_sample_value("preempt_events_dead_lettered_total", {"reason": reason}) is not None
    for reason in ("state_unreadable", "state_unwritable", "state_too_large", "evaluation_error"):
        assert REGISTRY.get_sample_value("preempt_accounts_quarantined_total", {"reason": reason}) is not None


def test_rules_app_gives_each_rule_an_alerts_series_at_zero_with_its_severity(tmp_path: Path) -> None:
    """preempt_alerts_total{rule,severity} exists at 0 for every rule the worker runs before its first alert: born
    at 1, a rule's first alert was not seen by increase() (the dashboard's alerts by rule, any alert rule on it)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "logins.yaml").write_text(
        "id: unit-logins-any\nkind: any\ntitle: a login\nseverity: info\npriority: 7\nmatch: {event: Logged In}\n"
    )
    (rules / "invoices.yaml").write_text(
        "id: unit-invoices-none\nkind: inactivity\ntitle: no invoice\nseverity: critical\npriority: 1\n"
        "match: {event: Invoice Paid}\nafter: 30d\n"
    )
    settings = Settings(
        topic_prefix=f"ut{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path / "data", rules_path=rules
    )
    create_app(settings)
    for rule, severity in (("unit-logins-any", "info"), ("unit-invoices-none", "critical")):
        assert REGISTRY.get_sample_value("preempt_alerts_total", {"rule": rule, "severity": severity}) == 0


def test_expose_worker_series_makes_zero_series() -> None:
    """The helper makes each named series at 0 without counting anything."""
    expose_worker_series(["unit-outcome"], ["unit-reason"], ["unit-quarantine"])
    assert REGISTRY.get_sample_value("preempt_events_total", {"outcome": "unit-outcome"}) == 0.0
    assert REGISTRY.get_sample_value("preempt_events_dead_lettered_total", {"reason": "unit-reason"}) == 0.0
    assert REGISTRY.get_sample_value("preempt_accounts_quarantined_total", {"reason": "unit-quarantine"}) == 0.0


def test_rules_agent_keeps_its_queue_when_recovery_resumes_the_flow(tmp_path: Path) -> None:
    """Events waiting in the agent's queue survive the flow resume that ends recovery (Faust's resume
    emptied it: the events were never evaluated); revocation's clear still empties it."""
    app = create_app(Settings(topic_prefix=f"ut{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path))
    [agent] = app.agents.values()
    agent.channel.queue.put_nowait("record")
    app.flow_control.suspend()
    app.flow_control.resume()
    assert agent.channel.queue.qsize() == 1
    app.flow_control.clear()
    assert agent.channel.queue.qsize() == 0


def test_rules_app_tables_bound_their_rocksdb_memory(tmp_path: Path) -> None:
    """Every table of the rules worker opens its RocksDB partition databases with PREEMPT_TABLE_WRITE_BUFFER_BYTES
    write buffers (2 at most) and a PREEMPT_TABLE_BLOCK_CACHE_BYTES cache, not Faust's 64 MiB x 3 and 2 GiB: the
    write buffers hold every state written until full, so the worker's memory grew with each write for hours."""
    settings = Settings(
        topic_prefix=f"ut{uuid.uuid4().hex[:8]}",
        store="rocksdb://",
        data_dir=tmp_path,
        table_write_buffer_bytes=3 * 1024 * 1024,
        table_block_cache_bytes=5 * 1024 * 1024,
    )
    app = create_app(settings)
    names = sorted(app.tables)
    assert len(names) == 4, names
    for name in names:
        options = app.tables[name].data.rocksdb_options  # the store Faust opens each partition's database with
        assert (options.write_buffer_size, options.max_write_buffer_number) == (3 * 1024 * 1024, 2), name
        assert options.block_cache_size == 5 * 1024 * 1024, name
    # the defaults: 4 MiB x 2 + 4 MiB per partition database
    default = create_app(Settings(topic_prefix=f"ut{uuid.uuid4().hex[:8]}", store="rocksdb://", data_dir=tmp_path))
    options = default.tables[names[0]].data.rocksdb_options
    assert (options.write_buffer_size, options.block_cache_size) == (4 * 1024 * 1024, 4 * 1024 * 1024)
