"""Slack channel logic without a server: error classification, the per-channel rate limit, configuration."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from alerts.channels.slack import ChannelRateLimiter, SlackNotifier, classify
from alerts.routing.config import SlackReceiver
from alerts.testing.factories import build_alert
from schemas.alert import Alert
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
        (503, None, {"Retry-After": "3"}, True, 3.0),
        (502, None, {"Retry-After": "soon"}, True, None),
        (429, None, {"Retry-After": "nan"}, True, 1.0),
        (429, None, {"Retry-After": "inf"}, True, 1.0),
        (429, None, {"Retry-After": "-5"}, True, 0.0),
        (429, None, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, True, 0.0),
        (200, "internal_error", {}, True, None),
        (200, "channel_not_found", {}, False, None),
        (404, "channel_not_found", {}, False, None),
        (410, "channel_is_archived", {}, False, None),
        (400, "invalid_payload", {}, False, None),
        (200, "not_in_channel", {}, False, None),
        (404, None, {}, False, None),
        (200, "some_new_error", {}, False, None),
    ],
)
def test_classify(
    status: int, error: str | None, headers: dict[str, str], retryable: bool, retry_after: float | None
) -> None:
    """429/5xx/transient codes are retryable (429 with Retry-After, 5xx with it when sent, never nan or inf);
    configuration errors are permanent."""
    exc = classify("slack chat.postMessage", status, error, headers)
    if retryable:
        assert isinstance(exc, RetryableDeliveryError)
        assert exc.retry_after == retry_after
    else:
        assert isinstance(exc, PermanentDeliveryError)
    assert str(status) in str(exc)


@pytest.mark.parametrize(
    ("what", "status", "error", "bot"),
    [
        ("slack chat.postMessage", 200, "invalid_auth", True),
        ("slack chat.postMessage", 200, "not_authed", True),
        ("slack chat.postMessage", 200, "token_revoked", True),
        ("slack chat.postMessage", 200, "token_expired", True),
        ("slack chat.postMessage", 200, "account_inactive", True),
        ("slack chat.postMessage", 200, "missing_scope", True),
        ("slack webhook", 403, "invalid_token", False),
        ("slack webhook", 404, "no_service", False),
    ],
)
def test_credentials_that_fail_for_every_message_are_the_destination_failing(
    what: str, status: int, error: str, bot: bool
) -> None:
    """A revoked, expired or wrong token (or a removed webhook) is no fault of the alert: retried as the
    destination failing (one episode for the bot token, per webhook otherwise), saying what to fix."""
    from schemas.errors import DestinationFailingError

    exc = classify(what, status, error, {})
    assert isinstance(exc, DestinationFailingError)
    assert error in str(exc)
    assert exc.fix in str(exc)
    assert exc.destination == ("Slack Web API (PREEMPT_SLACK_BOT_TOKEN)" if bot else None)
    assert ("PREEMPT_SLACK_BOT_TOKEN" if bot else "webhook") in exc.fix


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


def test_a_burst_to_one_channel_keeps_its_order_with_one_refusal_each() -> None:
    """Five messages for one channel at once: the first goes, each other one is told to come back at
    its own slot (1 s, 2 s, … later) and gets it then — one refusal each, posts one second apart."""
    now = [0.0]
    limiter = ChannelRateLimiter(clock=lambda: now[0])
    limiter.acquire("C1", "a")
    refusals: dict[str, float | None] = {}
    for token in "bcde":
        with pytest.raises(RetryableDeliveryError) as info:
            limiter.acquire("C1", token)
        refusals[token] = info.value.retry_after
    assert refusals == {"b": 1.0, "c": 2.0, "d": 3.0, "e": 4.0}
    for token, after in refusals.items():
        now[0] = after or 0.0
        limiter.acquire("C1", token)  # its slot: granted at once
    now[0] = 4.5
    with pytest.raises(RetryableDeliveryError) as info:
        limiter.acquire("C1", "f")
    assert info.value.retry_after == pytest.approx(0.5)


def test_a_late_comer_never_gets_two_posts_within_a_second() -> None:
    """A reserved message that comes back late does not squeeze the next one: posts stay a second apart."""
    now = [0.0]
    limiter = ChannelRateLimiter(clock=lambda: now[0])
    limiter.acquire("C1", "a")
    for token in "bc":
        with pytest.raises(RetryableDeliveryError):
            limiter.acquire("C1", token)  # b at 1 s, c at 2 s
    now[0] = 1.7
    limiter.acquire("C1", "b")  # late for its slot, still its turn
    now[0] = 2.0
    with pytest.raises(RetryableDeliveryError) as info:
        limiter.acquire("C1", "c")
    assert info.value.retry_after == pytest.approx(0.7)
    now[0] = 2.7
    limiter.acquire("C1", "c")


def test_a_429_hold_moves_the_reserved_slots_behind_it_in_order() -> None:
    """While messages wait for their slots, a 429 with Retry-After closes the channel: their slots move
    behind the hold, keeping their order and the one-second pacing."""
    now = [0.0]
    limiter = ChannelRateLimiter(clock=lambda: now[0])
    limiter.acquire("C1", "a")
    for token in "bc":
        with pytest.raises(RetryableDeliveryError):
            limiter.acquire("C1", token)
    now[0] = 0.5
    limiter.hold("C1", 10.0)
    now[0] = 1.0
    with pytest.raises(RetryableDeliveryError) as info:
        limiter.acquire("C1", "b")
    assert info.value.retry_after == pytest.approx(9.5)
    now[0] = 10.5
    limiter.acquire("C1", "b")
    with pytest.raises(RetryableDeliveryError) as info:
        limiter.acquire("C1", "c")
    assert info.value.retry_after == pytest.approx(1.0)
    now[0] = 11.5
    limiter.acquire("C1", "c")


def test_reservations_of_messages_that_never_came_back_do_not_delay_the_channel_after_a_429() -> None:
    """Messages that reserved a slot and never returned (dead-lettered, given up, regrouped) are forgotten:
    a later 429 of 1 s delays a new message by about that second, not by one interval per abandoned slot."""
    now = [0.0]
    limiter = ChannelRateLimiter(clock=lambda: now[0])
    limiter.acquire("C1", "first")
    for i in range(200):
        with pytest.raises(RetryableDeliveryError):
            limiter.acquire("C1", f"gone-{i}")
    now[0] = 86_400.0  # a day later: the channel is idle
    limiter.acquire("C1", "live")
    now[0] += 5.0
    limiter.hold("C1", 1.0)
    with pytest.raises(RetryableDeliveryError) as info:
        limiter.acquire("C1", "next")
    assert info.value.retry_after is not None
    assert info.value.retry_after <= 1.0


def test_retry_after_as_an_http_date_is_the_time_until_then() -> None:
    """A Retry-After given as an HTTP date (RFC 9110) waits until that time, not the 1 s default."""
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    exc = classify("slack webhook", 429, None, {"Retry-After": when})
    assert isinstance(exc, RetryableDeliveryError)
    assert exc.retry_after is not None
    assert 25.0 <= exc.retry_after <= 30.0


def test_a_templated_channel_splits_a_group_per_rendered_channel() -> None:
    """Bot mode: a group's alerts are split by the channel their own account renders, in order; a webhook
    (one channel) and a fixed channel keep the group whole."""

    def alert(alert_id: str, slack: str) -> Alert:
        return build_alert(alert_id=alert_id, account={"name": alert_id, "owner": {"slack": slack}})

    a, b, c, d = alert("a", "U0AAA"), alert("b", "U0BBB"), alert("c", "U0AAA"), alert("d", "")
    bot = Settings(slack_bot_token="xoxb-1")
    owners = SlackNotifier(SlackReceiver(channel="{{ account.owner.slack }}"), bot, ChannelRateLimiter())
    assert owners.partition((a, b, c, d)) == [(a, c), (b,), (d,)]
    fixed = SlackNotifier(SlackReceiver(channel="#cs"), bot, ChannelRateLimiter())
    assert fixed.partition((a, b, c)) == [(a, b, c)]
    hook = SlackNotifier(SlackReceiver(webhook_url="https://hooks.example.com/x"), Settings(), ChannelRateLimiter())
    assert hook.partition((a, b)) == [(a, b)]


@pytest.mark.parametrize(
    ("mode", "ref", "response_url", "update_fails", "expected"),
    [
        ("bot", "C1:1.0", None, False, ["chat.update C1:1.0"]),
        ("bot", "C1:1.0", "https://hooks.example/actions/1", False, ["chat.update C1:1.0"]),
        (
            "bot",
            "C1:1.0",
            "https://hooks.example/actions/1",
            True,
            ["chat.update C1:1.0", "response_url https://hooks.example/actions/1"],
        ),
        ("bot", None, "https://hooks.example/actions/1", False, ["response_url https://hooks.example/actions/1"]),
        (
            "webhook",
            "C1:1.0",
            "https://hooks.example/actions/1",
            False,
            ["response_url https://hooks.example/actions/1"],
        ),
        ("webhook", "C1:1.0", None, False, []),
        ("bot", None, None, False, []),
    ],
)
async def test_a_message_is_edited_by_chat_update_else_through_the_presss_response_url(
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    ref: str | None,
    response_url: str | None,
    update_fails: bool,
    expected: list[str],
) -> None:
    """A bot edits by channel:ts; a webhook's message (or a bot's that chat.update cannot edit, such as one
    a webhook posted in a channel the bot is not in) is replaced through the press's response_url."""
    receiver = SlackReceiver(channel="#cs") if mode == "bot" else SlackReceiver(webhook_url="https://hooks.example/x")
    notifier = SlackNotifier(receiver, Settings(slack_bot_token="xoxb-1"), ChannelRateLimiter())
    calls: list[str] = []

    async def chat_update(ref: str, message: dict[str, object]) -> None:
        calls.append(f"chat.update {ref}")
        if update_fails:
            raise PermanentDeliveryError("slack chat.update: cant_update_message")

    async def respond(url: str, message: dict[str, object]) -> None:
        calls.append(f"response_url {url}")

    monkeypatch.setattr(notifier, "_chat_update", chat_update)
    monkeypatch.setattr(notifier, "_respond", respond)
    edited = await notifier.update(ref, (build_alert(),), {}, response_url)
    assert calls == expected
    assert edited is bool(expected)  # nothing to edit with: False, counted as a skipped update by the handler


