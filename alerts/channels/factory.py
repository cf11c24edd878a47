"""Builds every receiver's channels from the routing file and the settings — the one place that does.

Called once by the notifier at start: ``build_notifiers(config, settings)`` → receiver name → its
notifiers. All Slack notifiers share one per-channel rate limiter. A receiver that cannot work as
configured (a Slack config with neither a webhook nor a bot token and channel) raises ``ConfigError``
naming the entry (``receivers[1].slack_configs[0]: …``) at start, not at the first alert; ``preempt
notifier`` builds them right after loading the routing file, before reaching for the broker.
"""

from __future__ import annotations

from pathlib import Path

from alerts.channels.base import Notifier
from alerts.channels.console import ConsoleNotifier
from alerts.channels.email import EmailNotifier
from alerts.channels.slack import PACED_INTERVAL_SECONDS, ChannelRateLimiter, SlackNotifier
from alerts.routing.config import RoutingConfig
from schemas.errors import ConfigError
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings

log = get_logger(__name__)


def build_notifiers(
    config: RoutingConfig,
    settings: Settings,
    limiter: ChannelRateLimiter | None = None,
    *,
    source: Path | None = None,
) -> dict[str, list[Notifier]]:
    """Receiver name → its notifiers (Slack, then email, then console, in file order).

    ``source``: the routing file, named in front of an entry's error (``routes.yaml: receivers[1].slack_configs[0]: …``)
    and of its warning (a ``channel`` a webhook ignores).
    """
    shared = limiter or ChannelRateLimiter(min_interval=PACED_INTERVAL_SECONDS)
    notifiers: dict[str, list[Notifier]] = {}
    for i, receiver in enumerate(config.receivers):
        channels: list[Notifier] = []
        for j, entry in enumerate(receiver.slack_configs):
            try:
                slack = SlackNotifier(entry, settings, shared, receiver=receiver.name)
            except ConfigError as exc:  # the file and the field, as the routing file's own errors name them
                raise ConfigError(f"{_where(source)}receivers[{i}].slack_configs[{j}]: {exc}") from None
            if slack.mode == "webhook" and entry.channel:
                # An incoming webhook posts to the one channel it was made for: the entry's channel (an owner's DM
                # by template, say) is not where its messages go. Said once at start, naming the entry.
                log.warning(
                    "slack channel ignored: the entry posts through an incoming webhook",
                    field=f"{_where(source)}receivers[{i}].slack_configs[{j}].channel",
                    receiver=receiver.name,
                    channel=entry.channel,
                    why="the entry has a webhook_url"
                    if entry.webhook_url is not None
                    else "PREEMPT_SLACK_BOT_TOKEN is not set, so PREEMPT_SLACK_WEBHOOK_URL is used",
                    fix="remove the entry's webhook_url (with PREEMPT_SLACK_BOT_TOKEN set) to post to the channel"
                    if entry.webhook_url is not None
                    else "set PREEMPT_SLACK_BOT_TOKEN to post to the channel",
                )
            channels.append(slack)
        channels += [EmailNotifier(c, settings, receiver=receiver.name) for c in receiver.email_configs]
        channels += [ConsoleNotifier(c) for c in receiver.console_configs]
        notifiers[receiver.name] = channels
    return notifiers


def _where(source: Path | None) -> str:
    return f"{source}: " if source is not None else ""
