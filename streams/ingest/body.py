"""Request bodies: read within the size limit, and gzip decompression after authentication.

The SDKs (RudderStack's by default, Segment's with ``gzip=True``) send ``Content-Encoding: gzip``.
The app calls :func:`decode_content` only after the API key (and the signature, which covers the
bytes as sent) was checked, so an unauthenticated client cannot make ingest inflate anything. The
inflation is bounded: the decompressed size may not exceed ``max_bytes`` and, when ``max_ratio`` is
given (``PREEMPT_INGEST_MAX_GZIP_RATIO``, off by default), the ratio decompressed/compressed may not
exceed it; it stops as soon as a bound is crossed, so a gzip bomb costs at most ``max_bytes`` of
memory and the CPU to inflate that much. (A ratio is no default: real SDK batches of calls that
share a large object inflate 100-200 times, and the size bound alone already caps the cost.)
"""

from __future__ import annotations

import zlib


class BodyTooLarge(ValueError):  # noqa: N818 - reads as the condition it reports
    """The body, as sent or once decompressed, is over a limit: HTTP 413."""


class UnsupportedEncoding(ValueError):  # noqa: N818
    """A ``Content-Encoding`` other than identity or gzip: HTTP 415."""


class CorruptBody(ValueError):  # noqa: N818
    """A gzip body that does not inflate (corrupt, truncated, trailing data): HTTP 400."""


def decode_content(body: bytes, encoding: str | None, *, max_bytes: int, max_ratio: float | None) -> bytes:
    """``body`` decompressed according to ``Content-Encoding`` (identity or gzip), within the limits."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("identity", ""):
        return body
    if coding not in ("gzip", "x-gzip"):
        raise UnsupportedEncoding(f"Content-Encoding {coding!r} is not supported (use gzip or none)")
    limit = max_bytes if max_ratio is None else min(max_bytes, int(max(len(body), 1) * max_ratio))
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
    out = bytearray()
    data = body
    try:
        while not inflater.eof:
            # max_length bounds every step, so a tiny input can never inflate past the limit at once.
            chunk = inflater.decompress(data, limit + 1 - len(out))
            out += chunk
            if len(out) > limit:
                break
            data = inflater.unconsumed_tail
            if not data and not chunk:
                break
    except zlib.error as exc:
        raise CorruptBody(f"the gzip body is corrupt: {exc}") from None
    if len(out) > limit:
        if limit == max_bytes:
            raise BodyTooLarge(f"the decompressed body is larger than {max_bytes} bytes")
        raise BodyTooLarge(f"the gzip body inflates more than {max_ratio:g} times; refused as a compression bomb")
    if not inflater.eof:
        raise CorruptBody("the gzip body is truncated")
    if inflater.unused_data:
        raise CorruptBody("the gzip body has trailing data (several gzip members are not supported)")
    return bytes(out)
