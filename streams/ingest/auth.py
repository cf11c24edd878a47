"""Ingest authentication: per-source API keys (stored as sha256 digests) and optional HMAC signing.

API keys. ``PREEMPT_INGEST_API_KEYS`` holds sha256 hex digests of the accepted keys, optionally
named by source (``web=3f7a…``), so a leaked settings file does not leak the keys. A request
presents ``Authorization: Bearer <key>``, or HTTP Basic auth with the key as the user name and an
empty password (what the Segment and RudderStack SDKs send: their "write key"); its digest is
compared with every stored digest in constant time (``hmac.compare_digest``), without an early exit.

Signing. With ``PREEMPT_INGEST_HMAC_SECRET`` set, a request must also carry
``X-Preempt-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is the hex HMAC-SHA256 of
``f"{t}.".encode() + raw_body`` under the secret, and ``t`` within five minutes of the server's
clock (either way) so a captured request cannot be replayed later. Several ``v1=`` entries may be
given (secret rotation); one match suffices. ``t`` must be at most 12 digits (a huge number used
to give a 500). A signature is accepted once: ``ReplayGuard`` remembers the signatures seen within
the tolerance window, so the same signed request sent again is refused (per ingest process; see
docs/events.md for several replicas).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from streams.runtime.replay_guard import ReplayGuard

SIGNATURE_HEADER = "X-Preempt-Signature"
SIGNATURE_TOLERANCE_S = 300.0
MAX_TIMESTAMP_DIGITS = 12  # unix seconds up to year 33658; anything longer is not a clock reading


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


def presented_key(authorization: str | None) -> str | None:
    """The API key in an ``Authorization`` header: ``Bearer <key>`` or Basic ``<key>:`` (empty password)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if not token:
        return None
    if scheme.lower() == "bearer":
        return token
    if scheme.lower() != "basic" or len(token) > 4096:
        return None
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    # The SDKs send the write key as the user name and nothing as the password (``f"{key}:"``); a
    # password would mean some other credential scheme that we do not check, so it is refused rather
    # than ignored. Split at the last colon: the password is empty, so every colon before it belongs to
    # the key (a key with a colon was split at its first one and always refused).
    user, sep, password = decoded.rpartition(":")
    if not sep or password or not user:
        return None
    return user


def authenticate(authorization: str | None, keys: Iterable[ApiKey]) -> str | None:
    """The source of the presented key (Bearer or Basic), or None when it is missing or matches no key."""
    token = presented_key(authorization)
    if token is None:
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


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed ``X-Preempt-Signature``: the timestamp and the candidate MACs."""

    timestamp: int
    candidates: tuple[str, ...]


def parse_signature(header: str | None) -> Signature | str:
    """The parsed header, or why it cannot be one (for the 401)."""
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
    if (
        timestamp is None
        or not timestamp.isascii()
        or not timestamp.isdigit()
        or len(timestamp) > MAX_TIMESTAMP_DIGITS
        or not candidates
    ):
        return f"malformed {SIGNATURE_HEADER} header (expected t=<unix seconds>,v1=<hex>)"
    return Signature(int(timestamp), tuple(candidates))


def verify_signature(
    header: str | None,
    body: bytes,
    secret: bytes,
    now: float,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
    replays: ReplayGuard | None = None,
) -> str | None:
    """None when ``header`` is a valid, fresh (and, with ``replays``, first-seen) signature of ``body``.

    Otherwise the reason, for the 401. The replay check runs only once the MAC matched, so a forged
    signature can never fill the guard.
    """
    parsed = parse_signature(header)
    if isinstance(parsed, str):
        return parsed
    if not abs(now - parsed.timestamp) <= tolerance_s:  # also false for a non-finite clock
        return f"signature timestamp is more than {tolerance_s:.0f}s from the server's clock"
    expected = hmac.new(secret, f"{parsed.timestamp}.".encode() + body, hashlib.sha256).hexdigest().encode()
    matched = False
    for candidate in parsed.candidates:
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        return "signature does not match the body"
    if replays is not None and not replays.first_use(expected, parsed.timestamp + tolerance_s, now):
        return "this signed request was already received (replay refused)"
    return None
