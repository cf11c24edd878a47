"""The Slack channel (slack_sdk): a bot token posting with ``chat.postMessage`` / ``chat.update``, or an
incoming webhook.

Retries belong to the notifier's worker loop, so slack_sdk's own retry handlers are switched off and
every failure becomes ``RetryableDeliveryError`` (429 with its ``Retry-After``, 5xx with theirs if any,
timeouts), ``DestinationFailingError`` (credentials that fail for every message: ``invalid_auth``,
``token_revoked``, ``account_inactive``, a revoked webhook's ``invalid_token``/``no_service``…: retried, see
``DESTINATION_ERRORS``) or ``PermanentDeliveryError`` (every other error: ``channel_not_found``,
``invalid_payload``, ``channel_is_archived``, ``not_in_channel``, HTTP 404/410…). At most one message per
second goes to a channel: a send that comes too early raises
``RetryableDeliveryError(retry_after=<the rest of the second>)`` instead of sleeping. Error messages never
contain the webhook URL or the token.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from alerts.blocks import Note, build_message
from alerts.channels.base import DeliveryReceipt, Notification
from alerts.routing.config import SlackReceiver
from alerts.templates import render, template_context
from schemas.alert import Alert
from schemas.errors import (
    ConfigError,
    DeliveryError,
    DestinationFailingError,
    NoRecipientError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings

log = get_logger(__name__)

# Slack error codes that say "try again later".
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# The episode of a bot token refusing every call (one for every channel: a revoked token is one ERROR, one breaker).
BOT_TOKEN_EPISODE = "Slack Web API (PREEMPT_SLACK_BOT_TOKEN)"  # noqa: S105 - the setting's name, no token
# Slack error codes that say the credentials fail, whatever the message (a token revoked or rotated, the
# app uninstalled, a webhook removed): every message fails alike until an operator fixes them, so they are
# the destination failing (retried until the give-up window, delivered once fixed), not the alert's fault.
# Code → what to fix.
_BOT_TOKEN_FIX = "set PREEMPT_SLACK_BOT_TOKEN to the app's current bot token (xoxb-…) and restart the notifier"  # noqa: S105 - advice, no token
DESTINATION_ERRORS = {
    "invalid_auth": _BOT_TOKEN_FIX,
    "not_authed": _BOT_TOKEN_FIX,
    "token_revoked": _BOT_TOKEN_FIX,
    "token_expired": _BOT_TOKEN_FIX,
    "account_inactive": "the bot's Slack account or app was deactivated: reinstall the app, then " + _BOT_TOKEN_FIX,
    "missing_scope": "the token lacks the chat:write scope: add it to the Slack app, reinstall it, then "
    + _BOT_TOKEN_FIX,
    "not_allowed_token_type": "the token is not a bot token: " + _BOT_TOKEN_FIX,
    "team_access_not_granted": "the app is not granted to this workspace: grant it in the org's admin settings",
    "team_disabled": "the Slack workspace is disabled",
    "invalid_token": "the webhook is revoked: create an incoming webhook and set its URL in the routing file "
    "(or PREEMPT_SLACK_WEBHOOK_URL), then restart the notifier",
    "no_service": "the webhook is removed or disabled: create an incoming webhook and set its URL in the routing "
    "file (or PREEMPT_SLACK_WEBHOOK_URL), then restart the notifier",
}
DEFAULT_RETRY_AFTER = 1.0
NOT_SLACKS_ANSWER = "but the answer is not Slack's: a proxy or firewall in between?"
PACED_INTERVAL_SECONDS = 1.05
"""The notifier's spacing of new messages to one channel: Slack's one a second, plus 50 ms, because a slot is
taken when a message is about to be sent and the request's own time varies by some milliseconds — without the
margin two posts could reach Slack 0.99 s apart (measured at the local Slack server)."""
STALE_RESERVATION_SECONDS = 10.0
"""A reserved slot this long past is abandoned: a live message comes back at its slot (a retry's own delay
is far shorter), one that does not was dead-lettered, given up or regrouped and never will."""
_T = TypeVar("_T")


class ChannelRateLimiter:
    """At most one message per ``min_interval`` seconds per channel, shared by every Slack notifier.

    A 429 from Slack also ``hold``s the channel for its ``Retry-After``: neither messages nor edits go
    to that channel before then.

    A message that finds its channel busy is given the channel's next free slot (a reservation under
    its ``token``) and told to come back then: a burst of N messages to one channel goes out one per
    second in arrival order with about one refusal each, not N²/2 refusals of all of them every second.
    """

    def __init__(self, min_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._paced_until: dict[str, float] = {}  # the next unreserved slot of each channel
        self._last_sent: dict[str, float] = {}
        self._held_until: dict[str, float] = {}
        self._reserved: dict[tuple[str, Hashable], float] = {}

    def _refuse_until(self, until: float, now: float) -> None:
        if now < until:
            # Rounded up to the millisecond: a job back for its slot is never a fraction too early.
            raise RetryableDeliveryError(
                "slack: channel paced (one message per second) or rate limited",
                retry_after=math.ceil((until - now) * 1000 - 1e-6) / 1000,
                throttled=True,
                held=True,  # nothing was sent: not a retry of an attempt
            )

    def check_hold(self, channel: str) -> None:
        """Raise ``RetryableDeliveryError(retry_after=…)`` while a 429 holds the channel (for edits)."""
        now = self._clock()
        self._refuse_until(self._held_until.get(channel, now), now)

    def acquire(self, channel: str, token: Hashable | None = None) -> None:
        """Take the channel's slot for a new message, or raise ``RetryableDeliveryError(retry_after=…)``.

        With a ``token`` (the same for every attempt of one message), a refused message keeps its
        place: it reserves the channel's next free slot and gets it when it comes back then.
        """
        now = self._clock()
        held = self._held_until.get(channel, now)
        earliest = max(self._last_sent.get(channel, -math.inf) + self.min_interval, held)
        if token is None:
            self._refuse_until(max(self._paced_until.get(channel, now), earliest), now)
            self._paced_until[channel] = now + self.min_interval
        else:
            slot = self._reserved.pop((channel, token), None)
            if slot is None:  # a new message joins the line
                slot = max(self._paced_until.get(channel, now), earliest, now)
                self._paced_until[channel] = slot + self.min_interval
            ready = max(slot, earliest)
            if now < ready:
                self._reserved[(channel, token)] = ready
                self._refuse_until(ready, now)
        self._last_sent[channel] = now
        if max(len(self._paced_until), len(self._reserved)) > 10_000:  # bounded memory
            self._paced_until = {k: v for k, v in self._paced_until.items() if v > now}
            self._last_sent = {k: v for k, v in self._last_sent.items() if v > now - self.min_interval}
            self._held_until = {k: v for k, v in self._held_until.items() if v > now}
            self._reserved = {k: v for k, v in self._reserved.items() if v > now - STALE_RESERVATION_SECONDS}

    def hold(self, channel: str, seconds: float) -> None:
        """Keep the channel closed for ``seconds`` (Slack's Retry-After); reserved slots move behind it, in order.

        A reservation whose slot passed more than :data:`STALE_RESERVATION_SECONDS` ago is dropped first: its
        message is not coming back (dead-lettered, given up, or regrouped by a rebalance), and re-dated it
        would hold every live message of the channel back by one more interval at each 429.
        """
        now = self._clock()
        until = max(self._held_until.get(channel, 0.0), now + seconds)
        self._held_until[channel] = until
        for key in [
            k for k, slot in self._reserved.items() if k[0] == channel and slot < now - STALE_RESERVATION_SECONDS
        ]:
            del self._reserved[key]
        waiting = sorted(((slot, key) for key, slot in self._reserved.items() if key[0] == channel), key=lambda w: w[0])
        for i, (_slot, key) in enumerate(waiting):
            self._reserved[key] = until + i * self.min_interval
        self._paced_until[channel] = max(self._paced_until.get(channel, 0.0), until + len(waiting) * self.min_interval)


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == name.lower():
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def _retry_after(headers: Mapping[str, Any] | None, default: float | None = DEFAULT_RETRY_AFTER) -> float | None:
    """Seconds the server asked us to wait: ``Retry-After`` as seconds or as an HTTP date (RFC 9110);
    ``default`` when it is absent or unreadable (``nan``, ``inf``, garbage: never a wait that cannot end)."""
    raw = _header(headers, "Retry-After")
    if raw is None or not raw.strip():
        return default
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw.strip())
        except (TypeError, ValueError, IndexError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else default


def classify(what: str, status: int | None, error: str | None, headers: Mapping[str, Any] | None) -> DeliveryError:
    """The one place that decides whether a Slack failure is retryable (the Alertmanager way)."""
    detail = f"{what}: HTTP {status}" + (f" {error}" if error else "")
    if status == 429 or error in ("ratelimited", "rate_limited"):
        return RetryableDeliveryError(detail, retry_after=_retry_after(headers), throttled=True)
    if status is not None and status >= 500:
        # A 503 may say when to come back (Retry-After); without it the loop backs off.
        return RetryableDeliveryError(detail, retry_after=_retry_after(headers, default=None))
    if error in RETRYABLE_ERRORS:
        return RetryableDeliveryError(detail, retry_after=None)
    fix = DESTINATION_ERRORS.get(error or "")
    if fix is not None:
        # The bot token is one for every channel: one episode for all of them. A webhook is its own destination
        # (the delivery loop's key for it: a hash of its URL, never the URL).
        hook = what in ("slack webhook", "slack response_url")
        where = None if hook else BOT_TOKEN_EPISODE
        return DestinationFailingError(f"{detail} ({fix})", fix=fix, destination=where)
    # 404/410 and every known or unknown client error: retrying the same request cannot succeed.
    return PermanentDeliveryError(detail)


class SlackNotifier:
    """One ``slack_configs`` entry of a receiver."""

    receiver_type = "slack"

    def __init__(
        self,
        config: SlackReceiver,
        settings: Settings,
        limiter: ChannelRateLimiter,
        *,
        receiver: str = "",
        timeout_s: int = 10,
    ) -> None:
        self._config = config
        self._limiter = limiter
        self._timeout = timeout_s
        # A Retry-After past the give-up window dead-letters the message it answers (gave_up); the channel
        # is held no longer than that window, so later messages ask Slack again then.
        self._max_hold = settings.delivery_give_up_seconds
        self._api_url = settings.slack_api_url
        self._token = settings.slack_bot_token
        self._webhook = config.webhook_url
        if self._webhook is None and not (config.channel and self._token is not None):
            self._webhook = settings.slack_webhook_url
        if self._webhook is None and not (config.channel and self._token is not None):
            # alerts.channels.factory names the entry (receivers[i].slack_configs[j]), the CLI the file.
            raise ConfigError(
                f"receiver {receiver!r} cannot post to channel {config.channel!r}: PREEMPT_SLACK_BOT_TOKEN is not set "
                "(or give the entry a webhook_url, or set PREEMPT_SLACK_WEBHOOK_URL)"
                if config.channel
                else f"receiver {receiver!r} has no channel and no webhook: give the entry a webhook_url, or set "
                "PREEMPT_SLACK_WEBHOOK_URL (or give it a channel and set PREEMPT_SLACK_BOT_TOKEN)"
            )
        self.mode = "webhook" if self._webhook is not None else "bot"
        self._session: aiohttp.ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self._hook: AsyncWebhookClient | None = None

    # -- clients (created lazily: they need the running event loop) -------------------------------
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # slack_sdk applies its own timeout only to sessions it creates; ours must carry it.
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    def _web_client(self) -> AsyncWebClient:
        if self._web is None:
            assert self._token is not None
            self._web = AsyncWebClient(
                token=self._token.get_secret_value(),
                base_url=self._api_url,
                timeout=self._timeout,
                session=self._http(),
                retry_handlers=[],  # the worker loop owns retries
            )
        return self._web

    def _webhook_client(self) -> AsyncWebhookClient:
        if self._hook is None:
            assert self._webhook is not None
            self._hook = AsyncWebhookClient(
                url=self._webhook.get_secret_value(),
                timeout=self._timeout,
                session=self._http(),
                retry_handlers=[],  # the worker loop owns retries
            )
        return self._hook

    def _webhook_key(self) -> str:
        assert self._webhook is not None
        return "webhook:" + hashlib.sha256(self._webhook.get_secret_value().encode()).hexdigest()[:16]

    # -- Notifier protocol -------------------------------------------------------------------------
    def partition(self, alerts: tuple[Alert, ...]) -> list[tuple[Alert, ...]]:
        """One part per channel the ``channel`` template renders for each alert (bot mode), in order.

        A group by rule or team spans several accounts: ``{{ account.owner.slack }}`` must DM each owner
        their own alerts, not every alert to the first one's owner. Alerts whose channel renders empty
        form a part of their own (dead-lettered as such). A webhook posts to one channel: one part.
        """
        if self.mode == "webhook" or len(alerts) < 2:
            return [alerts]
        parts: dict[str, list[Alert]] = {}
        for alert in alerts:
            parts.setdefault(render_channel(self._config, (alert,)), []).append(alert)
        return [tuple(part) for part in parts.values()]

    def destination(self, notification: Notification) -> str:
        """The webhook (by a hash of its URL) or, with the bot token, the channel ``notification`` goes to:
        the key of its attempts' slots in the delivery loop and of its pacing."""
        if self.mode == "webhook":
            return self._webhook_key()
        return f"bot:{render_channel(self._config, notification.alerts)}"

    def episodes(self, notification: Notification) -> tuple[str, ...]:
        """With the bot token, the token's episode (shared by every channel): a post to any channel proves the
        token works. A webhook is its own destination (its key), shared with nothing."""
        return () if self.mode == "webhook" else (BOT_TOKEN_EPISODE,)

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Post the alert (or digest) as Block Kit: a webhook message, or ``chat.postMessage`` (bot mode)."""
        message = self._message(notification.alerts)
        # The same for every attempt of this message: its reservation of a paced channel's next slot.
        token = (notification.group_key, tuple(a.alert_id for a in notification.alerts))
        if self.mode == "webhook":
            await self._post_webhook(message, token)
            return DeliveryReceipt(receiver=notification.receiver, ref=None)
        channel = render_channel(self._config, notification.alerts)
        if not channel:
            raise NoRecipientError("slack: the channel template rendered empty (no owner Slack id?)")
        key = f"bot:{channel}"
        self._limiter.acquire(key, token)
        data = await self._held_on_429(
            key, self._call("chat.postMessage", channel=channel, unfurl_links=False, unfurl_media=False, **message)
        )
        return DeliveryReceipt(receiver=notification.receiver, ref=f"{data.get('channel', channel)}:{data.get('ts')}")

    async def update(
        self,
        ref: str | None,
        alerts: tuple[Alert, ...],
        notes: Mapping[str, Note | str],
        response_url: str | None = None,
    ) -> bool:
        """Re-render an earlier message of ``alerts``, each alert in ``notes`` with its note instead of its
        buttons: ``chat.update`` of ``ref`` (bot mode), else through the press's ``response_url``. False: neither
        was there to edit it with (logged)."""
        return await self._replace(ref, self._message(alerts, notes=notes), response_url)

    async def update_posted(
        self, ref: str | None, blocks: list[Any], text: str, response_url: str | None = None
    ) -> bool:
        """Replace an earlier message by ``blocks`` (as built by ``alerts.blocks.annotate_posted``), as ``update``."""
        return await self._replace(ref, {"text": text or "Preempt alert", "blocks": blocks}, response_url)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        self._web = None
        self._hook = None

    # -- internals ---------------------------------------------------------------------------------
    def _message(self, alerts: tuple[Alert, ...], notes: Mapping[str, Note | str] | None = None) -> dict[str, Any]:
        return render_message(self._config, alerts, notes)

    async def _replace(self, ref: str | None, message: dict[str, Any], response_url: str | None) -> bool:
        # chat.update needs the bot token; an incoming webhook cannot edit what it posted, but Slack gives
        # every button press a response_url that replaces the message the button is on.
        if self.mode == "bot" and ref:
            try:
                await self._chat_update(ref, message)
                return True
            except PermanentDeliveryError:
                if not response_url:
                    raise  # e.g. a webhook's message in a channel the bot is not in: cant_update_message
        if response_url:
            await self._respond(response_url, message)
            return True
        log.info("slack_update_skipped", reason="no message reference or response_url to edit it with")
        return False

    async def _respond(self, response_url: str, message: dict[str, Any]) -> None:
        client = AsyncWebhookClient(url=response_url, timeout=self._timeout, session=self._http(), retry_handlers=[])
        await _send_hook("slack response_url", client, {**message, "replace_original": True})

    async def _chat_update(self, ref: str, message: dict[str, Any]) -> None:
        channel, sep, ts = ref.partition(":")
        if not sep or not channel or not ts:
            raise PermanentDeliveryError(f"slack: malformed message reference {ref!r} (expected channel:ts)")
        # Edits are not new messages: they respect a 429 hold but do not take the channel's slot.
        key = f"bot:{channel}"
        self._limiter.check_hold(key)
        await self._held_on_429(key, self._call("chat.update", channel=channel, ts=ts, **message))

    async def _held_on_429(self, key: str, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except RetryableDeliveryError as exc:
            if exc.retry_after:  # Slack said when (429, or a 5xx with Retry-After): close the channel until then
                self._limiter.hold(key, min(exc.retry_after, self._max_hold))
            raise

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        client = self._web_client()
        try:
            response = await client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            raise _from_api_error(method, exc) from None
        except (aiohttp.ClientError, TimeoutError, OSError, SlackClientError) as exc:
            # str(exc) may hold URLs; the type is enough to act on and never leaks anything.
            raise RetryableDeliveryError(f"slack {method}: {type(exc).__name__}") from None
        data = response.data
        return data if isinstance(data, dict) else {}

    async def _post_webhook(self, message: dict[str, Any], token: Hashable | None = None) -> None:
        key = self._webhook_key()
        self._limiter.acquire(key, token)
        await self._held_on_429(key, self._webhook_send(message))

    async def _webhook_send(self, message: dict[str, Any]) -> None:
        payload = {**message, "unfurl_links": False}
        await _send_hook("slack webhook", self._webhook_client(), payload, answers_ok=True)


def _says_ok(body: str | None) -> bool:
    """True for Slack's success answer: ``ok`` (an incoming webhook's) or JSON with ``"ok": true``."""
    text = (body or "").strip()
    if text == "ok":
        return True
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("ok") is True


async def _send_hook(
    what: str, client: AsyncWebhookClient, payload: dict[str, Any], *, answers_ok: bool = False
) -> None:
    """POST ``payload`` to a webhook-style URL (incoming webhook, response_url); failures classified.

    ``answers_ok``: the URL is an incoming webhook, which answers a message it posted with the body ``ok``.
    A 200 with another body (a proxy's page) is no delivery: counted as one, the message was lost unseen.
    """
    try:
        response = await client.send_dict(payload)
    except (aiohttp.ClientError, TimeoutError, OSError, SlackClientError) as exc:
        # str(exc) may hold the URL (a secret): the type is enough to act on.
        raise RetryableDeliveryError(f"{what}: {type(exc).__name__}") from None
    if response.status_code == 200:
        if answers_ok and not _says_ok(response.body):
            raise PermanentDeliveryError(f"{what}: HTTP 200 {NOT_SLACKS_ANSWER}")
        return
    error = (response.body or "").strip()[:100] or None
    raise classify(what, response.status_code, error, response.headers)


def render_message(
    config: SlackReceiver, alerts: tuple[Alert, ...], notes: Mapping[str, Note | str] | None = None
) -> dict[str, Any]:
    """The ``{"text", "blocks"}`` this Slack config posts for ``alerts`` (also used by ``preempt alerts preview``)."""
    context = template_context(alerts)
    title = render("slack_title", context, config.title) if config.title else None
    text = render("slack_text", context, config.text) if config.text else None
    return build_message(alerts, title=title, text=text, notes=notes)


def render_channel(config: SlackReceiver, alerts: tuple[Alert, ...]) -> str:
    """The channel (or member id) the ``channel`` template renders for ``alerts``; empty when it renders empty."""
    return render("slack_channel", template_context(alerts), config.channel).strip()


def _from_api_error(method: str, exc: SlackApiError) -> DeliveryError:
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    headers = getattr(response, "headers", None)
    if status is not None and int(status) == 200 and error is None:  # no Slack JSON in the body: a proxy's page
        return PermanentDeliveryError(f"slack {method}: HTTP 200 {NOT_SLACKS_ANSWER}")
    return classify(f"slack {method}", int(status) if status is not None else None, error, headers)
