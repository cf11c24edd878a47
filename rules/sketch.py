"""A HyperLogLog sketch for ``distinct:`` buckets that outgrow their exact list of values.

A ``distinct:`` bucket remembers its values exactly, in a list, up to
``rules.measures.DISTINCT_VALUES_PER_BUCKET`` (1,000) of them: every account that stays within it gets
exactly the counts it always got. The next new value turns the bucket into a sketch (its 1,000 values
and the new one added): a bounded string of :data:`REGISTERS` characters, one register each, that
estimates any number of distinct values within about 1.6 % (1.04 / √4096), and merges with other
buckets' sketches (and lists) for a window's count. Before, such a bucket silently stopped counting at
1,000: an account with 20,000 weekly active users counted 1,000 every week, so a fall to 2,000 went
unseen, and the list cost up to 66 KB of state per bucket where a sketch costs 4 KB.

The sketch is a plain string, so the state stays JSON as it was: register ``j`` is the character
``ALPHABET[rank]`` (ranks 0–53 for 64-bit hashes; the alphabet is in ASCII order, so the larger
character is the larger rank and ``max`` merges two registers). A bucket's value is a ``list`` (exact)
or a ``str`` (a sketch): :func:`is_sketch` tells them apart.
"""

from __future__ import annotations

import hashlib
import math
import string
from collections import Counter
from collections.abc import Iterable
from typing import Any

PRECISION = 12
REGISTERS = 1 << PRECISION
"""4,096 registers: a standard error of 1.04 / √4096 ≈ 1.6 %, 4 KB of state per sketch."""
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
"""Register value → character (62 symbols, in ASCII order; ranks reach 64 − PRECISION + 1 = 53)."""
_RANK = {char: rank for rank, char in enumerate(ALPHABET)}
_EMPTY = ALPHABET[0] * REGISTERS
_REST_BITS = 64 - PRECISION
_REST_MASK = (1 << _REST_BITS) - 1
_ALPHA_M = 0.7213 / (1 + 1.079 / REGISTERS)


def is_sketch(value: Any) -> bool:
    """Whether a ``distinct:`` bucket's value is a sketch (a ``str``) rather than its exact values (a ``list``)."""
    return type(value) is str


def _position(value: str) -> tuple[int, str]:
    """The register a value falls in and the character of its rank there."""
    digest = int.from_bytes(hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
    rest = digest & _REST_MASK
    return digest >> _REST_BITS, ALPHABET[_REST_BITS - rest.bit_length() + 1]


def add(sketch: str, value: str) -> str:
    """``sketch`` with ``value`` counted (the same string when no register grows)."""
    index, char = _position(value)
    if sketch[index] >= char:
        return sketch
    return sketch[:index] + char + sketch[index + 1 :]


def of_values(values: Iterable[str], sketch: str = _EMPTY) -> str:
    """A sketch of ``values`` (added to ``sketch``, by default an empty one)."""
    registers = list(sketch)
    for value in values:
        index, char = _position(value)
        if registers[index] < char:
            registers[index] = char
    return "".join(registers)


def merge(sketches: Iterable[str]) -> str:
    """The sketch of the union: each register's largest value."""
    merged: str | None = None
    for sketch in sketches:
        merged = sketch if merged is None else "".join(map(max, merged, sketch))
    return _EMPTY if merged is None else merged


def estimate(sketch: str) -> float:
    """The estimated number of distinct values, a whole number (linear counting while registers are empty,
    as HyperLogLog does for small counts)."""
    counts = Counter(sketch)
    zeros = counts.get(ALPHABET[0], 0)
    harmonic = sum(n * 2.0 ** -_RANK[char] for char, n in counts.items())
    raw = _ALPHA_M * REGISTERS * REGISTERS / harmonic
    if raw <= 2.5 * REGISTERS and zeros:
        raw = REGISTERS * math.log(REGISTERS / zeros)
    return float(round(raw))


def union_count(values: Iterable[Any]) -> float:
    """The number of distinct values over buckets' values, each a list (exact) or a sketch: exact when
    every one is a list, else the estimate of the sketches merged with the listed values added."""
    lists: list[list[str]] = []
    sketches: list[str] = []
    for value in values:
        (sketches if type(value) is str else lists).append(value)
    if not sketches:
        return float(len(set().union(*lists)))
    merged = merge(sketches)
    for listed in lists:
        merged = of_values(listed, merged)
    return estimate(merged)


def count(value: Any) -> float:
    """One bucket's distinct count (a list counts its members; a sketch estimates)."""
    return estimate(value) if type(value) is str else float(len(value))
