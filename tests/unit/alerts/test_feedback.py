"""Slack actions: signature verification, payload parsing, the handler's answers, snoozes."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError
from structlog.testing import capture_logs

from alerts.feedback import (
    MAX_ACTION_BODY_BYTES,
    UPDATE_ATTEMPTS,
    SlackAction,
    SlackActionHandler,
    SnoozeBook,
    parse_action,
    read_bounded,
    slack_signature,
    to_feedback,
    verify_slack_signature,
)
from schemas.errors import RetryableDeliveryError
from schemas.feedback import Feedback
from schemas.rfc3339 import parse_rfc3339
from streams.runtime.metrics import FEEDBACK, SLACK_ACTIONS_REFUSED, SLACK_MESSAGE_UPDATES

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = datetime(2026, 11, 23, tzinfo=UTC).timestamp()


def make_body(action_id: str = "preempt_snooze_7d", **value: str) -> bytes:
    """A form-encoded interactive payload for one button press."""
    fields = {"alert_id": "a1", "rule_id": "error-spike", "account_id": "acme", **value}
    payload = {
        "type": "block_actions",
        "user": {"id": "U123"},
        "channel": {"id": "C1"},
        "container": {"message_ts": "1.000100"},
        "actions": [{"action_id": action_id, "value": json.dumps(fields)}],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def _parsed(body: bytes) -> SlackAction:
    """The action in ``body`` (a feedback button, never a link)."""
    action = parse_action(body)
    assert action is not None
    return action


def signed(body: bytes, at: float = NOW, secret: str = SECRET) -> dict[str, str]:
    """Headers Slack would send with ``body`` at ``at``."""
    ts = str(int(at))
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_signature(secret, ts, body)}


def test_signature_of_slack_documentation_example() -> None:
    """The v0 signature matches the worked example of Slack's documentation."""
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert slack_signature(SECRET, "1531420618", body) == expected


def test_valid_signature_is_accepted() -> None:
    """A correctly signed, fresh request verifies."""
    body = make_body()
    assert verify_slack_signature(SECRET, signed(body), body, NOW + 10)


def test_forged_tampered_and_stale_requests_are_refused() -> None:
    """A wrong secret, a changed body, a timestamp over 5 minutes old, or no headers fail verification."""
    body = make_body()
    assert not verify_slack_signature(SECRET, signed(body, secret="wrong"), body, NOW)
    assert not verify_slack_signature(SECRET, signed(body), body + b"x", NOW)
    assert not verify_slack_signature(SECRET, signed(body, at=NOW - 301), body, NOW)
    assert not verify_slack_signature(SECRET, {}, body, NOW)


@pytest.mark.parametrize("timestamp", ["nan", "NaN", "inf", "-inf", "1e400", "99999999999999999999", "-1", "0x10"])
def test_non_finite_or_absurd_timestamps_are_refused(timestamp: str) -> None:
    """A timestamp that is not a finite time near now fails verification even when correctly signed."""
    body = make_body()
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": slack_signature(SECRET, timestamp, body)}
    assert not verify_slack_signature(SECRET, headers, body, NOW)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_read_bounded_refuses_a_declared_length_over_the_limit_without_reading() -> None:
    """A Content-Length over the limit is refused before one byte is read."""
    read: list[bytes] = []

    async def never() -> AsyncIterator[bytes]:
        read.append(b"x")
        yield b"x"

    assert await read_bounded(MAX_ACTION_BODY_BYTES + 1, never(), MAX_ACTION_BODY_BYTES) is None
    assert read == []


async def test_read_bounded_stops_a_chunked_body_at_the_limit() -> None:
    """A body without Content-Length is read chunk by chunk and refused once it passes the limit."""
    consumed: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(10_000):  # bounded: 640 MB if nothing stopped it
            consumed.append(i)
            yield b"x" * 65536

    assert await read_bounded(None, endless(), 1024 * 1024) is None
    assert len(consumed) == 17  # 16 chunks fill the MiB, the 17th passes it


async def test_read_bounded_returns_a_body_within_the_limit() -> None:
    """A body within the limit comes back whole, whether its length was declared or not."""
    assert await read_bounded(6, _chunks(b"abc", b"def"), 10) == b"abcdef"
    assert await read_bounded(None, _chunks(b"abc", b"def"), 6) == b"abcdef"


def test_button_action_ids_map_to_feedback_actions() -> None:
    """The three buttons of alerts/blocks.py parse to acknowledge, snooze and not_helpful."""
    actions = [_parsed(make_body(a)).action for a in ("preempt_ack", "preempt_snooze_7d", "preempt_not_helpful")]
    assert actions == ["acknowledge", "snooze", "not_helpful"]
    parsed = _parsed(make_body())
    assert (parsed.alert_id, parsed.user, parsed.ref) == ("a1", "U123", "C1:1.000100")


