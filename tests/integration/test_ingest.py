"""`preempt ingest` as a real process: signed HTTP requests end up as records on the real broker."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

from schemas.settings import Settings
from streams.ingest.auth import key_digest, sign
from streams.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records, free_port

KEY = "pk_test_ingest"
SECRET = "whsec_integration"


def post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_healthy(port: int, proc: ManagedProcess, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise AssertionError(f"ingest exited ({proc.proc.returncode}):\n{proc.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"ingest did not become healthy:\n{proc.log_text()[-3000:]}")


def test_signed_batches_over_http_land_on_the_events_topic(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """Canonical and Segment items posted with a key and signature are read back from Kafka, keyed by account;
    rejected items and unauthenticated requests produce nothing."""
    port = free_port()
    settings = settings_factory(
        ingest_api_keys=(f"web={key_digest(KEY)}",), ingest_hmac_secret=SECRET, ingest_port=port
    )
    proc = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, proc)

    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    canonical = [
        {"event_id": f"c{i}", "event": "Login", "account_id": f"acct-{i % 4}", "timestamp": stamp} for i in range(20)
    ]
    segment = [
        {
            "type": "track",
            "messageId": f"s{i}",
            "userId": "u-1",
            "event": "Report Exported",
            "timestamp": stamp,
            "context": {"groupId": "globex"},
        }
        for i in range(5)
    ]
    body = orjson.dumps({"batch": [*canonical, *segment, {"event": "no ids"}]})
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": "application/json",
        "X-Preempt-Signature": sign(SECRET.encode(), body, int(now)),
    }
    status, answer = post(port, body, headers)
    assert status == 202, answer
    assert (answer["accepted"], answer["rejected"]) == (25, 1)

    refused, _ = post(
        port, body, {"Authorization": "Bearer nope", "X-Preempt-Signature": headers["X-Preempt-Signature"]}
    )
    assert refused == 401

    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 25, timeout_s=60, idle_s=1)
    values = [orjson.loads(r.value) for r in records]
    assert sorted(v["event_id"] for v in values) == sorted([f"c{i}" for i in range(20)] + [f"s{i}" for i in range(5)])
    assert all(r.key == v["account_id"].encode() for r, v in zip(records, values, strict=True))
    assert {v["account_id"] for v in values if v["event_id"].startswith("s")} == {"globex"}
