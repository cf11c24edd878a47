"""`preempt ingest` on a real broker that answers but does not take its writes: /readyz says so, and recovers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.ingest.auth import key_digest
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
from tests.integration.ingest_support import KEY, basic_auth, canonical, post, send, wait_healthy

HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """GET /readyz: the status and the JSON answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_not_ready(port: int, proc: ManagedProcess, needle: str, poke: Callable[[], Any], timeout_s: float) -> str:
    """Call ``poke`` until /readyz answers 503 with ``needle`` in its reason; that reason."""
    deadline = time.monotonic() + timeout_s
    status, body = readyz(port)
    while time.monotonic() < deadline:
        poke()
        status, body = readyz(port)
        if status == 503 and needle in body.get("reason", ""):
            return str(body["reason"])
        time.sleep(0.5)
    raise AssertionError(f"/readyz stayed {status} {body}:\n{proc.log_text()[-3000:]}")


def wait_degraded(port: int, proc: ManagedProcess, needle: str, timeout_s: float) -> str:
    """Wait until /readyz answers 200 listing a ``degraded`` reason with ``needle``; that reason."""
    deadline = time.monotonic() + timeout_s
    status, body = readyz(port)
    while time.monotonic() < deadline:
        status, body = readyz(port)
        found = [r for r in body.get("degraded", []) if needle in r]
        if status == 200 and found:
            return str(found[0])
        time.sleep(0.5)
    raise AssertionError(f"/readyz stayed {status} {body}:\n{proc.log_text()[-3000:]}")


def recreate(admin: KafkaAdminClient, topic: str, partitions: int, **configs: str) -> None:
    """Create ``topic`` again once the broker has finished deleting it."""
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
            return
        except TopicAlreadyExistsError:  # still being deleted
            assert time.monotonic() < deadline, f"{topic} could not be created again"
            time.sleep(0.5)


def start_ingest(
    settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess], **overrides: Any
) -> tuple[int, Settings, ManagedProcess]:
    """A healthy `preempt ingest` that reports failing writes after 3 s: its port, settings and process."""
    port = free_port()
    settings = settings_factory(
        ingest_api_keys=(f"web={key_digest(KEY)}",), ingest_port=port, ingest_writes_failing_seconds=3.0, **overrides
    )
    proc = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, proc)
    return port, settings, proc


def test_a_deleted_events_topic_makes_ingest_not_ready_until_writes_are_taken_again(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """The events topic deleted under a running ingest: every request is answered 429 and, once writes have
    failed for PREEMPT_INGEST_WRITES_FAILING_SECONDS, /readyz is 503 naming the topic (it was 200 before the
    fix: the broker still answered); the topic back, the next request is stored and /readyz is 200 again."""
    port, settings, proc = start_ingest(settings_factory, process_factory, ingest_kafka_timeout_seconds=1.0)
    events_topic = TopicNames.from_settings(settings).events
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    assert post(port, orjson.dumps(canonical("before", stamp)), HEADERS)[0] == 202
    assert readyz(port)[0] == 200

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.delete_topics([events_topic])
        statuses: list[int] = []
        reason = wait_not_ready(
            port,
            proc,
            f"writes failing: topic {events_topic}",
            lambda: statuses.append(post(port, orjson.dumps(canonical(f"e{len(statuses)}", stamp)), HEADERS)[0]),
            timeout_s=90,
        )
        assert set(statuses[-3:]) <= {429, 503}, statuses  # the deletion takes a moment: the first may be stored
        assert "attempts failed in a row" in reason
        proc.wait_for_log("writes failing: every write to a topic failed")

        recreate(admin, events_topic, settings.topic_partitions)
        deadline = time.monotonic() + 90
        while post(port, orjson.dumps(canonical("after", stamp)), HEADERS)[0] != 202:
            assert time.monotonic() < deadline, proc.log_text()[-3000:]
            time.sleep(0.5)
        assert readyz(port) == (200, {"status": "ready", "app": f"{settings.topic_prefix}-ingest"})
        proc.wait_for_log("writes succeeding again")
    finally:
        admin.close()


def test_a_stuck_account_merger_is_reported_and_leaves_ingest_ready_for_events(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """The accounts topic deleted: group calls are still taken (their patches go to the updates topic) but the
    merger can merge none of them and retries for ever; /readyz names the stuck merger and the accounts topic
    under "degraded" (it said nothing before) but stays 200, and events are still taken — every replica
    shares the broker, so an unready answer would take them all out of the load balancer for a fault of the
    account records alone; the topic back, the view sees it at its next metadata refresh
    (PREEMPT_METADATA_MAX_AGE_SECONDS; aiokafka's 5 minutes before), the patch is merged, degraded no more."""
    port, settings, proc = start_ingest(
        settings_factory, process_factory, ingest_account_catch_up_seconds=1.0, metadata_max_age_seconds=2.0
    )
    accounts_topic = TopicNames.from_settings(settings).accounts
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.delete_topics([accounts_topic])
        group = orjson.dumps(
            {"type": "group", "groupId": "acme", "userId": "u-1", "messageId": "g-1", "traits": {"name": "Acme"}}
        )
        assert send(port, "/v1/group", group, {"Authorization": basic_auth()}, None, int(time.time())) == 200
        reason = wait_degraded(port, proc, f"account merger stuck: topic {accounts_topic}", 120)
        assert "attempts failed in a row" in reason
        assert "did not read" in reason  # the view of the accounts topic cannot catch up: nothing merges
        proc.wait_for_log("writes failing: every write to a topic failed")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        assert post(port, orjson.dumps(canonical("during", stamp)), HEADERS)[0] == 202  # events still go in

        recreate(admin, accounts_topic, settings.topic_partitions, **{"cleanup.policy": "compact"})
        deadline = time.monotonic() + 90
        while readyz(port)[1].get("degraded"):
            assert time.monotonic() < deadline, proc.log_text()[-3000:]
            time.sleep(0.5)
        assert readyz(port) == (200, {"status": "ready", "app": f"{settings.topic_prefix}-ingest"})
        proc.wait_for_log("writes succeeding again")
        assert '"accounts": 1' in proc.log_text()  # the patch was merged into the new topic
    finally:
        admin.close()
