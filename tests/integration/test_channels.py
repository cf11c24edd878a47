"""The Slack and email notifiers against real servers: a local HTTP server speaking Slack's webhook and
Web API (slack_sdk pointed at it) and a real aiosmtpd SMTP server."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from alerts.blocks import ACTION_ACK
from alerts.channels.base import Notification
from alerts.channels.console import ConsoleNotifier
from alerts.channels.email import EmailNotifier
from alerts.channels.slack import ChannelRateLimiter, SlackNotifier, render_message
from alerts.cli.preview import mrkdwn_html
from alerts.routing.config import EmailReceiver, SlackReceiver
from alerts.testing.factories import build_alert, hostile_alert
from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from alerts.testing.smtp_server import FakeSMTP, smtp_server, smtp_tls_server  # noqa: F401
from schemas.alert import Alert
from schemas.errors import DeliveryError, DestinationFailingError, PermanentDeliveryError, RetryableDeliveryError
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port

TOKEN = "xoxb-secret-token-123"


def _notification(*alerts: Alert, receiver: str = "owner") -> Notification:
    return Notification(receiver=receiver, alerts=alerts or (build_alert(),), group_key=f"{receiver}|root|g")


async def _send_and_close(notifier: SlackNotifier, alert: Alert) -> None:
    """Send one alert and release the notifier's HTTP session."""
    try:
        await notifier.send(_notification(alert))
    finally:
        await notifier.aclose()


@pytest.fixture
def bot_notifier(slack_server: FakeSlack) -> Callable[..., SlackNotifier]:  # noqa: F811
    """Factory: a bot-token SlackNotifier (chat.postMessage) pointed at the fake Slack."""

    def factory(channel: str = "{{ account.owner.slack }}", **config: object) -> SlackNotifier:
        settings = Settings(slack_bot_token=TOKEN, slack_api_url=slack_server.api_url)
        return SlackNotifier(
            SlackReceiver.model_validate({"channel": channel, **config}), settings, ChannelRateLimiter()
        )

    return factory


@pytest.fixture
def webhook_notifier(slack_server: FakeSlack) -> Callable[..., SlackNotifier]:  # noqa: F811
    """Factory: an incoming-webhook SlackNotifier pointed at the fake Slack."""

    def factory(name: str = "support") -> SlackNotifier:
        receiver = SlackReceiver.model_validate({"webhook_url": slack_server.webhook_url(name)})
        return SlackNotifier(receiver, Settings(), ChannelRateLimiter())

    return factory


@pytest.fixture
def email_notifier(smtp_server: FakeSMTP) -> Callable[..., EmailNotifier]:  # noqa: F811
    """Factory: an EmailNotifier pointed at the aiosmtpd server; settings overrides apply."""

    def factory(to: object = "{{ account.owner.email }}", **overrides: object) -> EmailNotifier:
        fields: dict[str, object] = {"smtp_host": smtp_server.host, "smtp_port": smtp_server.port, **overrides}
        settings = Settings(**fields)  # type: ignore[arg-type]
        return EmailNotifier(EmailReceiver.model_validate({"to": to}), settings, timeout_s=5)

    return factory


# --- Slack: bot token -------------------------------------------------------------------------------


async def test_bot_posts_block_kit_to_owner_and_updates_it(
    slack_server: FakeSlack,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
) -> None:
    """chat.postMessage reaches the owner's channel with blocks, fallback text and the token; update edits it."""
    notifier = bot_notifier()
    alert = build_alert()
    try:
        receipt = await notifier.send(_notification(alert))
        [posted] = slack_server.wait_for(1, target="U0JANE01")
        assert posted.method == "chat.postMessage"
        assert posted.headers["Authorization"] == f"Bearer {TOKEN}"
        assert posted.body["text"] == (
            "[HIGH] API errors are spiking (Acme): 37 matching events, at or above the threshold of 20"
        )
        assert posted.body["blocks"][0]["text"]["text"] == alert.title
        # What `preempt alerts preview` shows is what was posted.
        preview = render_message(SlackReceiver(channel="{{ account.owner.slack }}"), (alert,))
        assert {"text": posted.body["text"], "blocks": posted.body["blocks"]} == preview
        buttons = next(b for b in posted.body["blocks"] if b["type"] == "actions")["elements"]
        assert json.loads(buttons[0]["value"])["alert_id"] == alert.alert_id
        assert receipt.ref is not None
        assert receipt.ref.startswith("U0JANE01:")

        slack_server.requests.clear()
        await notifier.update(receipt.ref, (alert,), {alert.alert_id: "Acknowledged by Jane"})
        [updated] = slack_server.wait_for(1)
        assert updated.method == "chat.update"
        assert updated.body["ts"] == receipt.ref.split(":", 1)[1]
        assert ACTION_ACK not in json.dumps(updated.body)
        assert "Acknowledged by Jane" in json.dumps(updated.body)
    finally:
        await notifier.aclose()


