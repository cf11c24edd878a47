"""Slack channel logic without a server: error classification, the per-channel rate limit, configuration."""

from __future__ import annotations

import pytest

from alerts.channels.slack import ChannelRateLimiter, SlackNotifier, classify
from alerts.routing.config import SlackReceiver
from schemas.errors import ConfigError, PermanentDeliveryError, RetryableDeliveryError
from streams.runtime.settings import Settings


@pytest.mark.parametrize(
    ("status", "error", "headers", "retryable", "retry_after"),
    [
        (429, "ratelimited", {"Retry-After": "2"}, True, 2.0),
        (429, None, {"retry-after": "7"}, True, 7.0),
        (429, None, {}, True, 1.0),
        (200, "ratelimited", {"Retry-After": "3"}, True, 3.0),
        (500, None, {}, True, None),
        (503, None, {}, True, None),
        (200, "internal_error", {}, True, None),
        (200, "channel_not_found", {}, False, None),
        (404, "channel_not_found", {}, False, None),
        (410, "channel_is_archived", {}, False, None),
        (400, "invalid_payload", {}, False, None),
        (200, "not_in_channel", {}, False, None),
        (200, "invalid_auth", {}, False, None),
        (404, None, {}, False, None),
        (200, "some_new_error", {}, False, None),
    ],
)
def test_classify(
    status: int, error: str | None, headers: dict[str, str], retryable: bool, retry_after: float | None
) -> None:
    """429/5xx/transient codes are retryable (429 with Retry-After); configuration errors are permanent."""
    exc = classify("slack chat.postMessage", status, error, headers)
    if retryable:
        assert isinstance(exc, RetryableDeliveryError)
        assert exc.retry_after == retry_after
    else:
        assert isinstance(exc, PermanentDeliveryError)
    assert str(status) in str(exc)


def test_rate_limiter_allows_one_per_second_per_channel() -> None:
    """A second message to a channel within a second raises with the remaining time; other channels pass."""
    now = [100.0]
    limiter = ChannelRateLimiter(clock=lambda: now[0])
    limiter.acquire("C1")
    now[0] = 100.25
    with pytest.raises(RetryableDeliveryError) as info:
        limiter.acquire("C1")
    assert info.value.retry_after == pytest.approx(0.75)
    limiter.acquire("C2")
    now[0] = 101.0
    limiter.acquire("C1")


def test_hold_closes_channel_for_retry_after() -> None:
    """A 429 hold refuses messages and edits until it ends; pacing alone never blocks edits."""
    now = [0.0]
    limiter = ChannelRateLimiter(clock=lambda: now[0])
    limiter.acquire("C1")
    limiter.check_hold("C1")  # paced, not held: edits may go
    limiter.hold("C1", 2.0)
    now[0] = 1.5
    with pytest.raises(RetryableDeliveryError) as info:
        limiter.check_hold("C1")
    assert info.value.retry_after == pytest.approx(0.5)
    with pytest.raises(RetryableDeliveryError):
        limiter.acquire("C1")
    now[0] = 2.0
    limiter.acquire("C1")


def test_mode_follows_configuration() -> None:
    """A receiver webhook wins; a channel with a bot token posts; otherwise the settings webhook is used."""
    limiter = ChannelRateLimiter()
    bot = Settings(slack_bot_token="xoxb-1")
    hook = Settings(slack_webhook_url="https://hooks.example/x")
    assert SlackNotifier(SlackReceiver(channel="#cs"), bot, limiter).mode == "bot"
    assert SlackNotifier(SlackReceiver(channel="#cs", webhook_url="https://h/1"), bot, limiter).mode == "webhook"
    assert SlackNotifier(SlackReceiver(), hook, limiter).mode == "webhook"
    assert SlackNotifier(SlackReceiver(channel="#cs"), hook, limiter).mode == "webhook"


def test_unusable_configuration_fails_at_build_without_secrets() -> None:
    """No webhook and no bot token is a ConfigError naming the receiver."""
    with pytest.raises(ConfigError, match="receiver 'support'"):
        SlackNotifier(SlackReceiver(channel="#cs"), Settings(), ChannelRateLimiter(), receiver="support")
