"""An event's properties as the risk features read them: each value by its path of keys, nested objects included.

Who calls it: ``preempt train``'s vocabulary (``streams.prescient.training.build_spec``), which finds the terms and
numeric properties in every path, and the feature state (``rules.risk.features.observe``), which reads a nested
term's value by its path in the stream, the backtest and training alike.

A path is read as a rule's ``where`` reads ``properties.payment.status`` (``rules.paths``): through nested objects
(``{"payment": {"status": "failed"}}``) and through keys with dots in their own name (``{"payment.status":
"failed"}``, OpenTelemetry style), which are the same path; where both hold a value, the nested object's is read.
So a term's name, ``Payment Failed[payment.status=failed]``, is also the path a rule would use.

Bounded: objects are read :data:`MAX_DEPTH` levels deep (the event contract allows 32). Lists are not read, nor
anything inside them: an item's position (``products.0.sku``) names nothing the next event shares. A key that is
empty, or has an empty part (``a..b``, ``.a``), or holds ``[``, ``]`` or ``=`` is left out with what is below it:
no rule path reaches the first, and the second would make a term's name ``Export[a=b=c]`` readable two ways.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MAX_DEPTH = 3
"""How many objects deep properties are read: ``plan`` (1), ``payment.status`` (2), ``plan.limits.seats`` (3)."""
UNNAMEABLE = frozenset("[]=")
"""Characters a key (at any level) must not hold to be part of a term's name."""

Path = tuple[str, ...]
"""The keys from ``properties`` down to a value, each without dots (``("payment", "status")``)."""
_NOT_PLAIN = re.compile(r"[.\[\]=]")


def named_properties(properties: dict[str, Any]) -> Iterable[tuple[str | Path, Any]]:
    """Each value of :func:`property_paths` with its name as a term holds it: a top-level key as the key itself
    (``"role"``), a path of two keys or more as the path. For ``preempt train``'s vocabulary, which reads every
    event: properties of plain keys and no object (most events) are given as they are, without building paths."""
    if (
        "" not in properties
        and dict not in map(type, properties.values())
        and not _NOT_PLAIN.search("".join(properties))
    ):
        return properties.items()
    return [(path[0] if len(path) == 1 else path, value) for path, value in property_paths(properties).items()]


def property_paths(properties: dict[str, Any]) -> dict[Path, Any]:
    """Every value in ``properties`` (objects too, lists as they are) by its path, :data:`MAX_DEPTH` objects deep.

    Where two ways lead to one path (``{"a": {"b": 1}, "a.b": 2}``) the value is the one ``rules.paths`` reads:
    the way of the fewest dotted keys first (the nested object's, 1)."""
    found: dict[Path, Any] = {}
    _walk(properties, (), MAX_DEPTH, found)
    return found


def _walk(node: dict[str, Any], prefix: Path, depth: int, found: dict[Path, Any]) -> None:
    items: Any = node.items()
    if any("." in key for key in node):
        # a key of fewer parts first: the ways to a path are then met in the order rules.paths tries them
        items = sorted(items, key=lambda item: item[0].count("."))
    for key, value in items:
        keys = tuple(key.split(".")) if "." in key else (key,)
        if not all(keys) or not UNNAMEABLE.isdisjoint(key):
            continue
        path = prefix + keys
        found.setdefault(path, value)
        if depth > 1 and type(value) is dict:
            _walk(value, path, depth - 1, found)


def check_path(path: Path) -> Path:
    """``path`` if it is one :func:`property_paths` can give (keys without dots, ``[``, ``]``, ``=``; not empty),
    else ``ValueError``: a model file naming another could never match, or would name two things alike."""
    if not path or not all(isinstance(key, str) and key for key in path):
        raise ValueError(f"property path {list(path)!r}: each key a non-empty string")
    for key in path:
        if "." in key or not UNNAMEABLE.isdisjoint(key):
            raise ValueError(f"property path {list(path)!r}: a key holds '.', '[', ']' or '=' ({key!r})")
    return path


def path_label(prop: str | Path) -> str:
    """A property as a term's name shows it: a top-level key as it is, a path with dots (``payment.status``)."""
    return prop if isinstance(prop, str) else ".".join(prop)
