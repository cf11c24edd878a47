"""The routing tree: which receivers an alert reaches, with which grouping and timing (Alertmanager semantics).

An alert enters at the root (which matches everything) and descends depth-first: the first child
whose matchers all match takes it, and the search stops there unless that child sets ``continue``.
A node whose children do not match delivers to its own receiver. ``receiver``, ``group_by``,
``group_wait``, ``group_interval`` and ``repeat_interval`` inherit from the parent when unset.
The notifier calls ``match`` once per alert and ``group_key`` to group what the matches deliver.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.routing.config import RouteConfig, RoutingConfig
from alerts.routing.matchers import alert_value, describe, matches_all
from schemas.alert import Alert

# Root defaults (Alertmanager's timings). Grouping defaults to one group per account, not
# Alertmanager's single global group: a CSM wants one message per account, not one for everybody.
DEFAULT_GROUP_BY: tuple[str, ...] = ("account_id",)
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
# group_by: ["..."] groups by everything, i.e. every alert is its own group.
GROUP_BY_ALL = "..."


@dataclass(frozen=True)
class RouteMatch:
    """One delivery an alert gets: the receiver, its grouping and timing, and the route path (why)."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    path: tuple[str, ...]


@dataclass(frozen=True)
class _Resolved:
    receiver: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float


class RoutingTree:
    """A routing file's ``route`` tree, ready to match alerts."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        root = config.route
        assert root.receiver is not None  # RoutingConfig checks it at load
        self._root_defaults = _Resolved(
            receiver=root.receiver,
            group_by=DEFAULT_GROUP_BY,
            group_wait=DEFAULT_GROUP_WAIT,
            group_interval=DEFAULT_GROUP_INTERVAL,
            repeat_interval=DEFAULT_REPEAT_INTERVAL,
        )

    def match(self, alert: Alert) -> list[RouteMatch]:
        """Every (receiver, grouping, timing) the alert is delivered with, in tree order; never empty.

        The same receiver reached by two routes (through ``continue``) appears twice, once per route,
        as in Alertmanager; the notifier and ``preempt routes test`` keep the first (one alert is
        never sent twice to the same receiver).
        """
        root = self.config.route
        found = self._walk(root, alert, self._root_defaults, (_label(root, "root"),), is_root=True)
        assert found  # the root always matches and falls back to itself
        return found

    def _walk(
        self, route: RouteConfig, alert: Alert, parent: _Resolved, path: tuple[str, ...], *, is_root: bool = False
    ) -> list[RouteMatch]:
        if not is_root and not matches_all(route.matchers, alert):
            return []
        here = _Resolved(
            receiver=route.receiver if route.receiver is not None else parent.receiver,
            group_by=route.group_by if route.group_by is not None else parent.group_by,
            group_wait=route.group_wait if route.group_wait is not None else parent.group_wait,
            group_interval=route.group_interval if route.group_interval is not None else parent.group_interval,
            repeat_interval=route.repeat_interval if route.repeat_interval is not None else parent.repeat_interval,
        )
        results: list[RouteMatch] = []
        for i, child in enumerate(route.routes):
            child_matches = self._walk(child, alert, here, (*path, _label(child, f"routes[{i}]")))
            if child_matches:
                results.extend(child_matches)
                if not child.continue_:
                    break
        if not results:
            results.append(
                RouteMatch(
                    receiver=here.receiver,
                    group_by=here.group_by,
                    group_wait=here.group_wait,
                    group_interval=here.group_interval,
                    repeat_interval=here.repeat_interval,
                    path=path,
                )
            )
        return results

    def group_key(self, alert: Alert, match: RouteMatch) -> str:
        """The group this alert joins for this match: receiver, route path and the group_by values.

        Alerts with equal keys are sent together (one digest). ``group_by: ["..."]`` makes every
        alert its own group.
        """
        if GROUP_BY_ALL in match.group_by:
            values = f"alert_id={alert.alert_id}"
        else:
            values = ",".join(f"{name}={alert_value(alert, name)}" for name in match.group_by)
        return f"{match.receiver}|{'/'.join(match.path)}|{{{values}}}"


def _label(route: RouteConfig, fallback: str) -> str:
    if route.name:
        return route.name
    if route.matchers:
        return describe(route.matchers)
    return fallback
