"""A URL that is a secret (a Slack incoming webhook): checked where it is configured, never echoed.

Used by ``PREEMPT_SLACK_WEBHOOK_URL`` (``streams.runtime.settings``) and a routing file's ``webhook_url``
(``alerts.routing.config``): a URL aiohttp cannot use failed every Slack message with a retryable error,
retried for the whole give-up window, instead of stopping the notifier at start.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import SecretStr


def secret_http_url(value: SecretStr) -> SecretStr:
    """``value`` when it is an http(s) URL with a host; else ``ValueError`` whose message hides the value."""
    parts = urlsplit(value.get_secret_value().strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL (value hidden)")
    return value
