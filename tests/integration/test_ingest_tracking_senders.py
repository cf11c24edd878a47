"""What other tracking senders send, through a real `preempt ingest` into the real broker.

Besides the three SDKs of ``test_ingest_sdks.py``: the real @segment/analytics-node passing a timestamp
without an offset (Segment reads it as UTC), analytics-java's batch (gzip, Basic auth, ``POST /v1/import/``),
a RudderStack mobile batch whose account is only in ``context.traits`` (the identified user's traits, repeated
on every call), the process's ``/readyz``, and the WARNING line of a request refused whole.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from schemas.rfc3339 import parse_rfc3339
from streams.ingest.auth import key_digest
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.ingest_support import basic_auth, send, wait_healthy
from tests.integration.test_ingest_sdks import node_sdk_dir

KEY = "wk_other_senders"


def test_other_senders_reach_preempt_events(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """Each sender's calls arrive on preempt.events as mapped (none dead-lettered); /readyz is 200; a
    refused request leaves a WARNING naming its route, code and User-Agent."""
    port = free_port()
    settings = settings_factory(ingest_api_keys=(f"other={key_digest(KEY)}",), ingest_port=port)
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    ingest = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, ingest)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as ready:
        assert (ready.status, json.loads(ready.read())["status"]) == (200, "ready")

    # 1. analytics-node, a timestamp string without an offset: UTC.
    no_offset = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0, tzinfo=None)
    call = {
        "userId": "u-node",
        "event": "Report Exported",
        "messageId": "node-1",
        "timestamp": no_offset.isoformat(),
        "context": {"groupId": "acme"},
    }
    result = subprocess.run(
        ["node", "send.mjs", json.dumps([{"method": "track", "args": call}])],
        cwd=node_sdk_dir(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PREEMPT_TEST_HOST": f"http://127.0.0.1:{port}", "PREEMPT_TEST_WRITE_KEY": KEY},
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"

    # 2. analytics-java's batch: gzip, Basic auth, POST /v1/import/ (with the slash), Java's +0000 offsets.
    def java_time(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    java_sent = datetime.now(UTC).replace(microsecond=0)
    java_batch = {
        "batch": [
            {
                "type": "track",
                "messageId": "java-1",
                "userId": "u-java",
                "event": "Invoice Paid",
                "timestamp": java_time(java_sent - timedelta(minutes=1)),
                "context": {"groupId": "acme", "library": {"name": "analytics-java", "version": "3.5.1"}},
                "properties": {"amount": 99},
            }
        ],
        "sentAt": java_time(java_sent),
        "context": {"library": {"name": "analytics-java", "version": "3.5.1"}},
    }
    java_headers = {
        "Authorization": basic_auth(KEY),
        "Content-Type": "application/json; charset=utf-8",
        "Content-Encoding": "gzip",
        "User-Agent": "analytics-java/3.5.1",
    }
    assert send(port, "/v1/import/", gzip.compress(json.dumps(java_batch).encode()), java_headers, None, 0) == 200

    # 3. A RudderStack mobile batch: the account only in context.traits (after an identify with a company).
    traits = {"anonymousId": "anon-m", "userId": "u-mobile", "company": {"id": "globex"}}
    mobile_batch = {
        "sentAt": datetime.now(UTC).isoformat(),
        "batch": [
            {
                "type": kind,
                "messageId": f"mobile-{kind}",
                "anonymousId": "anon-m",
                "userId": "u-mobile",
                "channel": "mobile",
                "originalTimestamp": datetime.now(UTC).isoformat(),
                "context": {"traits": traits, "os": {"name": "Android", "version": "14"}},
                **({"event": "Screen Tapped"} if kind == "track" else {"name": "Home"}),
            }
            for kind in ("track", "screen")
        ],
    }
    headers = {"Authorization": basic_auth(KEY), "Content-Type": "application/json", "AnonymousId": "YW5vbi1t"}
    assert send(port, "/v1/batch", json.dumps(mobile_batch).encode(), headers, None, 0) == 200

    events = {
        e["event_id"]: e
        for e in (json.loads(r.value) for r in consume_records(kafka_bootstrap, names.events, 4, idle_s=1))
    }
    assert sorted(events) == ["java-1", "mobile-screen", "mobile-track", "node-1"]
    # read as UTC; the SDK's sentAt moves it by the request's latency only (Segment's skew correction)
    assert 0 <= parse_rfc3339(events["node-1"]["timestamp"]) - no_offset.replace(tzinfo=UTC).timestamp() < 5
    assert (events["java-1"]["account_id"], events["java-1"]["properties"]) == ("acme", {"amount": 99})
    assert 0 <= parse_rfc3339(events["java-1"]["timestamp"]) - (java_sent.timestamp() - 60) < 5
    assert [events[f"mobile-{k}"]["account_id"] for k in ("track", "screen")] == ["globex", "globex"]
    assert consume_records(kafka_bootstrap, names.events_dlq, 0, timeout_s=5, idle_s=2) == []

    # 4. A request refused whole is logged with its reason (the SDK drops the batch).
    bad = {"Authorization": basic_auth(KEY), "User-Agent": "analytics-ruby/2.4.0"}
    assert send(port, "/v1/batch", b'{"batch": [', bad, None, 0) == 400
    ingest.wait_for_log("ingest request refused", timeout_s=10)
    [refused] = [
        json.loads(line) for line in ingest.log_text().splitlines() if '"event": "ingest request refused"' in line
    ]
    assert (refused["route"], refused["status"], refused["code"]) == ("/v1/batch", 400, "invalid_request")
    assert (refused["source"], refused["user_agent"]) == ("other", "analytics-ruby/2.4.0")
