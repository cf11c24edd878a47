"""Batches as the real SDKs build them, through a real `preempt ingest` with its defaults, into the real broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from streams.ingest.auth import key_digest
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.ingest_support import wait_healthy

WRITE_KEY = "wk_sdk_batches"


def rudder_ingest(
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    errors: list[Any],
    **client_options: Any,
) -> tuple[Settings, ManagedProcess, Any]:
    """A healthy `preempt ingest` with its defaults, and a rudder-sdk-python client for it that puts the
    errors it gives up on in ``errors`` (no retries of retryable ones)."""
    from rudderstack.analytics import Client

    port = free_port()
    settings = settings_factory(ingest_api_keys=(f"rudder={key_digest(WRITE_KEY)}",), ingest_port=port)
    proc = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, proc)
    client = Client(
        write_key=WRITE_KEY,
        host=f"http://127.0.0.1:{port}",
        on_error=lambda error, _batch: errors.append(error),
        max_retries=1,
        **client_options,
    )
    return settings, proc, client


def test_a_gzipped_rudderstack_batch_of_calls_sharing_a_flags_object_is_stored(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """rudder-sdk-python gzips every batch; 100 track calls that each carry the same 200-flag object (~6 KB) make a
    ~600 KB batch that inflates more than 100 times. It was refused 413 as a "compression bomb", which the SDK does
    not retry (the 100 calls were lost); with the default settings every call reaches preempt.events."""
    flags = {f"feature_{i:03d}_enabled": i % 3 == 0 for i in range(200)}
    errors: list[Any] = []
    settings, _, client = rudder_ingest(settings_factory, process_factory, errors)
    for i in range(100):
        client.track(
            user_id=f"user-{i % 7}",
            event="Settings Viewed",
            properties={"flags": flags, "page": i},
            context={"groupId": "stark-4"},
            message_id=f"flags-{i}",
        )
    client.flush()
    client.join()

    assert errors == [], errors
    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 100, timeout_s=60, idle_s=1)
    values = [orjson.loads(r.value) for r in records]
    assert sorted(v["event_id"] for v in values) == sorted(f"flags-{i}" for i in range(100))
    assert all(v["properties"]["flags"] == flags and r.key == b"stark-4" for r, v in zip(records, values, strict=True))


def test_a_rudderstack_batch_of_large_calls_over_one_mib_is_stored(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """rudder-sdk-python fills a batch up to 100 calls or 4 MB: 100 calls of ~24 KB (each under the 32 KiB an
    event may hold) make a ~2.4 MB batch. Ingest read at most 1 MiB and answered 413, which the SDK does not retry
    (on_error, the 100 calls lost); its batch routes now read up to PREEMPT_INGEST_MAX_BATCH_BODY_BYTES."""
    errors: list[Any] = []
    # upload_interval: one batch of 100, not several small ones
    settings, proc, client = rudder_ingest(settings_factory, process_factory, errors, upload_interval=5.0)
    for i in range(100):
        client.track(
            user_id="user-1",
            event="Report Exported",
            # Distinct text per call, so that gzip does not shrink the body below the old limit.
            properties={
                f"part_{j}": f"{i:03d}-{j}-" + "".join(chr(65 + (i * 7 + j * k) % 26) for k in range(7_900))
                for j in range(3)
            },
            context={"groupId": "wayne-1"},
            message_id=f"large-{i}",
        )
    client.flush()
    client.join()

    assert errors == [], errors
    assert "payload_too_large" not in proc.log_text()
    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 100, timeout_s=60, idle_s=1)
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == sorted(f"large-{i}" for i in range(100))


def test_a_stalled_large_upload_gives_the_large_body_slot_back_after_the_read_timeout(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """A sender that declares a large batch and stops sending (a dropped link, an SDK that gave up) held the one
    large-body slot for as long as its connection stayed open: every other sender's large batch got 429 "busy"
    (80 s seen on a live ingest, until the stalled client went away). With PREEMPT_INGEST_BODY_READ_TIMEOUT_SECONDS
    the stalled request is answered 408 and the next large batch is stored."""
    import base64
    import socket
    import time
    import urllib.error
    import urllib.request

    port = free_port()
    settings = settings_factory(
        ingest_api_keys=(f"batches={key_digest(WRITE_KEY)}",), ingest_port=port, ingest_body_read_timeout_seconds=2.0
    )
    proc = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, proc)
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    calls = [
        {
            "type": "track",
            "messageId": f"big-{i}",
            "userId": "u",
            "event": "Big",
            "context": {"groupId": "ozcorp"},
            "properties": {"a": f"{i}-" + "x" * 4500, "b": "y" * 4500},
        }
        for i in range(150)
    ]
    body = orjson.dumps({"batch": calls})
    assert len(body) > settings.ingest_max_body_bytes

    def post_batch() -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/batch", data=body, headers={"Authorization": auth}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1 only
                return int(response.status), orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
        head = (
            f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        stalled.sendall(head.encode() + body[:1000])
        time.sleep(0.5)  # the stalled request's head is in: it holds the slot
        assert post_batch()[0] == 429
        answer = stalled.recv(4096).decode("latin-1")  # blocks until ingest gives up on the body (2 s)
        assert answer.startswith("HTTP/1.1 408"), answer
        assert '"code":"body_timeout"' in answer
    status, answer_after = post_batch()
    assert (status, answer_after["accepted"]) == (200, 150), str(answer_after)[:600]
    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 150, timeout_s=60, idle_s=1)
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == sorted(f"big-{i}" for i in range(150))
