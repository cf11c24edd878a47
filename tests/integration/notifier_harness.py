"""Helpers shared by the notifier integration tests: alert records, routing files, a running notifier."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from schemas.alert import Alert
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from tests.integration.conftest import ManagedProcess

OUTAGE_LINE = (
    "delivery destination refuses every message: its alerts are retried (not dead-lettered) until it is fixed or "
    "the give-up window ends"
)
"""The ERROR a destination refusing every message logs once per episode (``alerts/delivery_health.py``)."""

# Every alert to the console, each in its own group, at once: an alert handled late is not held for a group_interval.
CONSOLE_PER_ALERT_ROUTES = """
receivers: [{name: console, console_configs: [{}]}]
route: {receiver: console, group_by: [alert_id], group_wait: 0s}
"""


def make_alert(account_id: str = "acme", **overrides: Any) -> Alert:
    """A valid alert of ``account_id`` with a unique id; any field can be overridden."""
    base: dict[str, Any] = {
        "alert_id": uuid.uuid4().hex,
        "rule_id": "error-spike",
        "kind": "threshold",
        "title": f"{account_id}: API errors are spiking",
        "severity": "high",
        "priority": 2,
        "account_id": account_id,
        "account": {
            "name": account_id.title(),
            "tier": "enterprise",
            "mrr": 12000,
            "timezone": "Etc/GMT-12",
            "owner": {"name": "Dana", "email": f"csm-{account_id}@example.com", "slack": "C-OWNER"},
        },
        "fired_at": "2026-11-23T06:10:00Z",
        "emitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "evidence": {"measure": "count", "value": 37, "threshold": 20},
        "playbook": "Check the API error dashboard, then call the customer.",
    }
    base.update(overrides)
    return Alert.model_validate(base)


def account_per_partition(partitions: int) -> dict[int, str]:
    """An account id for each partition of a topic of ``partitions`` (Kafka's default partitioner, murmur2)."""
    from kafka.partitioner.default import murmur2

    found: dict[int, str] = {}
    for n in range(100 * partitions):
        found.setdefault((murmur2(f"acct-{n}".encode()) & 0x7FFFFFFF) % partitions, f"acct-{n}")
    assert sorted(found) == list(range(partitions)), found
    return found


def produce_alerts(producer: KafkaProducer, topic: str, *alerts: Alert) -> None:
    """Publish ``alerts`` as the rules worker does: key ``account_id``, value the alert JSON."""
    for alert in alerts:
        producer.send(topic, key=alert.account_id.encode(), value=alert.model_dump_json().encode())
    producer.flush()


def write_routes(directory: Path, text: str) -> Path:
    """Write a routing YAML file and return its path."""
    path = directory / f"routes-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def notifier_settings(settings_factory: Callable[..., Settings], routes: Path, **overrides: Any) -> Settings:
    """Settings for a notifier under test: the routing file, a free web port, fast retries."""
    base: dict[str, Any] = {
        "routes_path": routes,
        "notifier_web_port": free_port(),
        "delivery_retry_initial_seconds": 0.2,
        "delivery_retry_max_seconds": 1.0,
        "slack_bot_token": "xoxb-test-token",
        "log_level": "INFO",
    }
    base.update(overrides)
    return settings_factory(**base)


def start_notifier(
    process_factory: Callable[..., ManagedProcess], settings: Settings, name: str = "notifier"
) -> ManagedProcess:
    """Run ``preempt notifier`` as a child process and wait until it owns its partitions."""
    proc = process_factory(["preempt", "notifier"], settings, name=name)
    proc.wait_for_log("notifier ready", timeout_s=90)
    return proc


def log_records(proc: ManagedProcess, event: str) -> list[dict[str, Any]]:
    """The process's JSON log records whose ``event`` is ``event``."""
    found: list[dict[str, Any]] = []
    for line in proc.log_text().splitlines():
        start = line.find("{")  # Faust's spinner may leave terminal escapes before the JSON
        if event not in line or start < 0:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if record.get("event") == event:
            found.append(record)
    return found


def wait_for_records(proc: ManagedProcess, event: str, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Poll (bounded) until the process logged ``count`` records of ``event``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = log_records(proc, event)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    pytest.fail(f"{count} x {event!r} not logged within {timeout_s}s:\n{proc.log_text()[-4000:]}")


def metric_value(settings: Settings, name: str, **labels: str) -> float:
    """One sample of the notifier's /metrics (0 when absent)."""
    value = metric_sample(settings, name, **labels)
    return 0.0 if value is None else value


def metric_sample(settings: Settings, name: str, **labels: str) -> float | None:
    """One sample of the notifier's /metrics (None when the series is absent)."""
    url = f"http://127.0.0.1:{settings.notifier_web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        if metric.startswith(name + "{"):
            got = ",".join(sorted(metric[len(name) + 1 : -1].split(",")))
            if got == want:
                return float(value)
        elif metric == name and not labels:
            return float(value)
    return None


def readyz(settings: Settings) -> tuple[int, str]:
    """``(status, body)`` of the notifier's /readyz (503 included)."""
    url = f"http://127.0.0.1:{settings.notifier_web_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def wait_readyz(
    settings: Settings, want: Callable[[int, dict[str, str]], bool], timeout_s: float = 45.0
) -> dict[str, str]:
    """Poll (bounded) the notifier's /readyz until ``want(status, body)``; its JSON body."""
    deadline = time.monotonic() + timeout_s
    status, body = 0, {}
    while time.monotonic() < deadline:
        status, text = readyz(settings)
        body = json.loads(text)
        if want(status, body):
            return body
        time.sleep(0.3)
    raise AssertionError(f"/readyz never as wanted; last: {status} {body}")


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` and return the HTTP status (errors included)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def rewind_group(bootstrap: str, group: str, topic: str, partitions: int, timeout_s: float = 60.0) -> dict[int, int]:
    """Set ``group``'s committed offsets on ``topic`` back to 0 once its members are gone, if it
    committed past 0; returns the offsets it had committed there (``{partition: offset}``).

    A consumer's offsets may be committed at any rebalance (a heartbeat missed under load is enough),
    so a test that needs a killed notifier's successor to re-read everything rewinds the group
    instead of hoping nothing was committed. The broker takes the rewind only from an empty group:
    this waits (bounded) for a SIGKILLed member's session to expire.
    """
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], request_timeout_ms=10_000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        deadline = time.monotonic() + timeout_s
        state: Any = None
        while time.monotonic() < deadline:
            state = admin.describe_groups([group]).get(group)
            if not state or not state.get("members"):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"group {group} still had members after {timeout_s}s: {state}")
        committed = admin.list_group_offsets({group: tps}).get(group, {})
        before = {tp.partition: meta.offset for tp, meta in committed.items() if (meta.offset or 0) > 0}
        if not before:
            return before  # nothing committed: the successor reads from the start already
        errors = admin.alter_group_offsets(group, {tp: OffsetAndMetadata(0, "", -1) for tp in tps})
        failed = {tp.partition: err for tp, err in errors.items() if err.__name__ != "NoError"}
        assert not failed, f"rewinding {group} on {topic} failed: {failed}"
        return before
    finally:
        admin.close()