async def test_bot_429_is_retryable_with_retry_after(
    slack_server: FakeSlack,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
) -> None:
    """A 429 with Retry-After: 2 raises RetryableDeliveryError(retry_after=2.0), holds the channel, no inner retry."""
    slack_server.script("#cs", Reply.rate_limited(2.0))
    notifier = bot_notifier(channel="#cs")
    try:
        with pytest.raises(RetryableDeliveryError) as info:
            await notifier.send(_notification())
        assert info.value.retry_after == 2.0
        with pytest.raises(RetryableDeliveryError) as held:  # the channel stays closed until Retry-After
            await notifier.send(_notification())
        assert held.value.retry_after is not None
        assert 1.0 < held.value.retry_after <= 2.0
        assert len(slack_server.for_target("#cs")) == 1
    finally:
        await notifier.aclose()


async def test_a_retry_after_past_the_give_up_window_closes_the_channel_for_that_window_only(
    slack_server: FakeSlack,  # noqa: F811
) -> None:
    """A 429 whose Retry-After is three years (a proxy's, or a clock's error) gives its message up, and holds the
    channel for the give-up window only: a message after it is posted. The channel stayed closed, every later
    message refused without asking Slack, until the notifier was restarted."""
    slack_server.script("#cs", Reply.rate_limited(100_000_000))
    settings = Settings(slack_bot_token=TOKEN, slack_api_url=slack_server.api_url, delivery_give_up_seconds=1.5)
    notifier = SlackNotifier(SlackReceiver(channel="#cs"), settings, ChannelRateLimiter())
    try:
        with pytest.raises(RetryableDeliveryError) as info:
            await notifier.send(_notification())
        assert info.value.retry_after == 100_000_000
        later = _notification()
        with pytest.raises(RetryableDeliveryError) as held:
            await notifier.send(later)
        assert held.value.retry_after is not None
        assert held.value.retry_after <= 1.5
        await asyncio.sleep(held.value.retry_after + 0.1)
        await notifier.send(later)
        assert [r.reply.status for r in slack_server.for_target("#cs")] == [429, 200]
    finally:
        await notifier.aclose()


async def test_bot_500_is_retryable_and_not_retried_inside(
    slack_server: FakeSlack,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
) -> None:
    """A 500 raises RetryableDeliveryError and the server saw exactly one request."""
    slack_server.script("#cs", Reply.server_error(500))
    notifier = bot_notifier(channel="#cs")
    try:
        with pytest.raises(RetryableDeliveryError):
            await notifier.send(_notification())
        assert len(slack_server.for_target("#cs")) == 1
    finally:
        await notifier.aclose()


@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_a_503_with_retry_after_is_retried_no_sooner_than_slack_asked(
    slack_server: FakeSlack,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
    webhook_notifier: Callable[..., SlackNotifier],
    mode: str,
) -> None:
    """A 503 carrying Retry-After: 3 is retryable after those 3 s (not the 1 s backoff), and holds the channel."""
    target = "#ops" if mode == "bot" else "ops-hook"
    slack_server.script(target, Reply(status=503, retry_after=3.0))
    notifier = bot_notifier(channel="#ops") if mode == "bot" else webhook_notifier(target)
    try:
        with pytest.raises(RetryableDeliveryError) as info:
            await notifier.send(_notification())
        assert info.value.retry_after == 3.0
        with pytest.raises(RetryableDeliveryError) as held:
            await notifier.send(_notification())
        assert held.value.retry_after is not None
        assert held.value.retry_after > 2.0
        assert len(slack_server.for_target(target)) == 1
    finally:
        await notifier.aclose()


