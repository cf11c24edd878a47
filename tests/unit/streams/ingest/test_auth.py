"""Ingest authentication: API key digests and request signatures."""

from __future__ import annotations

import base64

import pytest

from streams.ingest.auth import (
    authenticate,
    key_digest,
    parse_api_keys,
    sign,
    verify_signature,
)
from streams.runtime.replay_guard import ReplayGuard, ReplayGuardFull

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


def test_basic_auth_with_the_key_as_user_name_and_no_password_is_accepted() -> None:
    """The SDKs' write key (Basic base64("<key>:")) authenticates like a Bearer key; a password or junk does not."""
    keys = parse_api_keys([f"web={key_digest('k-web')}"])

    def basic(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    assert authenticate(basic("k-web:"), keys) == "web"
    for header in (basic("k-web:secret"), basic("k-web"), basic(":k-web"), basic("k-other:"), "Basic %%%", "Basic "):
        assert authenticate(header, keys) is None


def test_a_write_key_holding_a_colon_is_accepted_as_basic_auth() -> None:
    """The SDKs send base64(f"{key}:"); a key with a colon in it was split at its first colon, read as a
    password and refused (401 for every batch). The empty password is after the last colon."""
    keys = parse_api_keys([f"web={key_digest('k:web')}"])

    def basic(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    assert authenticate(basic("k:web:"), keys) == "web"
    assert authenticate("Bearer k:web", keys) == "web"
    for header in (basic("k:web"), basic("k:web:x"), basic("k:"), basic(":web:")):
        assert authenticate(header, keys) is None


@pytest.mark.parametrize("stamp", ["nan", "inf", "-1", "1e9", "9" * 13, "9" * 5000, " 17", "１７"])
def test_non_numeric_or_absurd_signature_timestamps_are_malformed(stamp: str) -> None:
    """t= must be 1–12 ASCII digits: nan, huge or odd values are a 401 reason, never an exception."""
    problem = verify_signature(f"t={stamp},v1=ab", BODY, SECRET, NOW)
    assert problem is not None
    assert "malformed" in problem


def test_a_signed_request_is_accepted_once_within_the_window() -> None:
    """The replay guard refuses the same signature a second time, and forgets it once it expired."""
    guard = ReplayGuard(capacity=10)
    header = sign(SECRET, BODY, NOW)
    assert verify_signature(header, BODY, SECRET, NOW, replays=guard) is None
    assert verify_signature(header, BODY, SECRET, NOW + 1, replays=guard) == (
        "this signed request was already received (replay refused)"
    )
    assert len(guard) == 1
    assert guard.first_use(b"other", NOW + 10, NOW + 400) is True  # purges the expired signature
    assert len(guard) == 1


def test_a_full_replay_guard_refuses_instead_of_forgetting() -> None:
    """At capacity the guard raises (the app answers 429) rather than dropping a live signature."""
    guard = ReplayGuard(capacity=2)
    assert guard.first_use(b"a", NOW + 300, NOW)
    assert guard.first_use(b"b", NOW + 300, NOW)
    with pytest.raises(ReplayGuardFull):
        guard.first_use(b"c", NOW + 300, NOW)
    assert not guard.first_use(b"a", NOW + 300, NOW)


def test_forged_signatures_never_enter_the_replay_guard() -> None:
    """Only a matching MAC is remembered, so forgeries cannot fill the guard."""
    guard = ReplayGuard(capacity=1)
    assert (
        verify_signature(sign(b"wrong", BODY, NOW), BODY, SECRET, NOW, replays=guard)
        == "signature does not match the body"
    )
    assert len(guard) == 0
