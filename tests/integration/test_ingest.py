"""`preempt ingest` as a real process: signed HTTP requests end up as records on the real broker."""

from __future__ import annotations

import base64
import gzip
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
    basic = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()

    def track(message_id: str, **overrides: Any) -> dict[str, Any]:
        return {
            "type": "track",
            "messageId": message_id,
            "userId": "u-1",
            "event": "Login",
            "timestamp": stamp,
            "context": {"groupId": "acme"},
        } | overrides

    def send(path: str, body: bytes, headers: dict[str, str], signature: str | None = "sign") -> int:
        if signature == "sign":
            headers = headers | {"X-Preempt-Signature": sign(SECRET.encode(), body, now)}
        elif signature is not None:
            headers = headers | {"X-Preempt-Signature": signature}
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1 only
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    good = orjson.dumps(
        {"batch": [track("good-1"), track("no-account", context={}), track("bad-time", timestamp="nan")]}
    )
    bomb = gzip.compress(orjson.dumps({"batch": [track("bomb", properties={"pad": "0" * 30_000_000})]}))
    cases: list[tuple[str, str, bytes, dict[str, str], str | None, int]] = [
        ("mixed batch", "/v1/batch", good, {"Authorization": basic}, "sign", 200),
        ("replayed", "/v1/batch", good, {"Authorization": basic}, sign(SECRET.encode(), good, now), 401),
        ("no key", "/v1/batch", orjson.dumps({"batch": [track("x1")]}), {}, "sign", 401),
        (
            "basic password",
            "/v1/batch",
            orjson.dumps({"batch": [track("x2")]}),
            {"Authorization": "Basic " + base64.b64encode(f"{KEY}:pw".encode()).decode()},
            "sign",
            401,
        ),
        ("unsigned", "/v1/batch", orjson.dumps({"batch": [track("x3")]}), {"Authorization": basic}, None, 401),
        (
            "forged",
            "/v1/batch",
            orjson.dumps({"batch": [track("x4")]}),
            {"Authorization": basic},
            sign(b"not-the-secret", orjson.dumps({"batch": [track("x4")]}), now),
            401,
        ),
        (
            "stale",
            "/v1/batch",
            orjson.dumps({"batch": [track("x5")]}),
            {"Authorization": basic},
            sign(SECRET.encode(), orjson.dumps({"batch": [track("x5")]}), now - 3600),
            401,
        ),
        ("t=nan", "/v1/batch", orjson.dumps({"batch": [track("x6")]}), {"Authorization": basic}, "t=nan,v1=00", 401),
        (
            "huge t",
            "/v1/batch",
            orjson.dumps({"batch": [track("x7")]}),
            {"Authorization": basic},
            "t=" + "9" * 5000 + ",v1=00",
            401,
        ),
        ("gzip bomb", "/v1/batch", bomb, {"Authorization": basic, "Content-Encoding": "gzip"}, "sign", 413),
        (
            "too many items",
            "/v1/batch",
            orjson.dumps({"batch": [track(f"x8-{i}") for i in range(51)]}),
            {"Authorization": basic},
            "sign",
            413,
        ),
        (
            "huge shared context",
            "/v1/batch",
            orjson.dumps({"batch": [track("x9")], "context": {"traits": {"pad": "y" * 20_000}}}),
            {"Authorization": basic},
            "sign",
            400,
        ),
        ("oversize", "/v1/batch", b" " * (2 * 1024 * 1024), {"Authorization": basic}, "sign", 413),
        (
            "canonical mixed",
            "/v1/events",
            orjson.dumps(
                [
                    {"event_id": "good-2", "event": "Login", "account_id": "acme", "timestamp": stamp},
                    {"event_id": "x10", "event": "Login", "timestamp": stamp},
                ]
            ),
            {"Authorization": f"Bearer {KEY}"},
            "sign",
            202,
        ),
        (
            "canonical too many",
            "/v1/events",
            orjson.dumps(
                [
                    {"event_id": f"x11-{i}", "event": "Login", "account_id": "acme", "timestamp": stamp}
                    for i in range(51)
                ]
            ),
            {"Authorization": f"Bearer {KEY}"},
            "sign",
            413,
        ),
    ]
    got = {name: send(path, body, headers, signature) for name, path, body, headers, signature, _ in cases}
    assert got == {name: status for name, *_, status in cases}, proc.log_text()[-3000:]

    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 2, timeout_s=30, idle_s=2)
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == ["good-1", "good-2"]
    assert "Traceback" not in proc.log_text()