async def test_a_failed_chat_update_without_a_response_url_still_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    notifier = SlackNotifier(SlackReceiver(channel="#cs"), Settings(slack_bot_token="xoxb-1"), ChannelRateLimiter())

    async def chat_update(ref: str, message: dict[str, object]) -> None:
        raise PermanentDeliveryError("slack chat.update: message_not_found")

    monkeypatch.setattr(notifier, "_chat_update", chat_update)
    with pytest.raises(PermanentDeliveryError, match="message_not_found"):
        await notifier.update("C1:1.0", (build_alert(),), {})


def test_a_bot_channel_names_the_tokens_episode_and_a_webhook_none(make_alert: Callable[..., Alert]) -> None:
    """Every bot-token channel names the episode its credential errors open (a post to any of them proves the
    token, ``alerts/retry.py`` closes its breaker); a webhook is its own destination and shares none."""
    from alerts.channels.base import EpisodeAware, Notification

    notification = Notification("r", (make_alert(),), "g")
    bot = SlackNotifier(SlackReceiver(channel="#cs"), Settings(slack_bot_token="xoxb-1"), ChannelRateLimiter())
    assert isinstance(bot, EpisodeAware)
    token_error = classify("slack chat.postMessage", 200, "token_revoked", {})
    assert bot.episodes(notification) == (getattr(token_error, "destination", None),)
    hook = SlackNotifier(SlackReceiver(webhook_url="https://hooks.example.com/x"), Settings(), ChannelRateLimiter())
    assert hook.episodes(notification) == ()
