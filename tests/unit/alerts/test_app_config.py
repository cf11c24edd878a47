"""The notifier app's Faust configuration: built-in table/router pages off, Kafka security from settings."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner
from faust.auth import SSLCredentials
from faust.streams import current_event
from faust.types import TP
from mode.utils.queues import FlowControlQueue
from prometheus_client import REGISTRY

from alerts.app import PartitionedWrites, create_app
from alerts.channels.console import ConsoleNotifier
from streams.runtime.settings import Settings


def test_notifier_app_serves_no_table_or_router_pages_and_uses_tls(tmp_path: Path) -> None:
    """Faust's /table and /router pages are off; an SSL protocol becomes TLS credentials for the app."""
    settings = Settings(
        topic_prefix=f"ut{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path, kafka_security_protocol="SSL"
    )
    app = create_app(settings)
    assert app.conf.web_tables_enabled is False
    assert app.conf.web_router_enabled is False
    assert isinstance(app.conf.broker_credentials, SSLCredentials)


def _settings(tmp_path: Path) -> Settings:
    return Settings(topic_prefix=f"ut{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path)


def test_notifier_app_registers_the_runtime_agents_task_and_pages(tmp_path: Path) -> None:
    """The alerts agent (concurrency 1), the feedback agent and the /slack/actions page are registered."""
    settings = _settings(tmp_path)
    app = create_app(settings)
    assert set(app.agents) == {"alerts.app.notify", "alerts.app.apply_feedback"}
    notify = app.agents["alerts.app.notify"]
    assert notify.concurrency == 1
    assert notify.channel.get_topic_name() == settings.topic("alerts")
    assert app.agents["alerts.app.apply_feedback"].channel.get_topic_name() == settings.topic("feedback")
    assert {"/slack/actions", "/metrics", "/healthz", "/readyz"} <= set(app.web.views)


async def test_rebalance_signals_reach_the_runtime(tmp_path: Path) -> None:
    """The dispatcher sends nothing before the first recovery; Faust's revoke signal pauses it, and it resumes
    at the end of the recovery that follows the assignment, not at the assignment: a delivery recorded while the
    delivery log's changelog is replayed could be overwritten, and its alert sent twice."""
    settings = _settings(tmp_path)
    app = create_app(settings)
    dispatcher = app.preempt_runtime.dispatcher
    app.consumer.assignment = lambda: {TP(settings.topic("alerts"), 0)}  # the consumer is not started here
    assert dispatcher.paused
    await app.on_rebalance_complete.send()
    assert not dispatcher.paused
    await app.on_partitions_revoked.send({TP(settings.topic("alerts"), 0)})
    assert dispatcher.paused
    await app.on_partitions_assigned.send({TP(settings.topic("alerts"), 0)})
    assert dispatcher.paused
    await app.on_rebalance_complete.send()
    assert not dispatcher.paused


def test_a_poll_fits_in_the_agent_buffer_past_its_high_pressure_mark(tmp_path: Path) -> None:
    """Faust stops fetching a partition once the agent's buffer passes its high-pressure mark but puts the rest
    of the poll in the buffer; a full buffer blocks its fetcher for every topic (alerts/intake.py)."""
    app = create_app(_settings(tmp_path))
    buffer, poll = app.conf.stream_buffer_maxsize, app.conf.broker_max_poll_records
    assert poll is not None
    assert math.floor(buffer / FlowControlQueue.pressure_high_ratio) + poll < buffer


def test_notifier_listens_on_the_web_host_only(tmp_path: Path) -> None:
    """The notifier's web server binds PREEMPT_WEB_HOST (127.0.0.1 by default), not Faust's all-interfaces default."""
    assert create_app(_settings(tmp_path)).conf.web_bind == "127.0.0.1"
    container = _settings(tmp_path).model_copy(update={"web_host": "0.0.0.0"})
    assert create_app(container).conf.web_bind == "0.0.0.0"


def test_notifier_takes_an_ipv6_web_host(tmp_path: Path) -> None:
    """PREEMPT_WEB_HOST=:: is listened on as given and written in brackets in the app's URL (a traceback before)."""
    conf = create_app(_settings(tmp_path).model_copy(update={"web_host": "::"})).conf
    assert (conf.web_bind, str(conf.canonical_url)) == ("::", f"http://[::]:{conf.web_port}")


def test_notifier_app_keeps_its_rocksdb_files_per_app_and_brokers(tmp_path: Path) -> None:
    """The notifier's delivery log on disk belongs to one app and one set of brokers: moved to another
    broker with the same PREEMPT_DATA_DIR it rebuilds from its own changelog."""
    first = create_app(Settings(topic_prefix="acme", data_dir=tmp_path, broker="kafka://127.0.0.1:9092"))
    moved = create_app(Settings(topic_prefix="acme", data_dir=tmp_path, broker="kafka://a:9093;kafka://b:9093"))
    assert Path(first.conf.datadir) == tmp_path / "acme-notify@127.0.0.1_9092" / "port-6067"
    assert Path(moved.conf.datadir) == tmp_path / "acme-notify@a_9093+b_9093" / "port-6067"


def test_notifier_gives_every_outcome_of_its_receiver_types_a_zero_series_at_start(tmp_path: Path) -> None:
    """Before any delivery, /metrics holds preempt_notifications_total at 0 for each receiver type and outcome
    (a series born at 1 shows no increase() in Prometheus, so the first dead letter would page no one)."""

    class PagerNotifier(ConsoleNotifier):
        receiver_type = "unit-pager"

    create_app(_settings(tmp_path), notifiers={"console": [PagerNotifier()]})
    for outcome in ("sent", "retried", "dead_lettered"):
        labels = {"receiver_type": "unit-pager", "outcome": outcome}
        assert REGISTRY.get_sample_value("preempt_notifications_total", labels) == 0.0
    none = {"receiver_type": "none", "outcome": "dead_lettered"}
    assert REGISTRY.get_sample_value("preempt_notifications_total", none) is not None
    assert REGISTRY.get_sample_value("preempt_notification_latency_seconds_count", {"receiver_type": "unit-pager"}) == 0
    # and every reason the notifier suppresses an alert for (the first silence or inhibition shows in increase())
    for reason in ("grouped", "silenced", "inhibited", "quiet_hours", "duplicate", "invalid", "no_destination"):
        assert REGISTRY.get_sample_value("preempt_alerts_suppressed_total", {"reason": reason}) is not None, reason


def test_delivery_records_are_written_under_an_event_of_the_partition_the_producer_picks(tmp_path: Path) -> None:
    """Each write of the deliveries table runs with a current event on the key's murmur2 partition (the one
    the changelog record goes to): RocksDB picks its local database from that event and asserted there was one."""
    seen: dict[bytes, int] = {}

    class Table(dict[bytes, object]):
        def __setitem__(self, key: bytes, value: object) -> None:
            event = current_event()
            assert event is not None
            seen[key] = event.message.partition
            super().__setitem__(key, value)

    app = create_app(_settings(tmp_path))
    table = Table()
    writes = PartitionedWrites(app, table, "preempt.alerts", 12)
    for account in (b"acme", b"globex", "ünïcode".encode()):
        writes[account] = {"a|b": ["ref", 1.0]}
        assert seen[account] == DefaultPartitioner()(account, list(range(12)), list(range(12)))
    assert current_event() is None  # only for the write
    assert dict(writes) == dict(table)
    assert len(writes) == 3


async def test_notifier_agents_keep_their_queues_when_recovery_resumes_the_flow(tmp_path: Path) -> None:
    """Alerts waiting in the agents' queues survive the flow resume that ends recovery (Faust's resume
    emptied them: the alerts were neither delivered nor re-read); revocation still empties them."""
    app = create_app(_settings(tmp_path))
    queues = [app.agents[name].channel.queue for name in ("alerts.app.notify", "alerts.app.apply_feedback")]
    for queue in queues:
        queue.put_nowait("record")
    app.flow_control.suspend()
    app.flow_control.resume()
    assert [q.qsize() for q in queues] == [1, 1]
    app.flow_control.clear()
    assert [q.qsize() for q in queues] == [0, 0]


def test_notifier_tables_bound_their_rocksdb_memory(tmp_path: Path) -> None:
    """The delivery log and the snoozes open their RocksDB partition databases with PREEMPT_TABLE_WRITE_BUFFER_BYTES
    write buffers (2 at most) and a PREEMPT_TABLE_BLOCK_CACHE_BYTES cache, not Faust's 64 MiB x 3 and 2 GiB."""
    settings = Settings(
        topic_prefix=f"ut{uuid.uuid4().hex[:8]}",
        store="rocksdb://",
        data_dir=tmp_path,
        table_write_buffer_bytes=3 * 1024 * 1024,
        table_block_cache_bytes=5 * 1024 * 1024,
    )
    app = create_app(settings)
    assert sorted(app.tables) == ["deliveries", "snoozes"]
    for name in app.tables:
        options = app.tables[name].data.rocksdb_options
        assert (options.write_buffer_size, options.max_write_buffer_number) == (3 * 1024 * 1024, 2), name
        assert options.block_cache_size == 5 * 1024 * 1024, name
