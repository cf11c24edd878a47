"""Time buckets for windows, aligned to one origin so every process cuts time the same way.

Sliding windows (``threshold``, ``ratio``, ``spike``) keep one value per bucket of
``resolution = window / 60`` (1 s for windows under a minute, which the rule models keep to whole
seconds); the window "at time t" is t's bucket and the 59 before it (under a minute: the window's
seconds less one), so it spans between ``window − resolution`` and ``window``.
Tumbling windows (``drop``, ``score`` ticks) start at multiples of their length from the origin,
Monday 1970-01-05T00:00:00Z, so weekly windows run Monday to Monday and daily ones midnight to
midnight (UTC).

Bucket lists are plain ``[[index, value], …]`` lists, oldest first, so state serializes as JSON. A
``distinct:`` bucket's value is the list of its values, or past ``DISTINCT_VALUES_PER_BUCKET`` of them a
sketch (``rules.sketch``, a string): :func:`add_distinct`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from rules import sketch
from rules.measures import DISTINCT_VALUES_PER_BUCKET, MeasureKind

ORIGIN = 345_600.0  # 1970-01-05T00:00:00Z, a Monday
BUCKETS_PER_WINDOW = 60

Buckets = list[list[Any]]
_value = itemgetter(1)
"""A bucket's value (``sum(map(_value, buckets))`` adds them in order, as a loop would, in C)."""


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """How a window of ``window`` seconds is cut: ``per_window`` buckets of ``resolution`` s."""

    resolution: float
    per_window: int

    @classmethod
    def sliding(cls, window: float) -> BucketSpec:
        """The spec of a sliding window (see the module docstring)."""
        if window < BUCKETS_PER_WINDOW:
            return cls(1.0, max(1, math.ceil(window)))
        return cls(window / BUCKETS_PER_WINDOW, BUCKETS_PER_WINDOW)

    @classmethod
    def tumbling(cls, length: float, window: float) -> BucketSpec:
        """Buckets of exactly ``length``; ``window`` must be a whole multiple of it."""
        return cls(length, round(window / length))

    def index(self, ts: float) -> int:
        """The bucket holding ``ts``."""
        return math.floor((ts - ORIGIN) / self.resolution)

    def start(self, index: int) -> float:
        """The start time of bucket ``index``."""
        return ORIGIN + index * self.resolution


def add(buckets: Buckets, index: int, contribution: Any, kind: MeasureKind) -> None:
    """Add one contribution in bucket ``index`` (never older than the newest bucket)."""
    if buckets and buckets[-1][0] == index:
        slot = buckets[-1]
    else:
        slot = [index, [] if kind == "distinct" else 0]
        buckets.append(slot)
    if kind == "distinct":
        slot[1] = add_distinct(slot[1], contribution)
    else:
        slot[1] += contribution


def add_distinct(values: list[str] | str, contribution: str, precision: int = sketch.PRECISION) -> list[str] | str:
    """A ``distinct:`` bucket's value with ``contribution`` counted: its list of values (changed in place)
    while it holds at most ``DISTINCT_VALUES_PER_BUCKET``, then a sketch of them (``rules.sketch``, of
    ``precision``) — the value to store back. Before the sketch, values past the bound were not counted."""
    if isinstance(values, str):
        return sketch.add(values, contribution)
    if contribution not in values:
        if len(values) < DISTINCT_VALUES_PER_BUCKET:
            values.append(contribution)
        else:
            return sketch.of_values([*values, contribution], sketch.empty(precision))
    return values


MAX_LISTED_VALUES = 5_000
"""A key's ``distinct:`` buckets list at most this many values exactly, summed over its buckets (a value in
three buckets counts three times): past it, :func:`add_value` turns them into sketches. Without it a
sliding window kept up to 60 buckets × 1,000 values: 20,000 users logging in within an hour took 660 KB
of one ``threshold``'s state, and the account was quarantined. 5,000 30-character values are 165 KB."""


