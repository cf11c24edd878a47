"""Ingest authentication: API key digests and request signatures."""

from __future__ import annotations

import pytest

from streams.ingest.auth import authenticate, key_digest, parse_api_keys, sign, verify_signature

SECRET = b"whsec-test"
BODY = b'{"event": "Login"}'
NOW = 1_795_413_600


def test_bearer_key_is_matched_to_its_source() -> None:
    """A presented key whose digest is stored authenticates as that entry's source."""
    keys = parse_api_keys([f"web={key_digest('k-web')}", key_digest("k-other")])
    assert authenticate("Bearer k-web", keys) == "web"
    assert authenticate("bearer k-other", keys) == "key-2"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic k-web", "Bearer k-wrong", "k-web"])
def test_missing_malformed_or_unknown_keys_are_refused(header: str | None) -> None:
    """Anything but `Bearer <a stored key>` authenticates as nobody."""
    assert authenticate(header, parse_api_keys([key_digest("k-web")])) is None


@pytest.mark.parametrize("entry", ["", "abc", "web=" + "g" * 64, "x" * 64])
def test_bad_digest_entries_are_refused_at_load(entry: str) -> None:
    """A settings entry that is not a sha256 hex digest fails loudly, naming the entry."""
    with pytest.raises(ValueError, match="entry 1"):
        parse_api_keys([entry])


def test_fresh_signature_of_the_body_is_valid() -> None:
    """A signature made by sign() for the same body, within tolerance, verifies."""
    assert verify_signature(sign(SECRET, BODY, NOW - 299), BODY, SECRET, now=NOW) is None


def test_rotated_secrets_may_send_several_v1_values() -> None:
    """One matching v1 among several is enough (secret rotation)."""
    good = sign(SECRET, BODY, NOW).split("v1=")[1]
    assert verify_signature(f"t={NOW},v1={'0' * 64},v1={good}", BODY, SECRET, now=NOW) is None


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (None, "missing"),
        ("v1=abc", "malformed"),
        (f"t={NOW}", "malformed"),
        (f"t=-{NOW},v1=ab", "malformed"),
        (sign(SECRET, BODY, NOW - 301), "more than 300s"),
        (sign(SECRET, BODY, NOW + 301), "more than 300s"),
        (sign(b"other-secret", BODY, NOW), "does not match"),
        (sign(SECRET, BODY + b" ", NOW), "does not match"),
    ],
    ids=["missing", "no-t", "no-v1", "negative-t", "stale", "future", "forged", "tampered-body"],
)
def test_bad_signatures_are_refused_with_the_reason(header: str | None, needle: str) -> None:
    """Missing, malformed, stale, future, forged and tampered signatures each say why they fail."""
    problem = verify_signature(header, BODY, SECRET, now=NOW)
    assert problem is not None
    assert needle in problem
