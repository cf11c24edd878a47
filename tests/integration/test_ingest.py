"""`preempt ingest` as a real process: signed HTTP requests end up as records on the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from streams.ingest.auth import key_digest, sign
from streams.runtime.dead_letter_reader import read_dead_letters
from streams.runtime.dead_letters import dead_letter_headers
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.ingest_support import KEY, SECRET, SIGN, abuse_cases, basic_auth, post, send, wait_healthy


def test_signed_batches_over_http_land_on_the_events_topic(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """Canonical and Segment items posted with a key and signature are read back from Kafka, keyed by account;
    rejected items (of /v1/events and of the tracking API) are read back from the events dead-letter topic with
    their bytes and verdict headers, and `preempt events dead-letters` shows them; an anonymous visitor's page
    call without an account is skipped, not dead-lettered; unauthenticated requests produce nothing."""
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

    # An anonymous visitor's page call: normal SDK traffic, skipped (no event, no dead letter).
    page = orjson.dumps({"type": "page", "messageId": "p-1", "anonymousId": "anon-1", "name": "Pricing"})
    assert send(port, "/v1/page", page, {"Authorization": basic_auth()}, SIGN, int(time.time())) == 200
    # A tracking call without an account: 200 for the SDK, and a dead letter for its sender to find.
    no_account = orjson.dumps({"type": "track", "messageId": "t-1", "event": "Login", "context": {"locale": "en"}})
    assert send(port, "/v1/track", no_account, {"Authorization": basic_auth()}, SIGN, int(time.time())) == 200

    names = TopicNames.from_settings(settings)
    letters = consume_records(kafka_bootstrap, names.events_dlq, 2, timeout_s=60, idle_s=1)
    assert len(letters) == 2
    by_route = {dead_letter_headers(r.headers)["preempt.dlq.source.topic"]: r for r in letters}
    assert sorted(by_route) == ["http:/v1/events", "http:/v1/track"]
    batch_item, call = by_route["http:/v1/events"], by_route["http:/v1/track"]
    assert (batch_item.key, batch_item.value) == (None, b'{"event":"no ids"}')
    assert (call.key, call.value) == (None, no_account)
    for record in letters:
        headers = dead_letter_headers(record.headers)
        assert ("content-type", b"application/json") in record.headers
        assert headers["preempt.dlq.reason"] == "missing_field"
        assert headers["preempt.dlq.detail"]
        assert (headers["preempt.dlq.source.partition"], headers["preempt.dlq.source.offset"]) == ("-1", "-1")
        assert headers["preempt.dlq.source.api_key"] == "web"
        assert headers["preempt.dlq.at"].endswith("Z")
    assert dead_letter_headers(call.headers)["preempt.dlq.field"] == "context.groupId"

    shown = read_dead_letters(settings, reason="missing_field", limit=10)
    assert sorted(letter.describe().split(" ", 2)[1] for letter in shown) == ["http:/v1/events", "http:/v1/track"]
    assert all("(api key web) key=<none>: missing_field" in letter.describe() for letter in shown)


def test_abuse_gets_the_right_status_and_only_good_events_reach_kafka(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """Against the real process and broker: every abuse case gets its status (never a 500), and only the good
    events of the mixed batches are on the events topic afterwards."""
    port = free_port()
    settings = settings_factory(
        ingest_api_keys=(f"web={key_digest(KEY)}",), ingest_hmac_secret=SECRET, ingest_port=port, ingest_max_items=50
    )
    proc = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, proc)
    now = int(time.time())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    cases = abuse_cases(now, stamp, max_items=50)
    got = {c.name: send(port, c.path, c.body, c.headers, c.signature, now) for c in cases}
    assert got == {c.name: c.status for c in cases}, proc.log_text()[-3000:]

    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 2, timeout_s=30, idle_s=2)
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == sorted(i for c in cases for i in c.good_ids)
    assert "Traceback" not in proc.log_text()


def test_a_fresh_deployment_starts_without_error_lines(
    settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """On topics it has just made, ingest's account merger starts without ERROR lines: aiokafka's "Failed
    fetch offsets … NotLeaderForPartitionError" (3-4 per start while the new partitions' leaders settle,
    retried by aiokafka) is a warning (streams.runtime.logs.MovingLeaderFilter)."""
    port = free_port()
    settings = settings_factory(ingest_api_keys=(f"web={key_digest(KEY)}",), ingest_port=port)
    proc = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, proc)
    time.sleep(5.0)  # the merger's first fetches of the accounts topics happen in these seconds
    errors = [line for line in proc.log_text().splitlines() if '"level": "error"' in line]
    assert errors == []
