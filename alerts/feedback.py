"""Feedback from Slack buttons: ``POST /slack/actions`` on the notifier's web server.

Slack signs every interactivity request: ``X-Slack-Signature = "v0=" + HMAC-SHA256(signing secret,
"v0:{X-Slack-Request-Timestamp}:{raw body}")``. A body larger than Slack ever sends gets 413 before it
is read (:func:`read_bounded`); a request with a wrong signature, or a timestamp that is not a finite
number within 5 minutes of now (a late replay, ``nan``, ``inf``), gets 401, and so does a signed request
received a second time within those minutes (a replay; Slack sends every button press with its own
timestamp and body, so a repeated signature is never a second press). An accepted action is published
to ``preempt.feedback`` (key ``account_id``), counted in ``preempt_feedback_total{rule,action}`` (Not
helpful per rule is the precision signal for tuning rules), and the Slack message is updated ("Acknowledged by …",
"Snoozed until …"). Snooze becomes a silence: the notifier's feedback agent stores it in a
changelog-backed table (``SnoozeBook``), so it survives restarts and suppresses the rule's next alerts
for that account until it expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from alerts.blocks import Note
from schemas.errors import RetryableDeliveryError
from schemas.feedback import Feedback
from schemas.formatting import datetime_text
from schemas.rfc3339 import parse_rfc3339
from streams.runtime.logs import get_logger
from streams.runtime.metrics import FEEDBACK, SLACK_ACTIONS_REFUSED, SLACK_MESSAGE_UPDATES
from streams.runtime.replay_guard import ReplayGuard, ReplayGuardFull

log = get_logger(__name__)

SIGNATURE_TOLERANCE_SECONDS = 300.0
SNOOZE_SECONDS = 7 * 24 * 3600.0
UPDATE_ATTEMPTS = 5
# The longest wait between two attempts to update a pressed message: a Retry-After of an hour (a proxy's, or
# a long rate-limit window) kept the update's task asleep for that long, and the press's response_url, the
# fallback after the last attempt, expires 30 minutes after the press.
UPDATE_MAX_WAIT_SECONDS = 30.0
ACTIONS = ("acknowledge", "snooze", "not_helpful")
# Slack's interactivity payload is one URL-encoded JSON document describing the message (at most 50
# blocks of at most 3,000 characters, 40,000 characters of text): well under 1 MiB even URL-encoded.
# Anything larger is not from Slack and is refused before it is read into memory.
MAX_ACTION_BODY_BYTES = 1024 * 1024
# Signed requests remembered to refuse replays, per notifier process: button presses by people, in
# 2 × 5 minutes (a timestamp passes from 5 minutes before now to 5 minutes after). Full -> 429.
REPLAY_CACHE_SIZE = 20_000


class SlackRequestError(ValueError):
    """The request is not a usable Slack action (the message says why; answered with 400)."""


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack would send for ``body`` at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_slack_signature(
    secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: float = SIGNATURE_TOLERANCE_SECONDS
) -> bool:
    """True when the request is signed with ``secret`` and its timestamp is within ``tolerance`` of ``now``."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    try:
        sent_at = float(timestamp)
    except ValueError:
        return False
    # nan compares false with everything, so without isfinite it would never be "too old".
    if not math.isfinite(sent_at) or abs(now - sent_at) > tolerance:
        return False
    return hmac.compare_digest(slack_signature(secret, timestamp, body), signature)


