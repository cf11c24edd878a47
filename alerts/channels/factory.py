"""Builds every receiver's channels from the routing file and the settings — the one place that does.

Called once by the notifier at start: ``build_notifiers(config, settings)`` → receiver name → its
notifiers. All Slack notifiers share one per-channel rate limiter. A receiver that cannot work as
configured (a Slack config with neither a webhook nor a bot token and channel) raises ``ConfigError``
at start, not at the first alert.
"""

from __future__ import annotations

from alerts.channels.base import Notifier
from alerts.channels.console import ConsoleNotifier
from alerts.channels.email import EmailNotifier
from alerts.channels.slack import PACED_INTERVAL_SECONDS, ChannelRateLimiter, SlackNotifier
from alerts.routing.config import RoutingConfig
from streams.runtime.settings import Settings


def build_notifiers(
    config: RoutingConfig, settings: Settings, limiter: ChannelRateLimiter | None = None
) -> dict[str, list[Notifier]]:
    """Receiver name → its notifiers (Slack, then email, then console, in file order)."""
    shared = limiter or ChannelRateLimiter(min_interval=PACED_INTERVAL_SECONDS)
    notifiers: dict[str, list[Notifier]] = {}
    for receiver in config.receivers:
        channels: list[Notifier] = []
        channels += [SlackNotifier(c, settings, shared, receiver=receiver.name) for c in receiver.slack_configs]
        channels += [EmailNotifier(c, settings, receiver=receiver.name) for c in receiver.email_configs]
        channels += [ConsoleNotifier(c) for c in receiver.console_configs]
        notifiers[receiver.name] = channels
    return notifiers
