"""Ingest authentication: per-source API keys (stored as sha256 digests) and optional HMAC signing.

API keys. ``PREEMPT_INGEST_API_KEYS`` holds sha256 hex digests of the accepted keys, optionally
named by source (``web=3f7a…``), so a leaked settings file does not leak the keys. A request
presents ``Authorization: Bearer <key>``; its digest is compared with every stored digest in
constant time (``hmac.compare_digest``), without an early exit.

Signing. With ``PREEMPT_INGEST_HMAC_SECRET`` set, a request must also carry
``X-Preempt-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is the hex HMAC-SHA256 of
``f"{t}.".encode() + raw_body`` under the secret, and ``t`` within five minutes of the server's
clock (either way) so a captured request cannot be replayed later. Several ``v1=`` entries may be
given (secret rotation); one match suffices.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Preempt-Signature"
SIGNATURE_TOLERANCE_S = 300.0


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One accepted key: the source it belongs to and the sha256 hex digest of the key."""

    source: str
    digest: bytes  # 64 lowercase hex characters, as bytes for compare_digest


def key_digest(key: str) -> str:
    """The sha256 hex digest to store in ``PREEMPT_INGEST_API_KEYS`` for API key ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_api_keys(entries: Iterable[str]) -> list[ApiKey]:
    """Parse settings entries ``digest`` or ``source=digest``; ``ValueError`` names a bad entry."""
    keys = []
    for n, entry in enumerate(entries, start=1):
        source, sep, digest = entry.strip().rpartition("=")
        digest = digest.strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"PREEMPT_INGEST_API_KEYS entry {n} is not a sha256 hex digest (64 hex characters)")
        keys.append(ApiKey(source=source.strip() if sep else f"key-{n}", digest=digest.encode()))
    return keys


def authenticate(authorization: str | None, keys: Iterable[ApiKey]) -> str | None:
    """The source of the presented bearer key, or None when it is missing or matches no key."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    presented = key_digest(token).encode()
    found: str | None = None
    for key in keys:  # no early exit: the time taken does not depend on which key matched
        if hmac.compare_digest(presented, key.digest) and found is None:
            found = key.source
    return found


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Preempt-Signature`` value for ``body`` at ``timestamp`` (what clients compute)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    header: str | None, body: bytes, secret: bytes, now: float, tolerance_s: float = SIGNATURE_TOLERANCE_S
) -> str | None:
    """None when ``header`` is a valid, fresh signature of ``body``; otherwise why not (for the 401)."""
    if not header:
        return f"missing {SIGNATURE_HEADER} header"
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            candidates.append(value.lower())
    if timestamp is None or not timestamp.isascii() or not timestamp.isdigit() or not candidates:
        return f"malformed {SIGNATURE_HEADER} header (expected t=<unix seconds>,v1=<hex>)"
    if abs(now - int(timestamp)) > tolerance_s:
        return f"signature timestamp is more than {tolerance_s:.0f}s from the server's clock"
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest().encode()
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode())
    return None if matched else "signature does not match the body"
