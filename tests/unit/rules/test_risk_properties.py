"""Property paths as the risk features read them: nested objects 3 deep, dotted keys, no lists, no ambiguous keys."""

from __future__ import annotations

from typing import Any

import pytest

from rules.paths import MISSING, compile_path
from rules.risk.properties import MAX_DEPTH, check_path, named_properties, path_label, property_paths
from schemas.event import Event


def _scalars(properties: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    return {p: v for p, v in property_paths(properties).items() if not isinstance(v, dict | list)}


def test_nested_objects_are_read_three_deep_and_no_deeper() -> None:
    """``plan.limits.seats`` is a path; a value four objects deep is not read (MAX_DEPTH is 3)."""
    assert MAX_DEPTH == 3
    got = _scalars({"plan": {"tier": "pro", "limits": {"seats": 10, "deep": {"er": 1}}}, "ok": True})
    assert got == {("plan", "tier"): "pro", ("plan", "limits", "seats"): 10, ("ok",): True}


def test_lists_and_what_is_inside_them_are_not_read() -> None:
    """A list is a value of its path (never a term: not a scalar), and nothing inside it becomes a path."""
    got = property_paths({"products": [{"sku": "a"}, {"sku": "b"}], "tags": ["x"]})
    assert got == {("products",): [{"sku": "a"}, {"sku": "b"}], ("tags",): ["x"]}


def test_a_dotted_key_is_the_same_path_as_the_nested_objects_and_the_nested_value_wins() -> None:
    """``{"payment.status": …}`` and ``{"payment": {"status": …}}`` are one path; with both, the nested one is read."""
    assert _scalars({"payment.status": "failed"}) == {("payment", "status"): "failed"}
    both = {"payment.status": "flat", "payment": {"status": "nested"}}
    assert _scalars(both)[("payment", "status")] == "nested"
    assert _scalars({"payment": {"status": "nested"}, "payment.status": "flat"})[("payment", "status")] == "nested"


@pytest.mark.parametrize(
    "properties",
    [
        {"a": {"b": 1}, "a.b": 2},
        {"a.b": {"c": 1}, "a": {"b.c": 2}},
        {"a": {"b": {"x": 0}}, "a.b": {"c": 3}},
        {"a.b.c": 1, "a": {"b.c": 2}, "a.b": {"c": 3}},
        {"x": {"y.z": True, "y": {"z": False}}, "n": None},
        {"a": 1, "a.b": 2},
    ],
)
def test_every_path_reads_what_a_rules_where_reads(properties: dict[str, Any]) -> None:
    """The value of each path is the one ``rules.paths`` reads at ``properties.<path>``: one notion of a path."""
    event = Event("e1", "E", "acme", 0.0, None, properties)
    for path, value in property_paths(properties).items():
        assert compile_path("properties." + ".".join(path))(event) == value, path
    getter = compile_path("properties.a.b")
    expected = getter(event)
    assert property_paths(properties).get(("a", "b"), MISSING) == expected


def test_keys_that_would_make_a_name_ambiguous_are_left_out() -> None:
    """Keys holding ``[``, ``]`` or ``=``, and keys with an empty part (``a..b``, ``.a``, ``a.``), give no path —
    with everything below them; their neighbours are read."""
    properties = {
        "a=b": "c",
        "x[0]": 1,
        "y]": 2,
        "a..b": 3,
        ".a": 4,
        "a.": 5,
        "": 6,
        "ok": {"in=side": 7, "fine": 8},
        "bad[": {"below": 9},
    }
    assert _scalars(properties) == {("ok", "fine"): 8}


def test_a_path_is_checked_and_labelled() -> None:
    """``check_path`` refuses what no event gives; a path is labelled with dots, a key as it is."""
    assert check_path(("payment", "status")) == ("payment", "status")
    for bad in [(), ("a", ""), ("a.b", "c"), ("a", "b=c"), ("a[", "b")]:
        with pytest.raises(ValueError, match="property path"):
            check_path(bad)
    assert path_label(("payment", "status")) == "payment.status"
    assert path_label("zahlung.art") == "zahlung.art"


@pytest.mark.parametrize(
    "properties",
    [
        {"role": "admin", "n": 3, "tags": ["a"]},
        {"role": "admin", "plan": {"tier": "pro"}},
        {"payment.status": "failed"},
        {"a=b": 1, "role": "x"},
        {"": 1, "role": "x"},
        {},
    ],
)
def test_named_properties_give_keys_as_keys_and_paths_as_paths(properties: dict[str, Any]) -> None:
    """The vocabulary's view (a shortcut for flat events): a top-level key as the key, a deeper one as its path, the
    values of :func:`property_paths` and nothing else."""
    expected = {(p[0] if len(p) == 1 else p): v for p, v in property_paths(properties).items()}
    assert dict(named_properties(properties)) == expected
