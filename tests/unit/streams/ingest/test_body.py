"""Request bodies: gzip decompression within a size and a ratio limit."""

from __future__ import annotations

import gzip
import os

import pytest

from streams.ingest.body import BodyTooLarge, CorruptBody, UnsupportedEncoding, decode_content


def test_identity_and_gzip_bodies_decode() -> None:
    """No encoding returns the body; gzip inflates it."""
    data = os.urandom(50_000).hex().encode()
    assert decode_content(data, None, max_bytes=10**6, max_ratio=100) is data
    assert decode_content(gzip.compress(data), "gzip", max_bytes=10**6, max_ratio=100) == data


def test_a_gzip_bomb_stops_at_the_ratio_or_size_limit() -> None:
    """50 MB of zeros in 49 KB of gzip is refused by the ratio limit, or by the size limit when that is lower."""
    bomb = gzip.compress(b"\0" * 50_000_000)
    with pytest.raises(BodyTooLarge, match="inflates more than 100 times"):
        decode_content(bomb, "gzip", max_bytes=10**9, max_ratio=100)
    with pytest.raises(BodyTooLarge, match="larger than 1000000 bytes"):
        decode_content(bomb, "gzip", max_bytes=10**6, max_ratio=10_000)


def test_without_a_ratio_limit_only_the_size_bounds_a_gzip_body() -> None:
    """With no ratio (the default) a body that inflates 200 times within the size limit is read, and a bomb still
    stops at the size limit."""
    flags = b'{"feature_042_enabled": true, ' * 200
    data = b"[" + b",".join(b'{"id": %d, "flags": %s}' % (i, flags) for i in range(100)) + b"]"
    packed = gzip.compress(data)
    assert len(data) / len(packed) > 150
    assert len(data) < 10**6
    assert decode_content(packed, "gzip", max_bytes=10**6, max_ratio=None) == data
    with pytest.raises(BodyTooLarge, match="larger than 1000000 bytes"):
        decode_content(gzip.compress(b"\0" * 50_000_000), "gzip", max_bytes=10**6, max_ratio=None)


@pytest.mark.parametrize(
    "body",
    [b"not gzip", gzip.compress(b'{"a": 1}')[:-6], gzip.compress(b"{}") + b"junk"],
    ids=["corrupt", "truncated", "trailing-data"],
)
def test_broken_gzip_is_a_corrupt_body(body: bytes) -> None:
    """A gzip stream that does not inflate cleanly is CorruptBody (400)."""
    with pytest.raises(CorruptBody):
        decode_content(body, "gzip", max_bytes=10**6, max_ratio=100)


def test_other_encodings_are_unsupported() -> None:
    """br, deflate and friends are UnsupportedEncoding (415)."""
    with pytest.raises(UnsupportedEncoding, match="'br'"):
        decode_content(b"x", "br", max_bytes=10**6, max_ratio=100)