@pytest.mark.parametrize("code", ["channel_not_found", "channel_is_archived", "not_in_channel"])
async def test_bot_permanent_errors(
    slack_server: FakeSlack,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
    code: str,
) -> None:
    """Slack errors that retrying cannot fix raise PermanentDeliveryError, without the token in the message."""
    slack_server.always("#gone", Reply.slack_error(code))
    notifier = bot_notifier(channel="#gone")
    try:
        with pytest.raises(PermanentDeliveryError) as info:
            await notifier.send(_notification())
        assert code in str(info.value)
        assert TOKEN not in str(info.value)
    finally:
        await notifier.aclose()


@pytest.mark.parametrize("code", ["invalid_auth", "token_revoked", "account_inactive"])
async def test_a_bad_token_is_the_destination_failing_and_retried(
    slack_server: FakeSlack,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
    code: str,
) -> None:
    """A wrong, revoked or deactivated token fails every message: DestinationFailingError (retried), saying to
    fix PREEMPT_SLACK_BOT_TOKEN, without the token; once Slack takes the token again the message goes out."""
    slack_server.script("#ops", Reply.slack_error(code))
    notifier = bot_notifier(channel="#ops")
    try:
        with pytest.raises(DestinationFailingError) as info:
            await notifier.send(_notification())
        assert code in str(info.value)
        assert "PREEMPT_SLACK_BOT_TOKEN" in info.value.fix
        assert TOKEN not in str(info.value)
        await asyncio.sleep(1.1)  # the channel's pacing
        await notifier.send(_notification())
        slack_server.wait_for(1, target="#ops")
    finally:
        await notifier.aclose()


async def test_bot_paces_one_message_per_second_per_channel(
    slack_server: FakeSlack,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
) -> None:
    """A second post to the same channel right away raises RetryableDeliveryError(≤1 s) without a request."""
    notifier = bot_notifier(channel="#cs")
    try:
        await notifier.send(_notification())
        with pytest.raises(RetryableDeliveryError) as info:
            await notifier.send(_notification())
        assert info.value.retry_after is not None
        assert 0 < info.value.retry_after <= 1.0
        assert len(slack_server.for_target("#cs")) == 1
    finally:
        await notifier.aclose()


async def test_slack_timeout_is_retryable(slack_server: FakeSlack) -> None:  # noqa: F811
    """A server slower than the client timeout raises RetryableDeliveryError, after one request only."""
    slack_server.script("#slow", Reply.slow(3.0))
    settings = Settings(slack_bot_token=TOKEN, slack_api_url=slack_server.api_url)
    notifier = SlackNotifier(SlackReceiver(channel="#slow"), settings, ChannelRateLimiter(), timeout_s=1)
    try:
        with pytest.raises(RetryableDeliveryError, match="TimeoutError"):
            await notifier.send(_notification())
        assert len(slack_server.for_target("#slow")) == 1
    finally:
        await notifier.aclose()


async def test_unreachable_slack_is_retryable() -> None:
    """A connection refused raises RetryableDeliveryError naming only the error type."""
    settings = Settings(slack_bot_token=TOKEN, slack_api_url=f"http://127.0.0.1:{free_port()}/api/")
    notifier = SlackNotifier(SlackReceiver(channel="#cs"), settings, ChannelRateLimiter())
    try:
        with pytest.raises(RetryableDeliveryError) as info:
            await notifier.send(_notification())
        assert "ClientConnectorError" in str(info.value)
    finally:
        await notifier.aclose()


async def test_hostile_alert_accepted_by_slack(
    slack_server: FakeSlack,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
) -> None:
    """A long hostile alert and a 30-alert digest pass the server's Block Kit checks with nothing unescaped."""
    notifier = bot_notifier(channel="#cs")
    notifier._limiter = ChannelRateLimiter(min_interval=0)
    try:
        await notifier.send(_notification(hostile_alert()))
        await notifier.send(_notification(*(hostile_alert(length=3000) for _ in range(30))))
        delivered = slack_server.wait_for(2, target="#cs")
        assert "<!channel>" not in json.dumps([r.body for r in delivered])
    finally:
        await notifier.aclose()


# --- Slack: incoming webhook ------------------------------------------------------------------------


