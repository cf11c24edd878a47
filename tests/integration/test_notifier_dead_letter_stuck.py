"""A delivery's dead letter the broker does not take (``preempt.alerts.dlq`` deleted): the agent reads on, so no
partition stalls, but the alert stays unacked. Before, ``/readyz`` said 200 and nothing but the producer's
warnings was logged; now the notifier reports it once it has waited for the stall time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.notifier_harness import (
    make_alert,
    metric_value,
    notifier_settings,
    produce_alerts,
    readyz,
    start_notifier,
    wait_for_records,
    write_routes,
)

ROUTES = """
receivers:
  - name: owner
    slack_configs: [{channel: "{{ account.owner.slack }}"}]
route:
  receiver: owner
  group_wait: 0s
"""
STALL_S = 8.0  # the watchdog samples every 2 s


def test_a_dead_letter_the_broker_does_not_take_is_reported_on_readyz(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    kafka_bootstrap: str,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A permanent delivery failure whose dead letter cannot be written: after the stall time one ERROR line,
    ``/readyz`` 503 naming it, and the pending-age gauge past the stall time; the process keeps running."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        partition_stall_seconds=STALL_S,
    )
    slack_server.always("C-NOBODY", Reply.slack_error("channel_not_found"))
    notifier = start_notifier(process_factory, settings)
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap], request_timeout_ms=10_000)
    try:
        admin.delete_topics([topics.alerts_dlq])
    finally:
        admin.close()
    owner = {"name": "Dana", "email": "dana@example.com", "slack": "C-NOBODY"}
    produce_alerts(producer, topics.alerts, make_alert("nobody", account={"name": "Nobody", "owner": owner}))

    (error,) = wait_for_records(
        notifier, "dead letter not written: the broker has not taken it; its alert stays unacked", 1, timeout_s=60
    )
    assert error["pending"] == 1
    assert error["oldest_s"] >= STALL_S
    status, body = readyz(settings)
    assert status == 503
    assert "dead letter not written for" in body
    assert metric_value(settings, "preempt_notifier_dead_letter_pending_seconds") >= STALL_S
    assert metric_value(settings, "preempt_partition_stalls_total", topic=topics.alerts) == 0
    time.sleep(1)
    assert notifier.proc.poll() is None


def test_a_dead_letter_the_broker_refuses_as_too_large_is_written_cut(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    kafka_bootstrap: str,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``preempt.alerts.dlq`` with a max.message.bytes below an alert (a long playbook): each permanent failure's
    dead letter is written cut to fit, with its verdict headers and ``truncated``, and the next alert is delivered.
    Before, the broker's refusal went unnoticed: the alert was acked, logged as dead-lettered, and on no topic."""
    settings = notifier_settings(settings_factory, write_routes(tmp_path, ROUTES), slack_api_url=slack_server.api_url)
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap], request_timeout_ms=10_000)
    try:
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.alerts_dlq, {"max.message.bytes": "2000"})]
        )
    finally:
        admin.close()
    slack_server.always("C-NOBODY", Reply.slack_error("channel_not_found"))
    notifier = start_notifier(process_factory, settings)
    owner = {"name": "Dana", "email": "dana@example.com", "slack": "C-NOBODY"}
    playbook = "Call the owner, then the champion. " * 100  # a long playbook: 3,500 characters
    lost = [make_alert(f"nobody-{i}", account={"name": "Nobody", "owner": owner}, playbook=playbook) for i in range(2)]
    produce_alerts(producer, topics.alerts, *lost)
    wait_for_records(notifier, "dead letter too large for the dead-letter topic; written cut", 2, timeout_s=60)
    produce_alerts(producer, topics.alerts, make_alert("somebody"))
    slack_server.wait_for(1, target="C-OWNER", timeout_s=30)

    letters = consume_records(kafka_bootstrap, topics.alerts_dlq, 2, timeout_s=30, idle_s=1.0)
    assert len(letters) == 2
    for letter in letters:
        headers = dict(letter.headers)
        assert headers["reason"] == b"permanent"
        assert headers["target"] == b"owner/slack"
        assert "truncated" in headers
        assert 0 < len(letter.value or b"") < 2000
    assert {r.key for r in letters} == {a.account_id.encode() for a in lost}
    assert notifier.proc.poll() is None
    assert "Traceback" not in notifier.log_text()
