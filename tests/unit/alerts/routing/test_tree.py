"""RoutingTree: Alertmanager's first-match descent, continue, inheritance and group keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from alerts.routing.config import RoutingConfig
from alerts.routing.tree import RoutingTree
from schemas.alert import Alert


@pytest.fixture
def make_tree() -> Callable[..., RoutingTree]:
    """Factory: a RoutingTree over receivers a, b, c, d and the given root route."""

    def factory(**route: Any) -> RoutingTree:
        receivers = [{"name": n} for n in ("a", "b", "c", "d")]
        return RoutingTree(RoutingConfig.model_validate({"receivers": receivers, "route": {"receiver": "a", **route}}))

    return factory


def test_unmatched_alert_goes_to_root_with_defaults(
    make_tree: Callable[..., RoutingTree], make_alert: Callable[..., Alert]
) -> None:
    """With no matching child the root's receiver and Alertmanager's default timings apply."""
    tree = make_tree(routes=[{"receiver": "b", "matchers": ['severity="critical"']}])
    [match] = tree.match(make_alert(severity="low"))
    assert match.receiver == "a"
    assert match.path == ("root",)
    assert (match.group_by, match.group_wait, match.group_interval, match.repeat_interval) == (
        ("account_id",),
        30.0,
        300.0,
        14400.0,
    )


def test_first_matching_child_wins_without_continue(
    make_tree: Callable[..., RoutingTree], make_alert: Callable[..., Alert]
) -> None:
    """The search stops at the first matching sibling."""
    tree = make_tree(
        routes=[
            {"receiver": "b", "matchers": ["labels.team=support"]},
            {"receiver": "c", "matchers": ["severity=high"]},
        ]
    )
    assert [m.receiver for m in tree.match(make_alert(severity="high", labels={"team": "support"}))] == ["b"]


def test_continue_goes_on_to_later_siblings(
    make_tree: Callable[..., RoutingTree], make_alert: Callable[..., Alert]
) -> None:
    """A matching route with continue: true lets the next siblings match too."""
    tree = make_tree(
        routes=[
            {"name": "sup", "receiver": "b", "matchers": ["labels.team=support"], "continue": True},
            {"name": "high", "receiver": "c", "matchers": ["severity=high"]},
            {"name": "never", "receiver": "d"},
        ]
    )
    matches = tree.match(make_alert(severity="high", labels={"team": "support"}))
    assert [(m.receiver, m.path) for m in matches] == [("b", ("root", "sup")), ("c", ("root", "high"))]


def test_nested_routes_inherit_and_override(
    make_tree: Callable[..., RoutingTree], make_alert: Callable[..., Alert]
) -> None:
    """Children inherit receiver, group_by and timings unless they set their own; deepest match wins."""
    tree = make_tree(
        group_by=["account_id", "rule_id"],
        group_wait="1m",
        routes=[
            {
                "matchers": ["account.tier=enterprise"],
                "receiver": "b",
                "repeat_interval": "1h",
                "routes": [{"matchers": ["severity=critical"], "group_wait": "0s"}],
            }
        ],
    )
    [critical] = tree.match(make_alert(severity="critical"))
    assert (critical.receiver, critical.group_by, critical.group_wait, critical.repeat_interval) == (
        "b",
        ("account_id", "rule_id"),
        0.0,
        3600.0,
    )
    assert critical.path == ("root", '{account.tier="enterprise"}', '{severity="critical"}')
    [high] = tree.match(make_alert(severity="high"))
    assert (high.receiver, high.group_wait, high.path[-1]) == ("b", 60.0, '{account.tier="enterprise"}')


def test_parent_receives_when_no_child_matches(
    make_tree: Callable[..., RoutingTree], make_alert: Callable[..., Alert]
) -> None:
    """A matching node whose children all miss delivers to its own receiver."""
    tree = make_tree(
        routes=[
            {"matchers": ["labels.team=support"], "receiver": "b", "routes": [{"matchers": ["x=y"], "receiver": "c"}]}
        ]
    )
    assert [m.receiver for m in tree.match(make_alert(labels={"team": "support"}))] == ["b"]


def test_group_key_uses_group_by_values(
    make_tree: Callable[..., RoutingTree], make_alert: Callable[..., Alert]
) -> None:
    """Alerts with equal group_by values share a key; '...' gives each alert its own."""
    tree = make_tree(group_by=["account_id"], routes=[{"matchers": ["severity=low"], "group_by": ["..."]}])
    one, two = make_alert(rule_id="r1"), make_alert(rule_id="r2")
    [m1], [m2] = tree.match(one), tree.match(two)
    assert tree.group_key(one, m1) == tree.group_key(two, m2) == "a|root|{account_id=acme}"
    assert tree.group_key(make_alert(account_id="globex"), m1) != tree.group_key(one, m1)
    low1, low2 = make_alert(severity="low"), make_alert(severity="low")
    [l1], [l2] = tree.match(low1), tree.match(low2)
    assert tree.group_key(low1, l1) != tree.group_key(low2, l2)
