"""Builds every receiver's channels from the routing file and the settings — the one place that does.

Called once by the notifier at start: ``build_notifiers(config, settings)`` → receiver name → its
notifiers. All Slack notifiers share one per-channel rate limiter. A receiver that cannot work as
configured (a Slack config with neither a webhook nor a bot token and channel) raises ``ConfigError``
naming the entry (``receivers[1].slack_configs[0]: …``) at start, not at the first alert; ``preempt
notifier`` builds them right after loading the routing file, before reaching for the broker.
"""

from __future__ import annotations

from alerts.channels.base import Notifier
from alerts.channels.console import ConsoleNotifier
from alerts.channels.email import EmailNotifier
from alerts.channels.slack import PACED_INTERVAL_SECONDS, ChannelRateLimiter, SlackNotifier
from alerts.routing.config import RoutingConfig
from schemas.errors import ConfigError
from streams.runtime.settings import Settings


def build_notifiers(
    config: RoutingConfig, settings: Settings, limiter: ChannelRateLimiter | None = None
) -> dict[str, list[Notifier]]:
    """Receiver name → its notifiers (Slack, then email, then console, in file order)."""
    shared = limiter or ChannelRateLimiter(min_interval=PACED_INTERVAL_SECONDS)
    notifiers: dict[str, list[Notifier]] = {}
    for i, receiver in enumerate(config.receivers):
        channels: list[Notifier] = []
        for j, entry in enumerate(receiver.slack_configs):
            try:
                channels.append(SlackNotifier(entry, settings, shared, receiver=receiver.name))
            except ConfigError as exc:  # the field, as the routing file's own errors name it
                raise ConfigError(f"receivers[{i}].slack_configs[{j}]: {exc}") from None
        channels += [EmailNotifier(c, settings, receiver=receiver.name) for c in receiver.email_configs]
        channels += [ConsoleNotifier(c) for c in receiver.console_configs]
        notifiers[receiver.name] = channels
    return notifiers