@pytest.mark.parametrize(
    ("response_url", "kept"),
    [
        ("https://hooks.slack.com/actions/T1/2/abc", True),
        ("http://127.0.0.1:8000/actions/x", True),
        ("file:///etc/passwd", False),
        (42, False),
        (None, False),
    ],
)
def test_the_presss_response_url_is_kept_when_it_is_a_web_address(response_url: object, kept: bool) -> None:
    """Slack's response_url (how a webhook's message is edited) is kept; anything but http(s) is not."""
    payload = json.loads(urllib.parse.parse_qs(make_body().decode())["payload"][0])
    body = urllib.parse.urlencode({"payload": json.dumps({**payload, "response_url": response_url})}).encode()
    assert _parsed(body).response_url == (response_url if kept else None)


def test_snooze_feedback_lasts_seven_days() -> None:
    """Snooze produces a feedback record whose snooze_until is 7 days after the action."""
    feedback = to_feedback(_parsed(make_body()), NOW)
    assert feedback.action == "snooze"
    assert feedback.at == "2026-11-23T00:00:00Z"
    assert feedback.snooze_until == "2026-11-30T00:00:00Z"


class Recorder:
    """Collects what the handler publishes and updates."""

    def __init__(self) -> None:
        self.published: list[Feedback] = []
        self.updated: list[tuple[SlackAction, Feedback]] = []

    async def publish(self, feedback: Feedback) -> None:
        self.published.append(feedback)

    async def update(self, action: SlackAction, feedback: Feedback) -> None:
        self.updated.append((action, feedback))


async def test_handler_publishes_counts_and_updates_a_signed_action() -> None:
    """A signed Not helpful is published, counted per rule and updates the message; answer 200."""
    rec = Recorder()
    handler = SlackActionHandler(SECRET, rec.publish, rec.update)
    before = FEEDBACK.labels(rule="error-spike", action="not_helpful")._value.get()
    body = make_body("preempt_not_helpful")

    status, text = await handler.handle(signed(body), body, NOW)
    await handler.drain()

    assert status == 200
    assert "not helpful" in text
    assert [f.action for f in rec.published] == ["not_helpful"]
    assert len(rec.updated) == 1
    assert FEEDBACK.labels(rule="error-spike", action="not_helpful")._value.get() == before + 1


async def test_an_action_the_feedback_topic_does_not_take_is_answered_503_not_recorded() -> None:
    """The broker refuses or times out on the feedback record: before, the handler answered 200 "recorded" and
    counted it while the snooze or "not helpful" was lost. Now 503 (Slack shows the presser an error, who presses
    again), counted in preempt_slack_actions_refused_total{reason="not_recorded"}, one ERROR line, no update."""
    from structlog.testing import capture_logs

    rec = Recorder()

    async def refused(feedback: Feedback) -> None:
        raise KafkaTimeoutError("feedback topic: no answer within 30 s")

    handler = SlackActionHandler(SECRET, refused, rec.update)
    not_recorded = SLACK_ACTIONS_REFUSED.labels(reason="not_recorded")
    before = (not_recorded._value.get(), FEEDBACK.labels(rule="error-spike", action="snooze")._value.get())
    body = make_body()
    with capture_logs() as logs:
        status, text = await handler.handle(signed(body), body, NOW)
    await handler.drain()
    assert (status, text) == (503, "could not record this; press the button again in a moment")
    after = (not_recorded._value.get(), FEEDBACK.labels(rule="error-spike", action="snooze")._value.get())
    assert after == (before[0] + 1, before[1])
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "slack action not recorded: the feedback topic did not take it"
    ]
    assert rec.updated == []


async def test_handler_refuses_bad_requests_without_publishing() -> None:
    """Forged → 401, malformed → 400, no signing secret configured → 503; nothing is published."""
    rec = Recorder()
    handler = SlackActionHandler(SECRET, rec.publish, rec.update)
    body = make_body()
    bad = b"payload=not-json"

    assert (await handler.handle(signed(body, secret="x"), body, NOW))[0] == 401
    assert (await handler.handle(signed(bad), bad, NOW))[0] == 400
    assert (await handler.handle(signed(make_body("delete")), make_body("delete"), NOW))[0] == 400
    unconfigured = SlackActionHandler(None, rec.publish, rec.update)
    assert (await unconfigured.handle(signed(body), body, NOW))[0] == 503
    # JSON nested deeper than Python's recursion limit, in the payload or in a button's value: 400 (it was an
    # uncaught RecursionError, a 500 with a traceback in the log)
    deep = "[" * 100_000 + "]" * 100_000
    nested = urllib.parse.urlencode({"payload": deep}).encode()
    assert (await handler.handle(signed(nested), nested, NOW))[0] == 400
    in_value = urllib.parse.urlencode(
        {"payload": json.dumps({"type": "block_actions", "actions": [{"action_id": "preempt_ack", "value": deep}]})}
    ).encode()
    assert (await handler.handle(signed(in_value), in_value, NOW))[0] == 400
    assert rec.published == []


