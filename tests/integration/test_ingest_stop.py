"""`preempt ingest` stopped (SIGTERM) while requests are in progress, on the real broker."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable

import orjson

from streams.ingest.auth import key_digest
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.ingest_support import KEY, basic_auth, send, track, wait_healthy


def test_a_client_trickling_its_body_does_not_hold_the_stop_and_stored_calls_stay_stored(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """SIGTERM with an authenticated client still sending its body: ingest stops within the Kafka timeout plus
    its grace (not aiohttp's 60 s, past Kubernetes' 30 s), with status 0, the slow request unanswered (never
    acknowledged) and logged as cut off; the batch answered 200 before the stop is on the events topic."""
    port = free_port()
    settings = settings_factory(
        ingest_api_keys=(f"web={key_digest(KEY)}",), ingest_port=port, ingest_kafka_timeout_seconds=2.0
    )
    proc = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, proc)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30))
    body = orjson.dumps({"batch": [track(f"stop-{i}", stamp, context={"groupId": "wayne-9"}) for i in range(20)]})
    assert send(port, "/v1/batch", body, {"Authorization": basic_auth()}, None, 0) == 200

    slow = socket.create_connection(("127.0.0.1", port), timeout=90)
    slow.sendall(
        b"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: {basic_auth()}\r\nContent-Length: 100000\r\n\r\n".encode()
        + b'{"batch": ['
    )
    time.sleep(0.5)  # the handler is reading the body
    proc.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    for _ in range(60):  # a byte every 0.25 s: a live, slow sender, until the server closes the connection
        if proc.proc.poll() is not None:
            break
        try:
            slow.sendall(b" ")
        except OSError:
            break
        time.sleep(0.25)
    code = proc.proc.wait(timeout=60)
    took = time.monotonic() - started
    slow.settimeout(5)
    try:
        answer = slow.recv(4096)
    except OSError:
        answer = b""
    slow.close()

    assert code == 0, proc.log_text()[-3000:]
    assert took < 12, f"the stop took {took:.1f} s:\n{proc.log_text()[-3000:]}"
    assert not answer.startswith(b"HTTP/1.1 2"), answer
    log = proc.log_text()
    assert "request in progress cut off, not acknowledged" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 20, timeout_s=60, idle_s=1)
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == sorted(f"stop-{i}" for i in range(20))