async def read_bounded(content_length: int | None, chunks: AsyncIterator[bytes], limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused without reading anything; a chunked (or
    lying) body is read at most ``limit`` bytes plus one chunk before it is refused.
    """
    if content_length is not None and content_length > limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class SlackAction:
    """One button press, parsed from Slack's interactive payload."""

    action: str
    alert_id: str
    rule_id: str
    account_id: str
    user: str | None
    ref: str | None  # "channel:ts" of the message the button is on
    # The message as Slack shows it now (its blocks and text, from the payload): lets any notifier
    # replica update it, also one that did not post it or was restarted since.
    posted: Mapping[str, Any] | None = None
    # Where Slack takes a replacement of that message (valid 30 minutes): the only way to edit a message
    # an incoming webhook posted, and a fallback for a bot's message whose channel:ts is missing.
    response_url: str | None = None

    def log_ids(self) -> dict[str, str]:
        """``alert_id``, ``rule_id`` and ``account_id`` of the pressed alert, for log lines (DESIGN.md §9)."""
        return {"alert_id": self.alert_id, "rule_id": self.rule_id, "account_id": self.account_id}


# The button action_ids of alerts/blocks.py.
_ACTION_IDS = {"preempt_ack": "acknowledge", "preempt_snooze_7d": "snooze", "preempt_not_helpful": "not_helpful"}
# Link buttons (``Open CRM``…) open their URL in the browser, and Slack still posts the click here and
# shows an error on the button unless it gets a 200: acknowledged, nothing recorded.
LINK_ACTION_PREFIX = "preempt_link_"


def _action_name(action_id: str) -> str:
    name = _ACTION_IDS.get(action_id, action_id)
    if name not in ACTIONS:
        raise SlackRequestError(f"unknown action_id {action_id!r} (expected one of {', '.join(ACTIONS)})")
    return name


def parse_action(body: bytes) -> SlackAction | None:
    """Parse the form-encoded interactive payload (field ``payload``) of a ``block_actions`` request.

    None for a click on one of our link buttons (nothing to record, but Slack wants its 200).
    """
    form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"))
    raw = form.get("payload")
    if not raw:
        raise SlackRequestError("missing form field 'payload'")
    try:
        payload = json.loads(raw[0])
        action = payload["actions"][0]
        if str(action.get("action_id", "")).startswith(LINK_ACTION_PREFIX) and "value" not in action:
            return None
        value = json.loads(action["value"])
        alert_id, rule_id, account_id = str(value["alert_id"]), str(value["rule_id"]), str(value["account_id"])
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise SlackRequestError(f"malformed interactive payload: {type(exc).__name__}: {exc}") from None
    user_obj = payload.get("user") or {}
    user = user_obj.get("id") or user_obj.get("username") or user_obj.get("name")
    channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id")
    ts = (payload.get("container") or {}).get("message_ts") or (payload.get("message") or {}).get("ts")
    ref = f"{channel}:{ts}" if channel and ts else None
    message = payload.get("message")
    posted = message if isinstance(message, dict) and isinstance(message.get("blocks"), list) else None
    response_url = payload.get("response_url")
    if not (isinstance(response_url, str) and response_url.startswith(("https://", "http://"))):
        response_url = None
    name = _action_name(str(action.get("action_id", "")))
    return SlackAction(name, alert_id, rule_id, account_id, user, ref, posted, response_url)


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def to_feedback(action: SlackAction, now: float, snooze_seconds: float = SNOOZE_SECONDS) -> Feedback:
    """The ``preempt.feedback`` record for ``action`` taken at ``now``."""
    return Feedback(
        action=action.action,  # type: ignore[arg-type]  # checked against ACTIONS by parse_action
        alert_id=action.alert_id,
        rule_id=action.rule_id,
        account_id=action.account_id,
        user=action.user,
        at=_rfc3339(now),
        snooze_until=_rfc3339(now + snooze_seconds) if action.action == "snooze" else None,
    )


def update_note(feedback: Feedback, timezone: str | None = None) -> Note:
    """What replaces an alert's buttons after an action ("Acknowledged" by whom; ``str()`` gives the line).

    ``alerts.blocks`` mentions the user when Slack sent a member id (Slack shows their name); the
    snooze's end is in ``timezone`` (the account owner's; UTC when unknown), as every time in an alert.
    """
    if feedback.action == "acknowledge":
        return Note("Acknowledged", feedback.user)
    if feedback.action == "snooze":
        return Note(f"Snoozed until {datetime_text(feedback.snooze_until, timezone)}", feedback.user)
    return Note("Marked not helpful", feedback.user)


MAX_SNOOZED_RULES = 1000
"""Most rules snoozed at once for one account: its entry of the snoozes table (≤ 256-character rule ids)
stays far under Kafka's 1 MB record limit; a snooze of one more rule is refused (``SnoozeRefusedError``)."""


class SnoozeRefusedError(ValueError):
    """A snooze that would put more than ``MAX_SNOOZED_RULES`` rules of one account in the table."""


class SnoozeBook:
    """Snoozes per account in a changelog-backed table: ``account_id`` (bytes) → ``{rule_id: until}``."""

    def __init__(self, table: MutableMapping[bytes, Any]) -> None:
        self._table = table

    def apply(self, feedback: Feedback, now: float) -> float | None:
        """Store a snooze (expired ones of the account are pruned); returns its end, None for other actions.
        ``SnoozeRefusedError`` when the account has ``MAX_SNOOZED_RULES`` other rules snoozed."""
        if feedback.action != "snooze" or not feedback.snooze_until:
            return None
        until = parse_rfc3339(feedback.snooze_until)  # validated by Feedback: lower-case t/z included
        key = feedback.account_id.encode()
        current = {rule: float(end) for rule, end in (self._table.get(key) or {}).items() if float(end) > now}
        if feedback.rule_id not in current and len(current) >= MAX_SNOOZED_RULES:
            snoozed = len(current)
            raise SnoozeRefusedError(f"account {feedback.account_id!r} has {snoozed} rules snoozed already (the most)")
        current[feedback.rule_id] = max(until, current.get(feedback.rule_id, 0.0))
        self._table[key] = current
        return until

    def snoozed_until(self, account_id: str, rule_id: str, now: float) -> float | None:
        """The end of an active snooze of ``rule_id`` for ``account_id``, or None."""
        end = (self._table.get(account_id.encode()) or {}).get(rule_id)
        return float(end) if end is not None and float(end) > now else None


Publish = Callable[[Feedback], Awaitable[None]]


class UpdateMessage(Protocol):
    """Re-renders the message a button was pressed on (``NotifierRuntime.update_message``)."""

    def __call__(
        self, action: SlackAction, feedback: Feedback, *, by_response_url: bool = False
    ) -> Awaitable[bool | None]:
        """``by_response_url``: replace the message through the press's ``response_url``, not ``chat.update``.
        False: not updated, and the callee logged why (the message or alert unknown here…); counted as skipped."""
        ...


class SlackActionHandler:
    """Verifies, parses, publishes and answers one ``POST /slack/actions`` (framework-free)."""

    def __init__(self, signing_secret: str | None, publish: Publish, update_message: UpdateMessage) -> None:
        self._secret = signing_secret
        self._publish = publish
        self._update = update_message
        self._updates: set[asyncio.Task[None]] = set()
        self._replays = ReplayGuard(REPLAY_CACHE_SIZE, setting="alerts.feedback.REPLAY_CACHE_SIZE")

    async def handle(self, headers: Mapping[str, str], body: bytes, now: float) -> tuple[int, str]:
        """Returns (HTTP status, text body); the message update runs after the answer (Slack waits ≤ 3 s)."""
        if not self._secret:
            SLACK_ACTIONS_REFUSED.labels(reason="not_configured").inc()
            log.warning("slack action refused: PREEMPT_SLACK_SIGNING_SECRET is not set")
            return 503, "interactivity is not configured"
        if not verify_slack_signature(self._secret, headers, body, now):
            SLACK_ACTIONS_REFUSED.labels(reason="bad_signature").inc()
            log.warning("slack action refused: bad or stale signature")
            return 401, "invalid signature"
        refused = self._refuse_replay(headers, now)
        if refused is not None:
            return refused
        try:
            action = parse_action(body)
        except SlackRequestError as exc:
            SLACK_ACTIONS_REFUSED.labels(reason="bad_request").inc()
            log.warning("slack action rejected", error=str(exc))
            return 400, str(exc)
        if action is None:
            log.debug("slack link button clicked")
            return 200, ""
        feedback = to_feedback(action, now)
        try:
            await self._publish(feedback)
        except Exception as exc:  # noqa: BLE001 - the broker refused or timed out: say so, never "recorded"
            SLACK_ACTIONS_REFUSED.labels(reason="not_recorded").inc()
            log.error(
                "slack action not recorded: the feedback topic did not take it",
                action=feedback.action,
                rule_id=feedback.rule_id,
                account_id=feedback.account_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            return 503, "could not record this; press the button again in a moment"
        FEEDBACK.labels(rule=feedback.rule_id, action=feedback.action).inc()
        log.info(
            "slack action accepted",
            action=feedback.action,
            rule_id=feedback.rule_id,
            account_id=feedback.account_id,
            alert_id=feedback.alert_id,
        )
        # Slack wants the answer within 3 s; the chat.update goes out after it, in the background.
        task = asyncio.ensure_future(self._update_safely(action, feedback))
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)
        return 200, str(update_note(feedback))

    def _refuse_replay(self, headers: Mapping[str, str], now: float) -> tuple[int, str] | None:
        """401 for a validly signed request already received (its signature seen in the window), else None."""
        # verify_slack_signature accepted both headers: the timestamp is a finite number.
        expires_at = float(headers.get("X-Slack-Request-Timestamp", "")) + SIGNATURE_TOLERANCE_SECONDS
        try:
            fresh = self._replays.first_use(headers.get("X-Slack-Signature", "").encode(), expires_at, now)
        except ReplayGuardFull as exc:
            SLACK_ACTIONS_REFUSED.labels(reason="replay_guard_full").inc()
            log.warning("slack action refused: too many signed requests to remember", error=str(exc))
            return 429, "too many requests"
        if fresh:
            return None
        SLACK_ACTIONS_REFUSED.labels(reason="replayed").inc()
        log.warning("slack action refused: the same signed request was already received (replay)")
        return 401, "request already received"

    @staticmethod
    def too_large(content_length: int | None) -> tuple[int, str]:
        """The answer to a body over :data:`MAX_ACTION_BODY_BYTES` (counted and logged)."""
        SLACK_ACTIONS_REFUSED.labels(reason="too_large").inc()
        log.warning("slack action refused: body too large", content_length=content_length)
        return 413, "request body too large"

    @staticmethod
    def too_slow(seconds: float) -> tuple[int, str]:
        """The answer to a body still arriving after ``seconds`` (a stalled or slow-drip sender; counted, logged)."""
        SLACK_ACTIONS_REFUSED.labels(reason="too_slow").inc()
        log.warning("slack action refused: body too slow", timeout_seconds=seconds)
        return 408, "request body too slow"

    async def _update_safely(self, action: SlackAction, feedback: Feedback) -> None:
        # Like deliveries, the retry is owned here (the notifier raises, never sleeps): a few bounded
        # attempts, honouring retry_after (e.g. the one-message-per-second-per-channel limit).
        # Each press ends in one of preempt_slack_message_updates_total's outcomes (updated, skipped, failed).
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            try:
                done = await self._update(action, feedback)
            except RetryableDeliveryError as exc:
                if attempt == UPDATE_ATTEMPTS:
                    await self._update_by_response_url(action, feedback, exc)
                    return
                wait = exc.retry_after if exc.retry_after is not None else float(attempt)
                await asyncio.sleep(min(wait, UPDATE_MAX_WAIT_SECONDS))
            except Exception:  # the action is recorded; a failed cosmetic update is logged and counted
                _count_update(failed=True)
                log.exception("slack message update failed", **action.log_ids())
                return
            else:
                _count_update(done)
                return

    async def _update_by_response_url(self, action: SlackAction, feedback: Feedback, error: Exception) -> None:
        # The attempts edited by channel:ts (chat.update) and each failed retryably (429s, 5xx, timeouts): a
        # press that also came with a response_url gets one replacement through it, as a permanent chat.update
        # failure does (SlackNotifier._replace), rather than leaving the message with its buttons.
        if action.ref is None or action.response_url is None:
            _count_update(failed=True)
            log.warning("slack message update given up", **action.log_ids(), error=str(error))
            return
        try:
            done = await self._update(action, feedback, by_response_url=True)
        except Exception as exc:  # noqa: BLE001 — the action is recorded; a failed cosmetic update is logged, counted
            _count_update(failed=True)
            log.warning(
                "slack message update given up",
                **action.log_ids(),
                error=str(error),
                response_url_error=f"{type(exc).__name__}: {exc}",
            )
            return
        _count_update(done)
        if done is not False:
            log.info("slack message updated through the response_url after its retries", **action.log_ids())

    async def drain(self) -> None:
        """Wait for the message updates in flight (tests and shutdown)."""
        while self._updates:
            await asyncio.gather(*list(self._updates), return_exceptions=True)


def _count_update(done: bool | None = None, *, failed: bool = False) -> None:
    """One press's message update in ``preempt_slack_message_updates_total``: failed (it raised or was given up),
    skipped (``done`` False: nothing to edit, the callee said why) or updated."""
    outcome = "failed" if failed else "skipped" if done is False else "updated"
    SLACK_MESSAGE_UPDATES.labels(outcome=outcome).inc()