async def test_a_signed_request_received_again_is_refused_as_a_replay() -> None:
    """The same signed press sent twice inside the window is recorded once: the copy gets 401 and is
    counted as replayed; a second press (its own timestamp) and the same body after the window behave."""
    rec = Recorder()
    handler = SlackActionHandler(SECRET, rec.publish, rec.update)
    refused = SLACK_ACTIONS_REFUSED.labels(reason="replayed")
    before = refused._value.get()
    body = make_body("preempt_not_helpful")

    assert (await handler.handle(signed(body), body, NOW))[0] == 200
    assert await handler.handle(signed(body), body, NOW + 120) == (401, "request already received")
    assert (await handler.handle(signed(body, at=NOW + 1), body, NOW + 121))[0] == 200  # another press
    assert (await handler.handle(signed(body), body, NOW + 301))[0] == 401  # stale: the timestamp check
    await handler.drain()

    assert [f.action for f in rec.published] == ["not_helpful", "not_helpful"]
    assert refused._value.get() == before + 1


async def test_a_forged_request_does_not_take_a_place_in_the_replay_guard() -> None:
    """Only requests with a valid signature are remembered: a forged copy of a real signature's headers
    is refused for its signature and does not block the real request."""
    rec = Recorder()
    handler = SlackActionHandler(SECRET, rec.publish, rec.update)
    body = make_body("preempt_ack")
    headers = signed(body)

    assert (await handler.handle(headers, b"tampered" + body, NOW))[0] == 401
    assert (await handler.handle(headers, body, NOW))[0] == 200


class BusyChatUpdate:
    """An update whose chat.update always fails retryably (Slack answering 429 or 5xx); through the press's
    response_url it succeeds."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def update(self, action: SlackAction, feedback: Feedback, *, by_response_url: bool = False) -> None:
        self.calls.append("response_url" if by_response_url else "chat.update")
        if not by_response_url:
            raise RetryableDeliveryError("slack chat.update: HTTP 503", retry_after=0.0)


def _with_response_url(body: bytes, response_url: str) -> bytes:
    payload = json.loads(urllib.parse.parse_qs(body.decode())["payload"][0])
    return urllib.parse.urlencode({"payload": json.dumps({**payload, "response_url": response_url})}).encode()


@pytest.mark.parametrize("response_url", ["https://hooks.slack.com/actions/T1/2/abc", None])
async def test_chat_update_failing_retryably_on_every_attempt_falls_back_to_the_response_url(
    response_url: str | None,
) -> None:
    """When every chat.update attempt fails retryably, a press with a response_url has its message replaced
    through it (as after a permanent chat.update failure); without one the update is given up and logged."""
    busy = BusyChatUpdate()
    handler = SlackActionHandler(SECRET, Recorder().publish, busy.update)
    body = make_body("preempt_ack")
    if response_url is not None:
        body = _with_response_url(body, response_url)

    with capture_logs() as logs:
        assert (await handler.handle(signed(body), body, NOW))[0] == 200
        await handler.drain()

    assert busy.calls == ["chat.update"] * UPDATE_ATTEMPTS + (["response_url"] if response_url else [])
    given_up = [e for e in logs if e["event"] == "slack message update given up"]
    assert len(given_up) == (0 if response_url else 1)
    for line in given_up:  # the pressed alert's ids (DESIGN.md §9), from make_body's button value
        assert (line["alert_id"], line["rule_id"], line["account_id"]) == ("a1", "error-spike", "acme")


async def test_a_long_retry_after_on_a_message_update_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Retry-After of an hour on chat.update waits at most UPDATE_MAX_WAIT_SECONDS between attempts (it slept
    the hour, past the 30 minutes the press's response_url lives), and the attempts still end in the fallback."""
    from alerts import feedback as feedback_module

    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    class SlowChatUpdate(BusyChatUpdate):
        async def update(self, action: SlackAction, feedback: Feedback, *, by_response_url: bool = False) -> None:
            self.calls.append("response_url" if by_response_url else "chat.update")
            if not by_response_url:
                raise RetryableDeliveryError("slack chat.update: HTTP 429", retry_after=3600.0, throttled=True)

    monkeypatch.setattr(feedback_module.asyncio, "sleep", no_sleep)
    slow = SlowChatUpdate()
    handler = SlackActionHandler(SECRET, Recorder().publish, slow.update)
    body = _with_response_url(make_body("preempt_ack"), "https://hooks.slack.com/actions/T1/2/abc")
    assert (await handler.handle(signed(body), body, NOW))[0] == 200
    await handler.drain()
    assert waits == [feedback_module.UPDATE_MAX_WAIT_SECONDS] * (UPDATE_ATTEMPTS - 1)
    assert slow.calls == ["chat.update"] * UPDATE_ATTEMPTS + ["response_url"]