async def test_webhook_delivers(
    slack_server: FakeSlack,  # noqa: F811
    webhook_notifier: Callable[..., SlackNotifier],
) -> None:
    """The webhook receives text + blocks; the receipt has no ref (webhooks cannot be updated)."""
    notifier = webhook_notifier("support")
    try:
        receipt = await notifier.send(_notification(receiver="support"))
        [posted] = slack_server.wait_for(1, target="support")
        assert posted.kind == "webhook"
        assert posted.body["blocks"][0]["type"] == "header"
        assert posted.body["text"]
        assert receipt.ref is None
    finally:
        await notifier.aclose()


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        (Reply.rate_limited(2.0), RetryableDeliveryError, 2.0),
        (Reply.server_error(503), RetryableDeliveryError, None),
        (Reply.slack_error("channel_not_found"), PermanentDeliveryError, None),
        (Reply.slack_error("channel_is_archived"), PermanentDeliveryError, None),
        (Reply.slack_error("invalid_payload"), PermanentDeliveryError, None),
        (Reply.slack_error("invalid_token"), DestinationFailingError, None),
        (Reply.slack_error("no_service"), DestinationFailingError, None),
    ],
)
async def test_webhook_failures(
    slack_server: FakeSlack,  # noqa: F811
    webhook_notifier: Callable[..., SlackNotifier],
    reply: Reply,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    """Webhook 429/5xx are retryable, 400/404/410 permanent; the webhook URL never appears in the error."""
    slack_server.script("hook", reply)
    notifier = webhook_notifier("hook")
    try:
        with pytest.raises(error) as info:
            await notifier.send(_notification())
        assert getattr(info.value, "retry_after", None) == retry_after
        assert slack_server.webhook_url("hook") not in str(info.value)
        assert "services/hook" not in str(info.value)
        assert len(slack_server.for_target("hook")) == 1
    finally:
        await notifier.aclose()


async def test_a_proxy_page_in_place_of_slacks_answer_is_no_delivery(
    slack_server: FakeSlack,  # noqa: F811
    webhook_notifier: Callable[..., SlackNotifier],
    bot_notifier: Callable[..., SlackNotifier],
) -> None:
    """An HTML page with HTTP 200 (a proxy or firewall in between) is a permanent failure that says so, for a
    webhook and for the Web API. The webhook counted it as delivered: the message was lost and nobody knew."""
    slack_server.script("hook", Reply.proxy_page())
    slack_server.script("#cs", Reply.proxy_page())
    for notifier in (webhook_notifier("hook"), bot_notifier(channel="#cs")):
        try:
            with pytest.raises(PermanentDeliveryError, match="HTTP 200 but the answer is not Slack's: a proxy"):
                await notifier.send(_notification())
        finally:
            await notifier.aclose()
    assert len(slack_server.for_target("hook")) == len(slack_server.for_target("#cs")) == 1


async def test_names_with_slack_formatting_characters_show_as_typed_on_every_channel(
    slack_server: FakeSlack,  # noqa: F811
    smtp_server: FakeSMTP,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
    email_notifier: Callable[..., EmailNotifier],
) -> None:
    """An account "Acme_Corp *EU*" owned by "~Legacy~ Ops": the message Slack receives draws both as typed
    (no bold "EU", no struck "Legacy"), and the email and the console show the names unchanged."""
    account = "Acme_Corp *EU*"
    owner = {"name": "~Legacy~ Ops", "email": "legacy@example.com", "slack": "C0LEGACY"}
    alert = build_alert(title=f"{account}: usage dropped", account={"name": account, "owner": owner})
    await _send_and_close(bot_notifier(), alert)
    [posted] = slack_server.wait_for(1, target="C0LEGACY")
    shown = " ".join(
        str(mrkdwn_html(field["text"])) for block in posted.body["blocks"] for field in block.get("fields", [])
    )
    assert "*Account*\nAcme_Corp *EU* (`acme`)" not in json.dumps(posted.body)  # sent so that Slack keeps it
    assert "Acme_Corp *EU* (<code>acme</code>)" in shown
    assert "~Legacy~ Ops" in shown
    assert posted.body["blocks"][0]["text"]["text"] == alert.title  # plain_text: Slack formats nothing there

    await email_notifier(to="{{ account.owner.email }}").send(_notification(alert))
    [mail] = smtp_server.wait_for(1)
    text, page = (p.get_content() for p in mail.message.iter_parts())
    assert f"{account}: usage dropped" in mail.message["Subject"]
    assert account in text
    assert "~Legacy~ Ops" in text
    assert "Acme_Corp *EU*" in page
    assert "<!date" not in text + page

    out = io.StringIO()
    await ConsoleNotifier(stream=out).send(_notification(alert))
    assert account in out.getvalue()
    assert "~Legacy~ Ops" in out.getvalue()
    assert "<!date" not in out.getvalue()


async def test_a_long_right_to_left_overriding_name_reaches_slack_and_email_readable(
    slack_server: FakeSlack,  # noqa: F811
    smtp_server: FakeSMTP,  # noqa: F811
    bot_notifier: Callable[..., SlackNotifier],
    email_notifier: Callable[..., EmailNotifier],
) -> None:
    """An account named with 250 characters and an unclosed right-to-left override: what Slack and the SMTP
    server receive has no bidi control, and the header and subject still say what happened."""
    name = "Very Long Account Name \u202e" + "x" * 226
    alert = build_alert(title=f"{name}: bank link not verified", account={"name": name})
    bidi = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
    await _send_and_close(bot_notifier(), alert)
    [posted] = slack_server.wait_for(1, target="U0JANE01")
    assert not bidi & set(json.dumps(posted.body, ensure_ascii=False))
    assert posted.body["blocks"][0]["text"]["text"].endswith("…: bank link not verified")

    await email_notifier().send(_notification(alert))
    [mail] = smtp_server.wait_for(1)
    subject = str(mail.message["Subject"])
    assert subject.startswith("[HIGH] Very Long Account Name x")
    assert subject.endswith("…: bank link not verified")
    assert not bidi & set(subject + "".join(str(p.get_content()) for p in mail.message.iter_parts()))


# --- email ------------------------------------------------------------------------------------------


async def test_email_delivers_multipart_digest(
    smtp_server: FakeSMTP,  # noqa: F811
    email_notifier: Callable[..., EmailNotifier],
) -> None:
    """A group of two alerts reaches the owner as one multipart/alternative digest, text then HTML."""
    alerts = (build_alert(title="Acme: errors"), build_alert(title="Acme: usage dropped", severity="critical"))
    receipt = await email_notifier().send(_notification(*alerts))
    [mail] = smtp_server.wait_for(1)
    message = mail.message
    assert mail.rcpt_tos == ("jane@example.com",)
    assert message["Subject"] == "[CRITICAL] Acme: 2 alerts"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text, html = (p.get_content() for p in message.iter_parts())
    assert "Acme: errors" in text
    assert "Acme: usage dropped" in text
    assert '<h2 style="margin-bottom: 4px">Acme: usage dropped</h2>' in html
    assert "<strong>admin</strong>" in html  # the playbook's Markdown as HTML
    assert "**" not in text
    assert receipt.ref == message["Message-ID"]


async def test_email_login(smtp_server: FakeSMTP, email_notifier: Callable[..., EmailNotifier]) -> None:  # noqa: F811
    """With a username and password set (and clear-text login explicitly allowed), the notifier logs in
    before sending."""
    notifier = email_notifier(smtp_username="preempt", smtp_password="s3cret", smtp_allow_plaintext_auth=True)
    await notifier.send(_notification())
    smtp_server.wait_for(1)
    assert smtp_server.logins == ["preempt"]


async def test_email_starttls_and_login(smtp_tls_server: tuple[FakeSMTP, Path]) -> None:  # noqa: F811
    """With STARTTLS on, the session is upgraded (verified against the configured CA) before login and DATA."""
    server, cert = smtp_tls_server
    settings = Settings(
        smtp_host=server.host,
        smtp_port=server.port,
        smtp_starttls=True,
        smtp_ca_file=cert,
        smtp_username="preempt",
        smtp_password="s3cret",
    )
    notifier = EmailNotifier(EmailReceiver(to=("{{ account.owner.email }}",)), settings, timeout_s=5)
    await notifier.send(_notification())
    [mail] = server.wait_for(1)
    assert mail.tls
    assert server.logins == ["preempt"]


def test_email_credentials_without_tls_are_refused_at_start() -> None:
    """A username without STARTTLS or implicit TLS is a settings error: the password would travel in clear."""
    with pytest.raises(ValidationError, match="PREEMPT_SMTP_ALLOW_PLAINTEXT_AUTH"):
        Settings(smtp_username="preempt", smtp_password="s3cret")


async def test_email_starttls_required_but_not_offered_sends_no_credentials(
    smtp_server: FakeSMTP,  # noqa: F811
    email_notifier: Callable[..., EmailNotifier],
) -> None:
    """With STARTTLS on and a server that does not offer it, nothing is sent: no login, no message; the
    error says why (an operator reading the dead letter must not have to guess)."""
    notifier = email_notifier(smtp_username="preempt", smtp_password="s3cret", smtp_starttls=True)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(_notification())
    assert "s3cret" not in str(info.value)
    assert "STARTTLS" in str(info.value)
    assert smtp_server.logins == []
    assert smtp_server.messages == []


async def test_email_untrusted_certificate_is_retryable(smtp_tls_server: tuple[FakeSMTP, Path]) -> None:  # noqa: F811
    """A certificate the configured CAs do not trust fails the send (retryable) and sends nothing."""
    server, _cert = smtp_tls_server
    settings = Settings(smtp_host=server.host, smtp_port=server.port, smtp_starttls=True)
    notifier = EmailNotifier(EmailReceiver(to=("{{ account.owner.email }}",)), settings, timeout_s=5)
    with pytest.raises(RetryableDeliveryError):
        await notifier.send(_notification())
    assert server.messages == []


@pytest.mark.parametrize(
    ("stage", "reply", "error"),
    [
        ("rcpt", "451 4.3.0 Mailbox busy, try later", RetryableDeliveryError),
        ("rcpt", "550 5.1.1 No such user", PermanentDeliveryError),
        ("data", "451 4.3.0 Try again later", RetryableDeliveryError),
        ("data", "550 5.7.1 Message rejected", PermanentDeliveryError),
    ],
)
async def test_email_smtp_failures(
    smtp_server: FakeSMTP,  # noqa: F811
    email_notifier: Callable[..., EmailNotifier],
    stage: str,
    reply: str,
    error: type[Exception],
) -> None:
    """SMTP 4xx raises RetryableDeliveryError, 5xx PermanentDeliveryError; the password is never in it."""
    (smtp_server.script_rcpt if stage == "rcpt" else smtp_server.script_data)(reply, times=1)
    notifier = email_notifier(smtp_username="preempt", smtp_password="s3cret", smtp_allow_plaintext_auth=True)
    with pytest.raises(error) as info:
        await notifier.send(_notification())
    assert reply[:3] in str(info.value)
    assert "s3cret" not in str(info.value)
    assert smtp_server.messages == []
    await notifier.send(_notification())  # the script is used up: the next attempt is delivered
    smtp_server.wait_for(1)


async def test_email_retry_after_a_later_digest_failed_does_not_resend_the_earlier_ones(
    smtp_server: FakeSMTP,  # noqa: F811
    email_notifier: Callable[..., EmailNotifier],
) -> None:
    """A group of two owners is two digests; when the second gets 451, the retry sends only the second."""
    first = build_alert(account={"name": "Umbrella", "owner": {"email": "aiko@example.com"}})
    second = build_alert(account_id="tyrell", account={"name": "Tyrell", "owner": {"email": "boris@example.com"}})
    smtp_server.script_data("250 Message accepted", times=1)
    smtp_server.script_data("451 4.3.0 try again later", times=1)
    notifier = email_notifier()
    with pytest.raises(RetryableDeliveryError):
        await notifier.send(_notification(first, second))
    assert len(smtp_server.wait_for(1)) == 1
    receipt = await notifier.send(_notification(first, second))
    mails = smtp_server.wait_for(2)
    assert sorted(m.rcpt_tos for m in mails) == [("aiko@example.com",), ("boris@example.com",)]
    assert len([a for a in smtp_server.attempts if a.stage == "DATA"]) == 3
    assert receipt.ref is not None
    assert len(receipt.ref.split(",")) == 2


async def test_email_unreachable_is_retryable(email_notifier: Callable[..., EmailNotifier]) -> None:
    """No SMTP server listening raises RetryableDeliveryError."""
    notifier = email_notifier(smtp_port=free_port())
    with pytest.raises(RetryableDeliveryError):
        await notifier.send(_notification())


async def test_email_wrong_password_is_the_destination_failing_until_the_password_works(
    smtp_server: FakeSMTP,  # noqa: F811
    email_notifier: Callable[..., EmailNotifier],
) -> None:
    """The server answers AUTH with 535 (the password was rotated): DestinationFailingError naming the server and
    what to fix, never the password, nothing sent; once the server takes the password, the message goes out."""
    smtp_server.password = "new-password"
    notifier = email_notifier(smtp_username="preempt", smtp_password="old-password", smtp_allow_plaintext_auth=True)
    with pytest.raises(DestinationFailingError) as info:
        await notifier.send(_notification())
    assert "SMTP 535" in str(info.value)
    assert f"{smtp_server.host}:{smtp_server.port}" in str(info.value)
    assert "PREEMPT_SMTP_PASSWORD" in info.value.fix
    assert "password" not in str(info.value).replace("PREEMPT_SMTP_PASSWORD", "").replace("rotated password", "")
    assert set(smtp_server.failed_logins) == {"preempt"}
    assert smtp_server.messages == []
    smtp_server.password = "old-password"  # the server side is put right
    await notifier.send(_notification())
    smtp_server.wait_for(1)


async def test_email_server_that_requires_a_login_is_the_destination_failing() -> None:
    """A relay that wants a login the settings do not give answers MAIL with 530: DestinationFailingError saying
    to set PREEMPT_SMTP_USERNAME and PREEMPT_SMTP_PASSWORD, nothing sent."""
    server = FakeSMTP(auth_required=True)
    server.start()
    try:
        settings = Settings(smtp_host=server.host, smtp_port=server.port)
        notifier = EmailNotifier(EmailReceiver(to=("{{ account.owner.email }}",)), settings, timeout_s=5)
        with pytest.raises(DestinationFailingError) as info:
            await notifier.send(_notification())
        assert "SMTP 530" in str(info.value)
        assert "PREEMPT_SMTP_USERNAME" in info.value.fix
        assert server.messages == []
    finally:
        server.stop()


async def test_a_replay_of_an_email_that_reached_some_recipients_goes_to_the_others_only(
    smtp_server: FakeSMTP,  # noqa: F811
    email_notifier: Callable[..., EmailNotifier],
) -> None:
    """Two alerts, each to its owner and to ops@: the first owner's message goes out, ops@'s fails. A
    notifier that remembers nothing (restarted, or replaying the dead letter) with the delivery log's ledger
    sends each alert only to the recipients that never got it: no second message to the first owner. Only the
    partial send records recipients (a complete one is the target's record, written by the dispatcher)."""
    from alerts.delivery_log import DeliveryLog, TargetLedger

    table: dict[bytes, object] = {}
    ledger = TargetLedger(DeliveryLog(table, 3600.0), "csm/email", lambda: 1000.0)
    to = ["{{ account.owner.email }}", "ops@example.com"]
    first = build_alert(account={"name": "Umbrella", "owner": {"email": "aiko@example.com"}})
    second = build_alert(account_id="tyrell", account={"name": "Tyrell", "owner": {"email": "boris@example.com"}})
    smtp_server.script_data("250 Message accepted", times=1)
    smtp_server.script_data("451 4.3.0 try again later", times=None)
    with pytest.raises(RetryableDeliveryError):
        await email_notifier(to=to).send(Notification("csm", (first, second), "csm|g", ledger=ledger))
    assert [m.rcpt_tos for m in smtp_server.wait_for(1)] == [("aiko@example.com",)]

    smtp_server.script_data("250 Message accepted", times=None)  # fixed; the alert replayed on its own
    for alert in (first, second):
        await email_notifier(to=to).send(Notification("csm", (alert,), f"csm|replay|{alert.alert_id}", ledger=ledger))
    mails = smtp_server.wait_for(3)
    assert sorted(m.rcpt_tos for m in mails) == [
        ("aiko@example.com",),
        ("boris@example.com", "ops@example.com"),
        ("ops@example.com",),
    ]
    # The replays reached every recipient: recorded as delivered to the target by the dispatcher (which stops
    # any later send), so no recipient record is added; the partial first send's one stays.
    log = DeliveryLog(table, 3600.0)
    assert log.recipients(first.account_id, first.alert_id, "csm/email") == ["aiko@example.com"]
    assert log.recipients(second.account_id, second.alert_id, "csm/email") == []
    assert len(smtp_server.messages) == 3
