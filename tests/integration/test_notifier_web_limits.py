"""The notifier's /slack/actions on a live notifier: oversized bodies get 413 unread, odd timestamps 401."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable
from pathlib import Path

from alerts.feedback import MAX_ACTION_BODY_BYTES, slack_signature
from alerts.runtime import SLACK_BODY_READ_TIMEOUT_SECONDS
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import metric_value, notifier_settings, post, start_notifier, write_routes

SECRET = "signing-secret-for-limits"
ROUTES = """
receivers:
  - name: console
    console_configs: [{}]
route:
  receiver: console
"""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_slack_actions_refuses_oversized_bodies_before_reading_them(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """A declared 512 MiB body is answered 413 before any of it is sent, a chunked body is cut at the limit
    (413), the notifier's memory does not grow with them, and a normal-sized request still gets through."""
    settings = notifier_settings(settings_factory, write_routes(tmp_path, ROUTES), slack_signing_secret=SECRET)
    notifier = start_notifier(process_factory, settings)
    port = settings.notifier_web_port
    rss_before = _rss_kib(notifier.proc.pid)

    # Declared length far over the limit: headers only, no body sent — the answer must come anyway.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/slack/actions")
    conn.putheader("Content-Type", "application/x-www-form-urlencoded")
    conn.putheader("Content-Length", str(512 * 1024 * 1024))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()

    # Chunked, no declared length: 8 MiB offered in 64 KiB chunks; refused once past the limit.
    def chunks() -> object:
        for _ in range(128):
            yield b"p" * 65536

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/slack/actions", body=chunks(), encode_chunked=True)  # type: ignore[arg-type]
        status = conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server answered and closed while we were still sending; checked below
    conn.close()
    assert status == 413
    assert metric_value(settings, "preempt_slack_actions_refused_total", reason="too_large") == 2
    assert _rss_kib(notifier.proc.pid) - rss_before < 64 * 1024  # nowhere near the 520 MiB offered

    # Just under the limit and unsigned: read, then refused for its signature (401), not its size.
    body = b"payload=" + b"x" * (MAX_ACTION_BODY_BYTES - 100)
    assert post(f"http://127.0.0.1:{port}/slack/actions", body, {}) == 401


def test_slack_actions_non_finite_timestamps_are_401(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """Correctly signed requests whose timestamp is nan, inf or absurd are refused with 401, never 500."""
    settings = notifier_settings(settings_factory, write_routes(tmp_path, ROUTES), slack_signing_secret=SECRET)
    start_notifier(process_factory, settings)
    url = f"http://127.0.0.1:{settings.notifier_web_port}/slack/actions"
    body = b"payload=%7B%7D"
    for timestamp in ("nan", "inf", "-inf", "1e400", str(10**30), str(int(time.time()) - 3600)):
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": slack_signature(SECRET, timestamp, body),
        }
        assert post(url, body, headers) == 401, timestamp


def test_slack_actions_answers_a_stalled_body_408_and_closes_it(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """A sender that declares a small body and sends one byte of it held its connection open for good (the
    ingest port answers such a body 408): now the notifier answers 408 once SLACK_BODY_READ_TIMEOUT_SECONDS
    passed, closes the connection, and counts it."""
    settings = notifier_settings(settings_factory, write_routes(tmp_path, ROUTES), slack_signing_secret=SECRET)
    start_notifier(process_factory, settings)
    started = time.monotonic()
    with socket.create_connection(
        ("127.0.0.1", settings.notifier_web_port), timeout=4 * SLACK_BODY_READ_TIMEOUT_SECONDS
    ) as sock:
        sock.sendall(b"POST /slack/actions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\np")
        answer = sock.recv(4096)
        answered = time.monotonic() - started
        while chunk := sock.recv(4096):  # until the server closes (or the socket's timeout fails the test)
            answer += chunk
        closed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    # Generous upper bounds (a loaded machine): without the limit the socket's own timeout fails the test first.
    assert SLACK_BODY_READ_TIMEOUT_SECONDS - 1 < answered <= closed < 3 * SLACK_BODY_READ_TIMEOUT_SECONDS, (
        answered,
        closed,
    )
    assert metric_value(settings, "preempt_slack_actions_refused_total", reason="too_slow") == 1