class ScriptedUpdate:
    """An update that answers as scripted: a result (False: not updated, the callee logged why) or an exception."""

    def __init__(self, outcome: bool | Exception | None) -> None:
        self.outcome = outcome

    async def update(self, action: SlackAction, feedback: Feedback, *, by_response_url: bool = False) -> bool | None:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("outcome", "counted"),
    [
        (True, "updated"),
        (None, "updated"),
        (False, "skipped"),
        (RuntimeError("chat.update: HTTP 400 invalid_blocks"), "failed"),
        (RetryableDeliveryError("slack chat.update: HTTP 503", retry_after=0.0), "failed"),
    ],
)
async def test_every_message_update_after_a_press_is_counted_by_outcome(
    outcome: bool | Exception | None, counted: str
) -> None:
    """A press whose message is not re-rendered (unknown here, or chat.update failing) was only logged: the
    "acknowledged by …" never showing in Slack went unseen on /metrics. Each press now ends in one outcome of
    preempt_slack_message_updates_total: updated, skipped or failed."""
    handler = SlackActionHandler(SECRET, Recorder().publish, ScriptedUpdate(outcome).update)
    before = {o: SLACK_MESSAGE_UPDATES.labels(outcome=o)._value.get() for o in ("updated", "skipped", "failed")}
    body = make_body("preempt_ack")

    assert (await handler.handle(signed(body), body, NOW))[0] == 200
    await handler.drain()

    after = {o: SLACK_MESSAGE_UPDATES.labels(outcome=o)._value.get() for o in before}
    assert {o: after[o] - before[o] for o in before} == {o: float(o == counted) for o in before}


def test_snooze_book_suppresses_the_rule_for_the_account_until_expiry() -> None:
    """A stored snooze covers that account and rule only, until snooze_until."""
    table: dict[bytes, Any] = {}
    book = SnoozeBook(table)
    until = book.apply(to_feedback(_parsed(make_body()), NOW), NOW)

    assert until == NOW + 7 * 24 * 3600
    assert book.snoozed_until("acme", "error-spike", NOW + 60) == until
    assert book.snoozed_until("acme", "usage-drop", NOW + 60) is None
    assert book.snoozed_until("globex", "error-spike", NOW + 60) is None
    assert book.snoozed_until("acme", "error-spike", until + 1) is None


def test_snooze_book_ignores_other_actions() -> None:
    """Acknowledge and Not helpful do not silence anything."""
    table: dict[bytes, Any] = {}
    book = SnoozeBook(table)
    assert book.apply(to_feedback(_parsed(make_body("preempt_ack")), NOW), NOW) is None
    assert table == {}


def test_a_snooze_end_in_any_rfc3339_spelling_is_recorded() -> None:
    """A lower-case ``t``/``z`` snooze end (valid RFC 3339) is recorded, not refused by the table write."""
    book = SnoozeBook({})
    feedback = Feedback(
        action="snooze",
        alert_id="a1",
        rule_id="error-spike",
        account_id="acme",
        at="2026-11-23T06:00:00Z",
        snooze_until="2026-11-23t07:00:00z",
    )
    assert book.apply(feedback, now=parse_rfc3339("2026-11-23T06:00:00Z")) == parse_rfc3339("2026-11-23T07:00:00Z")
    assert book.snoozed_until("acme", "error-spike", parse_rfc3339("2026-11-23T06:30:00Z")) is not None


async def test_link_button_clicks_are_acknowledged_and_not_recorded() -> None:
    """Slack posts a click on an "Open crm" link button too and flags the button unless it gets a 200:
    the click is answered 200 with nothing published, counted or refused."""
    rec = Recorder()
    handler = SlackActionHandler(SECRET, rec.publish, rec.update)
    payload = {
        "type": "block_actions",
        "user": {"id": "U123"},
        "actions": [{"action_id": "preempt_link_0", "type": "button", "url": "https://crm.example.com/acme"}],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    before = SLACK_ACTIONS_REFUSED.labels(reason="bad_request")._value.get()

    assert await handler.handle(signed(body), body, NOW) == (200, "")
    await handler.drain()

    assert rec.published == []
    assert rec.updated == []
    assert SLACK_ACTIONS_REFUSED.labels(reason="bad_request")._value.get() == before
    assert (await handler.handle(signed(body, secret="x"), body, NOW))[0] == 401  # still verified first
