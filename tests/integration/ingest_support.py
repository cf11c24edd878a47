"""What the ingest integration tests and chaos scenario 9 share: the key, the secret, the HTTP client and
the table of abuse cases (each with the status docs/events.md gives it and the good events it carries)."""

from __future__ import annotations

import base64
import gzip
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import orjson

from streams.ingest.auth import sign
from tests.integration.conftest import ManagedProcess

KEY = "pk_test_ingest"
SECRET = "whsec_integration"
SIGN = "sign"  # as a case's signature: sign the body with SECRET at the request's ``now``


def post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to /v1/events on 127.0.0.1; the status and the JSON answer."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def send(
    port: int, path: str, body: bytes, headers: dict[str, str], signature: str | None, now: int, secret: str = SECRET
) -> int:
    """POST ``body`` to ``path`` on 127.0.0.1 with ``signature`` (``SIGN``: ``secret``'s at ``now``); the status."""
    if signature == SIGN:
        headers = headers | {"X-Preempt-Signature": sign(secret.encode(), body, now)}
    elif signature is not None:
        headers = headers | {"X-Preempt-Signature": signature}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1 only
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_healthy(port: int, proc: ManagedProcess, timeout_s: float = 60) -> None:
    """Return once /healthz answers 200; fail (with the log's tail) when the process exits or time runs out."""
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


def basic_auth(key: str = KEY, password: str = "") -> str:
    """The ``Authorization`` value of a Segment/RudderStack SDK (the key as the Basic user)."""
    return "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()


def track(message_id: str, stamp: str, **overrides: Any) -> dict[str, Any]:
    """A good Segment ``track`` item for account ``acme`` (``overrides`` make it bad)."""
    return {
        "type": "track",
        "messageId": message_id,
        "userId": "u-1",
        "event": "Login",
        "timestamp": stamp,
        "context": {"groupId": "acme"},
    } | overrides


def canonical(event_id: str, stamp: str, **overrides: Any) -> dict[str, Any]:
    """A good canonical event for account ``acme``."""
    return {"event_id": event_id, "event": "Login", "account_id": "acme", "timestamp": stamp} | overrides


@dataclass(frozen=True)
class AbuseCase:
    """One request of the abuse table: what is sent, the status it must get, the good events in it."""

    name: str
    path: str
    body: bytes
    headers: dict[str, str]
    signature: str | None
    status: int
    good_ids: tuple[str, ...] = ()


def abuse_cases(
    now: int, stamp: str, max_items: int, tag: str = "", key: str = KEY, secret: str = SECRET
) -> list[AbuseCase]:
    """Every abuse case, in order (the replay must follow the mixed batch it replays).

    ``now`` is the signing time of the request (SIGN), ``stamp`` the events' timestamp, ``max_items``
    the server's ``PREEMPT_INGEST_MAX_ITEMS``; ``tag`` prefixes every id, so that several rounds send
    different bodies (the same body signed in the same second would be refused as a replay); ``key``
    and ``secret`` are the server's API key and signing secret (SIGN cases must be sent with it).
    """
    basic = {"Authorization": basic_auth(key)}
    mac_key = secret.encode()

    def one(name: str) -> bytes:
        return orjson.dumps({"batch": [track(f"{tag}{name}", stamp)]})

    mixed = orjson.dumps(
        {
            "batch": [
                track(f"{tag}good-1", stamp),
                track(f"{tag}no-account", stamp, context={}),
                track(f"{tag}bad-time", stamp, timestamp="nan"),
            ]
        }
    )
    bomb = gzip.compress(orjson.dumps({"batch": [track(f"{tag}bomb", stamp, properties={"pad": "0" * 30_000_000})]}))
    many = [track(f"{tag}x8-{i}", stamp) for i in range(max_items + 1)]
    canonical_many = [canonical(f"{tag}x11-{i}", stamp) for i in range(max_items + 1)]
    return [
        AbuseCase("mixed batch", "/v1/batch", mixed, basic, SIGN, 200, (f"{tag}good-1",)),
        AbuseCase("replayed", "/v1/batch", mixed, basic, sign(mac_key, mixed, now), 401),
        AbuseCase("no key", "/v1/batch", one("x1"), {}, SIGN, 401),
        AbuseCase("unknown key", "/v1/batch", one("x1b"), {"Authorization": basic_auth("pk_guessed")}, SIGN, 401),
        AbuseCase("basic password", "/v1/batch", one("x2"), {"Authorization": basic_auth(key, "pw")}, SIGN, 401),
        AbuseCase("unsigned", "/v1/batch", one("x3"), basic, None, 401),
        AbuseCase("forged", "/v1/batch", one("x4"), basic, sign(b"not-the-secret", one("x4"), now), 401),
        AbuseCase("stale", "/v1/batch", one("x5"), basic, sign(mac_key, one("x5"), now - 3600), 401),
        AbuseCase("t=nan", "/v1/batch", one("x6"), basic, "t=nan,v1=00", 401),
        AbuseCase("huge t", "/v1/batch", one("x7"), basic, "t=" + "9" * 5000 + ",v1=00", 401),
        AbuseCase("gzip bomb", "/v1/batch", bomb, basic | {"Content-Encoding": "gzip"}, SIGN, 413),
        AbuseCase("too many items", "/v1/batch", orjson.dumps({"batch": many}), basic, SIGN, 413),
        AbuseCase(
            "huge shared context",
            "/v1/batch",
            orjson.dumps({"batch": [track(f"{tag}x9", stamp)], "context": {"traits": {"pad": "y" * 20_000}}}),
            basic,
            SIGN,
            400,
        ),
        AbuseCase("oversize", "/v1/batch", b" " * (9 * 1024 * 1024), basic, SIGN, 413),  # batch routes: 8 MiB
        AbuseCase(
            "canonical mixed",
            "/v1/events",
            orjson.dumps(
                [canonical(f"{tag}good-2", stamp), {"event_id": f"{tag}x10", "event": "Login", "timestamp": stamp}]
            ),
            {"Authorization": f"Bearer {key}"},
            SIGN,
            202,
            (f"{tag}good-2",),
        ),
        AbuseCase(
            "canonical too many",
            "/v1/events",
            orjson.dumps(canonical_many),
            {"Authorization": f"Bearer {key}"},
            SIGN,
            413,
        ),
    ]