def add_value(buckets: Buckets, index: int, contribution: str, precision: int) -> None:
    """:func:`add` for ``distinct:`` buckets of one key, keeping at most :data:`MAX_LISTED_VALUES` listed:
    past it every listed bucket becomes a sketch of ``precision`` (``rules.sketch.precision_for`` the
    key's bucket count, so its sketches stay within ``MAX_SKETCH_CHARS_PER_KEY``)."""
    if buckets and buckets[-1][0] == index:
        slot = buckets[-1]
    else:
        slot = [index, sketch.empty(precision) if _busy(buckets) else []]
        buckets.append(slot)
    values = slot[1]
    if type(values) is str:
        slot[1] = sketch.add(values, contribution)
        return
    if contribution in values:
        return
    if len(values) >= DISTINCT_VALUES_PER_BUCKET:
        slot[1] = add_distinct(values, contribution, precision)  # the bucket's sketch
        return
    values.append(contribution)
    # _listed(buckets) > MAX_LISTED_VALUES, inlined: asked for every value new to its bucket
    listed = 0
    for _, value in buckets:
        if type(value) is list:
            listed += len(value)
    if listed > MAX_LISTED_VALUES:
        empty = sketch.empty(precision)
        for bucket in buckets:
            if type(bucket[1]) is list:
                bucket[1] = sketch.of_values(bucket[1], empty)


BUSY_VALUES_PER_BUCKET = 100
"""A key whose newest bucket is a sketch estimating more than this many values starts its next bucket as a sketch
(:func:`_busy`); below it, as an exact list again."""


def _busy(buckets: Buckets) -> bool:
    """Whether a new bucket of the key starts as a sketch: its newest bucket is one, of a busy time. Every new
    bucket of a key with a sketch was one before, so a key that had one burst counted by estimates for as long as it
    stayed active (a sliding window's 30 users read 29); now its buckets are lists again once its traffic falls, and
    its counts exact once the sketches leave the window. A busy key goes on with sketches: a list would be scanned
    on every event and refill to the bound."""
    if not buckets:
        return False
    newest = buckets[-1][1]
    return type(newest) is str and sketch.estimate(newest) > BUSY_VALUES_PER_BUCKET


def _listed(buckets: Buckets) -> int:
    """How many values a key's ``distinct:`` buckets list exactly."""
    return sum(len(value) for _, value in buckets if type(value) is list)


def prune(buckets: Buckets, oldest: int) -> None:
    """Drop buckets older than index ``oldest``."""
    drop = 0
    for slot in buckets:
        if slot[0] >= oldest:
            break
        drop += 1
    if drop:
        del buckets[:drop]


def prune_counted(buckets: Buckets, oldest: int) -> int:
    """Drop buckets older than index ``oldest`` (integer counts); returns the count dropped."""
    drop = 0
    dropped = 0
    for slot in buckets:
        if slot[0] >= oldest:
            break
        drop += 1
        dropped += slot[1]
    if drop:
        del buckets[:drop]
    return dropped


def count_all(buckets: Buckets) -> int:
    """The sum of every bucket of integer counts."""
    return sum(map(_value, buckets))


def total(buckets: Buckets, lo: int, hi: int, kind: MeasureKind) -> float:
    """The measure over buckets ``lo..hi`` inclusive."""
    if buckets and lo <= buckets[0][0] and buckets[-1][0] <= hi:  # all of them (the usual case after a prune)
        values: Iterable[Any] = map(_value, buckets)
    else:
        values = (value for index, value in buckets if lo <= index <= hi)
    if kind == "distinct":
        return sketch.union_count(values)
    return float(sum(values))


def split_totals(buckets: Buckets, boundary: int, kind: MeasureKind) -> tuple[float, float]:
    """``(total(before boundary), total(from boundary))`` in one pass, for buckets already pruned to
    the two windows (as ``total`` would give for each window: same values, summed in the same order)."""
    split = len(buckets)
    for position, slot in enumerate(buckets):
        if slot[0] >= boundary:
            split = position
            break
    if kind == "distinct":
        return sketch.union_count(map(_value, buckets[:split])), sketch.union_count(map(_value, buckets[split:]))
    return float(sum(map(_value, buckets[:split]))), float(sum(map(_value, buckets[split:])))


def reduce_value(value: Any) -> float:
    """A single bucket's value as a number (distinct lists count their members, sketches estimate)."""
    return sketch.count(value) if isinstance(value, list | str) else float(value)
