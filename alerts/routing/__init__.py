"""Routing: which receivers an alert reaches and whether it is muted (silences, inhibition, quiet hours)."""

from alerts.routing.config import (
    ConsoleReceiver,
    EmailReceiver,
    InhibitRule,
    QuietHours,
    ReceiverConfig,
    RouteConfig,
    RoutingConfig,
    Silence,
    SlackReceiver,
)
from alerts.routing.inhibit import Inhibitor
from alerts.routing.quiet_hours import defer_until
from alerts.routing.silences import SilenceSet
from alerts.routing.tree import RouteMatch, RoutingTree

__all__ = [
    "ConsoleReceiver",
    "EmailReceiver",
    "InhibitRule",
    "Inhibitor",
    "QuietHours",
    "ReceiverConfig",
    "RouteConfig",
    "RouteMatch",
    "RoutingConfig",
    "RoutingTree",
    "Silence",
    "SilenceSet",
    "SlackReceiver",
    "defer_until",
]
