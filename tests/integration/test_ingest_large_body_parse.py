"""A large batch being parsed does not hold `preempt ingest`'s event loop: probes and other senders are answered."""

from __future__ import annotations

import base64
import http.client
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from schemas.event import format_ts
from streams.ingest.auth import key_digest
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.ingest_support import wait_healthy

WRITE_KEY = "wk_large_body_parse"
HEADERS = {
    "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
    "Content-Type": "application/json",
}


def slow_batch(stamp: str) -> bytes:
    """~8 MiB of 1,000 track calls of 2,750 empty arrays each, the first a NaN: the costliest body to read
    that we know of (the lenient reader, millions of containers; 2-4 s of CPU). Every call is rejected
    (too_many_properties), so nothing of it is written to Kafka before it is answered."""
    calls = [
        {
            "type": "track",
            "messageId": f"slow-{i}",
            "userId": "u-1",
            "event": "Login",
            "timestamp": stamp,
            "context": {"groupId": "acme"},
            "properties": {"a": [[]] * 2750},
        }
        for i in range(1000)
    ]
    return orjson.dumps({"batch": calls}).replace(b"[[]", b"[NaN", 1)


def _queues(port_a: int, port_b: int) -> tuple[int, int] | None:
    """(send queue, receive queue) in bytes of the TCP socket from local ``port_a`` to ``port_b`` (Linux's tables;
    an IPv4 connection to a dual-stack listener is in tcp6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port_a:04X}") and fields[2].endswith(f":{port_b:04X}"):
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def wait_body_read(server_port: int, client_port: int, timeout_s: float = 60) -> None:
    """Return once the server process has read every byte the client sent on that connection (Linux).

    Nothing queued in the kernel either way: then the handler has the whole body, and what it does next
    happens before the server can take in a request sent after this returns.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        client, server = _queues(client_port, server_port), _queues(server_port, client_port)
        if client is not None and server is not None and client[0] == 0 and server[1] == 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"the server did not read the body within {timeout_s} s")


def answered(sock: socket.socket) -> bool:
    """Whether the server has written (part of) its answer on ``sock``."""
    return bool(select.select([sock], [], [], 0)[0])


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request on a connection of its own: the status and the body of its answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=HEADERS if body is not None else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_probe_and_a_small_batch_are_answered_while_a_large_batch_is_parsed(
    kafka_bootstrap: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """An 8 MiB batch of tiny values took seconds to read and validate on the event loop, and every other request
    waited: /healthz (a liveness probe timing out restarts a healthy pod) and other senders' small batches. Now,
    once the large body is read, a probe and a small batch sent after it are both answered before it is, and it is
    answered as before (200, every call rejected)."""
    port = free_port()
    settings = settings_factory(ingest_api_keys=(f"sdk={key_digest(WRITE_KEY)}",), ingest_port=port)
    proc = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, proc)
    stamp = format_ts(time.time())
    small = orjson.dumps({"batch": [{"type": "track", "messageId": "small-1", "userId": "u-2", "event": "Login",
                                     "timestamp": stamp, "context": {"groupId": "globex"}}]})  # fmt: skip

    large = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    large.request("POST", "/v1/batch", body=slow_batch(stamp), headers=HEADERS)
    assert large.sock is not None
    wait_body_read(port, large.sock.getsockname()[1])
    # Each answer below counts only when the large batch's answer had not been written before it: on the loopback
    # interface it would already be readable here.
    while_parsing: dict[str, tuple[int, bytes]] = {}
    while "small" not in while_parsing and not answered(large.sock):
        if "probe" not in while_parsing:
            probe = request(port, "GET", "/healthz")
            if not answered(large.sock):
                while_parsing["probe"] = probe
        else:  # sent once: its event is looked for in Kafka below
            small_answer = request(port, "POST", "/v1/batch", small)
            if not answered(large.sock):
                while_parsing["small"] = small_answer
    response = large.getresponse()
    answer = orjson.loads(response.read())
    large.close()

    assert set(while_parsing) == {"probe", "small"}, f"answered only after the large batch: {while_parsing}"
    assert while_parsing["probe"] == (200, b'{"status":"ok"}')
    assert while_parsing["small"][0] == 200, while_parsing["small"]
    assert orjson.loads(while_parsing["small"][1])["accepted"] == 1
    assert response.status == 200
    assert (answer["accepted"], answer["rejected"]) == (0, 1000)
    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 1, timeout_s=60, idle_s=1)
    assert [(r.key, orjson.loads(r.value)["event_id"]) for r in records] == [(b"globex", "small-1")]
