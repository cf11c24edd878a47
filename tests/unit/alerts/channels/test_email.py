"""Email channel logic without a server: recipients, digests, the message shape and SMTP classification."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from structlog.testing import capture_logs

from alerts.channels.email import EmailNotifier, classify_smtp, smtp_scope
from alerts.routing.config import EmailReceiver
from schemas.alert import Alert
from schemas.errors import PermanentDeliveryError, RetryableDeliveryError
from streams.runtime.metrics import NOTIFIER_FALLBACKS
from streams.runtime.settings import Settings


@pytest.fixture
def make_notifier() -> Callable[..., EmailNotifier]:
    """Factory: an EmailNotifier for an email_configs entry."""

    def factory(**config: object) -> EmailNotifier:
        return EmailNotifier(EmailReceiver.model_validate(config), Settings(smtp_from="Preempt <p@example.com>"))

    return factory


def test_recipients_are_templated_and_deduplicated(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """Templates render per alert; comma lists split; invalid and duplicate addresses are dropped."""
    notifier = make_notifier(
        to=["{{ account.owner.email }}", "ops@example.com, jane@example.com", "{{ 'not-an-address' }}"]
    )
    assert notifier.recipients(make_alert()) == ["jane@example.com", "ops@example.com"]


def test_message_is_multipart_alternative_text_then_html(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """The message has a text part first and an HTML part second, and a [SEVERITY] Account: title subject."""
    notifier = make_notifier(to="{{ account.owner.email }}")
    message = notifier.build((make_alert(),), ["jane@example.com"], "g1")
    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message["Subject"] == "[HIGH] Acme: API errors are spiking"
    assert message["To"] == "jane@example.com"
    assert message["From"] == "Preempt <p@example.com>"


def test_message_id_is_stable_for_the_same_group(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """A retried digest gets the same Message-ID; a different group gets another."""
    notifier = make_notifier(to="x@example.com")
    alert = make_alert()
    first = notifier.build((alert,), ["x@example.com"], "g1")["Message-ID"]
    assert notifier.build((alert,), ["x@example.com"], "g1")["Message-ID"] == first
    assert notifier.build((alert,), ["x@example.com"], "g2")["Message-ID"] != first


def test_subject_newlines_cannot_inject_headers(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """A title with CR/LF becomes one subject line (no header injection)."""
    notifier = make_notifier(to="x@example.com")
    message = notifier.build((make_alert(title="Hi\r\nBcc: evil@example.com"),), ["x@example.com"], "g")
    assert "\n" not in message["Subject"]
    assert message["Bcc"] is None


def test_a_long_account_name_gives_way_to_the_title_in_the_subject(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """An account name of 256 characters is shortened in the subject, which still says what happened and
    marks the cut; it was cut at 250 characters, inside the name, without a mark. Runs of spaces and bidi
    controls in the name (which the subject does not show) do not stop it."""
    for name in (("Very Long Account Name " * 12)[:256], "Very  Long Account Name\u202e " * 11):  # spaces, RLO
        alert = make_alert(title=f"{name}: bank link not verified", account={"name": name})
        message = make_notifier(to="x@example.com").build((alert,), ["x@example.com"], "g")
        subject = str(message["Subject"])
        assert len(subject) <= 250
        assert subject.startswith("[HIGH] Very Long Account Name Very Long")
        assert subject.endswith("…: bank link not verified"), subject


def test_per_recipient_digests(make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]) -> None:
    """Alerts owned by different people become one digest per owner; shared recipients share a message."""
    notifier = make_notifier(to=["{{ account.owner.email }}", "lead@example.com"])
    jane1, jane2 = make_alert(), make_alert()
    bob = make_alert(account_id="globex", account={"owner": {"email": "bob@example.com"}})
    digests = notifier._digests([jane1, jane2, bob])
    as_sets = {(tuple(a.alert_id for a in alerts), tuple(rcpts)) for alerts, rcpts in digests}
    assert as_sets == {
        ((jane1.alert_id, jane2.alert_id), ("jane@example.com",)),
        ((bob.alert_id,), ("bob@example.com",)),
        ((jane1.alert_id, jane2.alert_id, bob.alert_id), ("lead@example.com",)),
    }


def test_a_digest_of_more_alerts_than_one_email_holds_is_split_and_every_part_renders(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """1,600 alerts for one recipient (a group by rule at a deadline, a night held by quiet hours) become emails
    of at most 100 alerts, each with both parts rendered. As one email, the HTML part passed the template
    sandbox's output limit and was sent empty: a blank email in every mail client."""
    notifier = make_notifier(to="lead@example.com")
    playbook = (
        "1. Call the champion and ask what changed.\n2. **Check** the error dashboard.\n3. Offer a session.\n" * 3
    )
    alerts = [make_alert(account_id=f"acc-{n}", alert_id=f"a{n}", playbook=playbook) for n in range(1600)]
    digests = notifier._digests(alerts)
    assert [len(part) for part, _recipients in digests] == [100] * 16
    assert [a.alert_id for part, _recipients in digests for a in part] == [a.alert_id for a in alerts]
    message = notifier.build(digests[-1][0], digests[-1][1], "g")
    assert "acc-1599" in message.get_body(("html",)).get_content()
    assert "acc-1599" in message.get_body(("plain",)).get_content()


LONG_PLAYBOOK = (
    "1. **Check** the [error dashboard](https://grafana.example.com/d/errors?account=acme) & call the admin.\n" * 80
)[:8000]


async def test_a_digest_too_big_for_the_template_sandbox_is_halved_until_every_part_renders(
    monkeypatch: pytest.MonkeyPatch, make_alert: Callable[..., Alert]
) -> None:
    """100 alerts with 8,000-character playbooks pass the sandbox's 1,000,000 characters of output in HTML: the
    digest goes out in halves, each with both parts rendered, every alert once, and no template fallback. As
    one email its HTML part rendered empty: a blank email recorded as delivered."""
    from alerts.channels.base import Notification

    notifier = EmailNotifier(EmailReceiver(to=("ops@example.com",)), Settings())
    alerts = tuple(make_alert(account_id=f"acc-{n}", alert_id=f"a{n}", playbook=LONG_PLAYBOOK) for n in range(100))
    sent: list[EmailMessage] = []

    async def deliver(message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, str]]:
        sent.append(message)
        return {}

    monkeypatch.setattr(notifier, "_deliver", deliver)
    with capture_logs() as logs:
        receipt = await notifier.send(Notification(receiver="r", alerts=alerts, group_key="g"))
    assert [e["event"] for e in logs] == []
    assert len(sent) >= 2
    for message in sent:
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        count = len(_accounts(message))
        assert str(message["Subject"]) == f"[HIGH] {count} alerts for {count} accounts"
        assert html.count("<h2") == text.count("What to do:") == count
    assert sorted(int(part.removeprefix("acc-")) for m in sent for part in _accounts(m)) == list(range(100))
    assert receipt.ref == ",".join(str(m["Message-ID"]) for m in sent)


def _accounts(message: EmailMessage) -> list[str]:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return re.findall(r"^Account: Acme \((acc-\d+)\)", text, re.MULTILINE)


async def test_a_retry_of_a_halved_digest_sends_only_the_half_not_accepted(
    monkeypatch: pytest.MonkeyPatch, make_alert: Callable[..., Alert]
) -> None:
    """When the second half of a split digest fails, the retry splits the same way and sends only that half."""
    from alerts.channels.base import Notification

    notifier = EmailNotifier(EmailReceiver(to=("ops@example.com",)), Settings())
    alerts = tuple(make_alert(account_id=f"acc-{n}", alert_id=f"a{n}", playbook=LONG_PLAYBOOK) for n in range(100))
    sent: list[str] = []

    async def deliver(message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, str]]:
        if len(sent) == 1 and not retrying:
            raise RetryableDeliveryError("email: SMTP 451 try later")
        sent.append(str(message["Message-ID"]))
        return {}

    monkeypatch.setattr(notifier, "_deliver", deliver)
    notification = Notification(receiver="r", alerts=alerts, group_key="g")
    retrying = False
    with pytest.raises(RetryableDeliveryError):
        await notifier.send(notification)
    retrying = True
    receipt = await notifier.send(notification)
    assert len(sent) == len(set(sent)) == len(receipt.ref.split(",")) >= 2
    assert receipt.ref == ",".join(sent)


def test_a_single_alert_too_big_for_the_template_sandbox_keeps_the_logged_fallback(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """One alert whose HTML part cannot fit is not split further: the part falls back (empty), logged and counted."""
    notifier = make_notifier(to="ops@example.com")
    fallbacks = NOTIFIER_FALLBACKS.labels(reason="template_error")
    before = fallbacks._value.get()
    with capture_logs() as logs:
        [(alerts, message)] = list(notifier._messages((make_alert(playbook="<" * 300_000),), ["ops@example.com"], "g"))
    assert len(alerts) == 1
    assert message.get_body(("html",)).get_content().strip() == ""  # type: ignore[union-attr]
    assert [(e["event"], e["template"]) for e in logs] == [("template_failed", "email_html")]
    assert fallbacks._value.get() == before + 1


async def test_no_recipient_is_permanent(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """When no address renders (owner without email), sending fails permanently without a connection."""
    from alerts.channels.base import Notification

    notifier = make_notifier(to="{{ account.owner.email }}")
    alert = make_alert(account={"owner": {}})
    with pytest.raises(PermanentDeliveryError, match="no valid recipient"):
        await notifier.send(Notification(receiver="owner", alerts=(alert,), group_key="g"))


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (421, RetryableDeliveryError),
        (451, RetryableDeliveryError),
        (550, PermanentDeliveryError),
        (554, PermanentDeliveryError),
    ],
)
def test_classify_smtp(code: int, kind: type[Exception]) -> None:
    """4xx replies are retryable, 5xx permanent."""
    assert isinstance(classify_smtp(code, "DATA", "reason"), kind)


def test_digest_of_several_accounts_is_not_titled_with_the_first(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """A digest spanning accounts (a group by owner or team) says how many accounts it covers in the
    subject, instead of naming the first alert's account for all of them; one account keeps its name."""
    notifier = make_notifier(to="lead@example.com")
    acme = make_alert(severity="low")
    globex = make_alert(account_id="globex", severity="critical", account={"name": "Globex Çørp — 日本"})
    assert notifier.build((acme, globex, globex), ["lead@example.com"], "g")["Subject"] == (
        "[CRITICAL] 3 alerts for 2 accounts"
    )
    assert notifier.build((acme, acme), ["lead@example.com"], "g")["Subject"] == "[LOW] Acme: 2 alerts"


@pytest.mark.parametrize("sender", ["not an address", "Preempt", "a@example.com, b@example.com", ""])
def test_an_unusable_sender_is_refused_where_it_is_configured(sender: str) -> None:
    """A ``from`` that is not one email address is a load error of the routing file and of
    PREEMPT_SMTP_FROM, not a 5xx at the SMTP server that dead-letters every email."""
    with pytest.raises(ValueError, match="is not one email address"):
        EmailReceiver.model_validate({"to": "x@example.com", "from": sender})
    with pytest.raises(ValueError, match="is not one email address"):
        Settings(smtp_from=sender)
    assert EmailReceiver.model_validate({"to": "x@example.com", "from": "Preempt <p@example.com>"}).from_


def test_the_default_sender_is_valid() -> None:
    """The default PREEMPT_SMTP_FROM passes its own check."""
    assert Settings().smtp_from == "Preempt <preempt@localhost>"


def test_a_digest_lists_the_most_severe_alert_first(
    make_notifier: Callable[..., EmailNotifier], make_alert: Callable[..., Alert]
) -> None:
    """An email digest reads like the Slack digest: most severe first, then by priority; the subject's
    severity is the first alert's."""
    notifier = make_notifier(to="x@example.com")
    low = make_alert(severity="low", title="Acme: a low one")
    critical = make_alert(severity="critical", title="Acme: the critical one")
    high = make_alert(severity="high", priority=3, title="Acme: a high one")
    text = notifier.build((low, critical, high), ["x@example.com"], "g").get_body(("plain",)).get_content()
    assert (
        text.index("1. Acme: the critical one") < text.index("2. Acme: a high one") < text.index("3. Acme: a low one")
    )


async def test_an_accepted_digest_is_skipped_only_by_retries_within_the_give_up_window(
    monkeypatch: pytest.MonkeyPatch, make_alert: Callable[..., Alert]
) -> None:
    """A retry soon after skips a digest the server accepted; the same message after the give-up window
    (its delivery record expired, the alert arrived again) is sent again, as documented."""
    from alerts.channels import email as email_module
    from alerts.channels.base import Notification

    notifier = EmailNotifier(EmailReceiver(to=("ops@example.com",)), Settings(delivery_give_up_seconds=60))
    sent: list[str] = []

    async def deliver(message: object, recipients: list[str]) -> dict[str, tuple[int, str]]:
        sent.append(str(message["Message-ID"]))  # type: ignore[index]
        return {}

    clock = [1000.0]
    monkeypatch.setattr(notifier, "_deliver", deliver)
    monkeypatch.setattr(email_module, "_clock", lambda: clock[0])
    notification = Notification(receiver="r", alerts=(make_alert(),), group_key="g")
    await notifier.send(notification)
    clock[0] += 30
    await notifier.send(notification)
    assert len(sent) == 1
    clock[0] += 61
    await notifier.send(notification)
    assert len(sent) == 2


async def test_recipients_refused_for_now_get_the_message_on_the_retry_and_only_they(
    monkeypatch: pytest.MonkeyPatch, make_alert: Callable[..., Alert]
) -> None:
    """A server that takes a message for two recipients and refuses a third with a 4xx (greylisting): the
    send raises PartlyDeliveredError, the retry sends the same message to that recipient alone, and once it
    takes it the receipt is clean; a 5xx recipient among them is reported refused, never retried."""
    from alerts.channels.base import Notification, PartlyDeliveredError

    notifier = EmailNotifier(
        EmailReceiver(to=("ar@example.com", "cfo@example.com", "{{ account.owner.email }}", "gone@example.com")),
        Settings(),
    )
    answers = [
        {"cfo@example.com": (451, "4.7.1 greylisted"), "gone@example.com": (550, "5.1.1 no such user")},
        {},
    ]
    calls: list[tuple[str, list[str]]] = []

    async def deliver(message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, str]]:
        calls.append((str(message["Message-ID"]), recipients))
        return answers.pop(0)

    monkeypatch.setattr(notifier, "_deliver", deliver)
    alert = make_alert(account_id="wonka", account={"owner": {"email": "csm-wonka@example.com"}})
    notification = Notification(receiver="finance", alerts=(alert,), group_key="g")
    with pytest.raises(PartlyDeliveredError, match=r"1 recipient refused for now \(SMTP 451\)") as raised:
        await notifier.send(notification)
    assert dict(raised.value.receipt.refused)[alert.alert_id].startswith("email RCPT: 1 recipient refused for now")
    receipt = await notifier.send(notification)

    assert [recipients for _id, recipients in calls] == [
        ["ar@example.com", "cfo@example.com", "csm-wonka@example.com", "gone@example.com"],
        ["cfo@example.com"],
    ]
    assert calls[0][0] == calls[1][0]  # the same message (Message-ID), so mail clients thread it
    assert receipt.refused == (
        (alert.alert_id, "email RCPT: 1 of 4 recipients refused (SMTP 550); the others received it"),
    )
    await notifier.send(notification)
    assert len(calls) == 2  # every recipient settled: nothing is sent again


async def test_every_recipient_refused_is_retryable_with_a_4xx_and_permanent_with_only_5xx(
    monkeypatch: pytest.MonkeyPatch, make_alert: Callable[..., Alert]
) -> None:
    """A message nobody took: retried when a refusal was temporary, dead-lettered when all were 5xx."""
    from alerts.channels.base import Notification, PartlyDeliveredError

    notifier = EmailNotifier(EmailReceiver(to=("a@example.com", "b@example.com")), Settings())
    answers = [
        {"a@example.com": (550, "no"), "b@example.com": (451, "later")},
        {"a@example.com": (550, "no"), "b@example.com": (553, "no")},
    ]

    async def deliver(message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, str]]:
        return answers.pop(0)

    monkeypatch.setattr(notifier, "_deliver", deliver)
    notification = Notification(receiver="r", alerts=(make_alert(),), group_key="g")
    with pytest.raises(RetryableDeliveryError, match="every recipient refused") as raised:
        await notifier.send(notification)
    assert not isinstance(raised.value, PartlyDeliveredError)
    with pytest.raises(PermanentDeliveryError, match=r"every recipient refused \(SMTP 550, 553: no\)"):
        await notifier.send(notification)


async def test_every_recipient_refused_by_a_relay_denial_is_the_destination_failing(
    monkeypatch: pytest.MonkeyPatch, make_alert: Callable[..., Alert]
) -> None:
    """ "554 5.7.1 Relay access denied" to each recipient is the relay refusing this client: the destination
    failing (held, retried), not a dead letter; the same code with a recipient's reason is that recipient's,
    and the dead letter keeps the reason (its address left out)."""
    from alerts.channels.base import Notification
    from schemas.errors import DestinationFailingError

    notifier = EmailNotifier(EmailReceiver(to=("a@example.com", "b@example.com")), Settings())
    relay = (554, "5.7.1 <a@example.com>: Relay access denied")
    unknown = (550, "5.1.1 <a@example.com>: Recipient address rejected: User unknown")
    answers = [
        {"a@example.com": relay, "b@example.com": (554, "5.7.1 x")},
        {"a@example.com": relay, "b@example.com": relay},
        {"a@example.com": unknown, "b@example.com": unknown},
    ]

    async def deliver(message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, str]]:
        return answers.pop(0)

    monkeypatch.setattr(notifier, "_deliver", deliver)
    notification = Notification(receiver="r", alerts=(make_alert(),), group_key="g")
    with pytest.raises(PermanentDeliveryError):  # one of them refused for its own reason: not the relay's
        await notifier.send(notification)
    with pytest.raises(DestinationFailingError) as failing:
        await notifier.send(notification)
    assert "relay" in failing.value.fix
    with pytest.raises(PermanentDeliveryError) as refused:
        await notifier.send(notification)
    assert "5.1.1 Recipient address rejected: User unknown" in str(refused.value)
    assert "a@example.com" not in str(refused.value)


@pytest.mark.parametrize(
    ("code", "message", "fix"),
    [
        (535, "5.7.8 Authentication credentials invalid", "PREEMPT_SMTP_PASSWORD"),
        (530, "5.7.0 Authentication required", "PREEMPT_SMTP_USERNAME"),
        (530, "5.7.0 Must issue a STARTTLS command first", "PREEMPT_SMTP_STARTTLS=true"),
        (534, "5.7.9 Application-specific password required", "PREEMPT_SMTP_PASSWORD"),
        (538, "5.7.11 Encryption required for requested authentication mechanism", "PREEMPT_SMTP_USE_TLS=true"),
    ],
)
def test_session_refusals_are_the_destination_failing_not_the_alert(code: int, message: str, fix: str) -> None:
    """Authentication failed or required, TLS required: every message would fail alike, so the error is the
    destination's (retried), naming the server and what to fix."""
    from schemas.errors import DestinationFailingError

    error = classify_smtp(code, "Authentication", message, "smtp.example.com:587")
    assert isinstance(error, DestinationFailingError)
    assert error.destination == "SMTP server smtp.example.com:587"
    assert fix in error.fix
    assert f"SMTP {code}" in str(error)
    assert "smtp.example.com:587" in str(error)


async def test_recipients_are_recorded_in_the_ledger_only_when_the_email_is_not_delivered_to_all(
    monkeypatch: pytest.MonkeyPatch, make_alert: Callable[..., Alert]
) -> None:
    """An email every recipient took writes no recipient records (the target's own record stops a re-send, and
    one record per recipient per alert only grew the account's delivery-log value towards Kafka's record limit);
    one a recipient deferred records the recipients that took it, so a restart or a replay skips them."""
    from alerts.channels.base import Notification, PartlyDeliveredError
    from alerts.delivery_log import DeliveryLog, TargetLedger

    table: dict[bytes, object] = {}
    ledger = TargetLedger(DeliveryLog(table, 3600.0), "csm/email", lambda: 1000.0)
    answers = [{}, {"cfo@example.com": (451, "4.7.1 greylisted")}]

    async def deliver(message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, str]]:
        return answers.pop(0)

    def notifier() -> EmailNotifier:
        made = EmailNotifier(EmailReceiver(to=("ar@example.com", "cfo@example.com")), Settings())
        monkeypatch.setattr(made, "_deliver", deliver)
        return made

    whole = make_alert(account_id="acme", alert_id="a" * 32)
    await notifier().send(Notification("csm", (whole,), "g1", ledger=ledger))
    assert table == {}
    partial = make_alert(account_id="acme", alert_id="b" * 32)
    with pytest.raises(PartlyDeliveredError):
        await notifier().send(Notification("csm", (partial,), "g2", ledger=ledger))
    assert ledger.reached(partial, "ar@example.com")
    assert not ledger.reached(partial, "cfo@example.com")
    assert not ledger.reached(whole, "ar@example.com")


@pytest.mark.parametrize(
    ("code", "message", "stage", "scope"),
    [
        # the relay refuses this client: every message alike
        (554, "5.7.1 <csm@example.com>: Relay access denied", "RCPT", "relay"),  # Postfix
        (550, "5.7.1 Relaying denied", "RCPT", "relay"),  # sendmail
        (550, "5.7.54 SMTP; Unable to relay recipient in non-accepted domain", "RCPT", "relay"),  # Exchange
        (550, "5.7.64 TenantAttribution; Relay Access Denied", "RCPT", "relay"),  # Microsoft 365
        (554, "Relay access denied", "RCPT", "relay"),  # no enhanced code
        (550, "5.7.25 The sending IP has no PTR record", "DATA", "relay"),
        (530, "5.7.57 Client not authenticated to send mail", "MAIL", "relay"),
        (554, "5.7.8 Authentication credentials invalid", "MAIL", "relay"),
        (554, "5.7.1 Client host rejected: Access denied", "session", "relay"),  # the greeting or EHLO
        (521, "5.3.2 This host does not accept mail", "session", "relay"),
        # the sender: every message from it alike
        (553, "5.7.1 <preempt@localhost>: Sender address rejected: not owned by user", "MAIL", "sender"),
        (550, "5.1.8 Bad sender's system address", "MAIL", "sender"),
        (501, "5.1.7 Bad sender address syntax", "MAIL", "sender"),
        (550, "5.7.26 Unauthenticated email from example.com is not accepted (DMARC)", "DATA", "sender"),
        (550, "5.7.23 SPF validation failed", "RCPT", "sender"),
        (550, "Sender rejected", "MAIL", "sender"),  # any other MAIL refusal: every message has that sender
        # one message or one recipient: dead-lettered with its reason
        (550, "5.1.1 <nobody@example.com>: Recipient address rejected: User unknown", "RCPT", "message"),
        (552, "5.2.2 Mailbox full", "RCPT", "message"),
        (550, "5.7.1 Recipient refuses mail from this sender", "RCPT", "message"),  # per-recipient policy (RFC 3463)
        (554, "5.7.1 Message rejected as spam", "DATA", "message"),
        (550, "5.6.0 Content rejected", "DATA", "message"),
        (554, "Transaction failed", "DATA", "message"),
        (552, "5.3.4 Message size exceeds fixed limit", "MAIL", "message"),
        (555, "5.5.4 Unsupported option: SMTPUTF8", "MAIL", "message"),
        (553, "5.6.7 Non-ASCII addresses not permitted for that sender", "MAIL", "message"),
        (550, "Requested action not taken: mailbox unavailable", "RCPT", "message"),
        (
            550,
            "5.1.1 <x@example.com>: Recipient address rejected: User unknown in relay recipient table",
            "RCPT",
            "message",
        ),
        (550, "5.7.1 We do not relay for example.org", "RCPT", "relay"),
    ],
)
def test_smtp_refusals_are_about_the_destination_or_about_one_message(
    code: int, message: str, stage: str, scope: str
) -> None:
    """RFC 5321 replies with RFC 3463 enhanced codes: the stage and the code say whether every message would be
    refused alike (the relay, the login, the sender) or only this one (its recipient, its content)."""
    assert smtp_scope(code, message, stage) == scope


@pytest.mark.parametrize(
    ("code", "what", "message", "destination", "fix"),
    [
        (554, "RCPT", "5.7.1 Relay access denied", "SMTP server smtp.example.com:25", "relay"),
        (
            553,
            "SenderRefused",
            "5.7.1 Sender address rejected",
            "SMTP server smtp.example.com:25, sender alerts@example.com",
            "PREEMPT_SMTP_FROM",
        ),
        (554, "ConnectResponseError", "No SMTP service here", "SMTP server smtp.example.com:25", "PREEMPT_SMTP_HOST"),
    ],
)
def test_destination_wide_refusals_are_the_destination_failing(
    code: int, what: str, message: str, destination: str, fix: str
) -> None:
    """A relay refusal or a refused sender is retried as the destination failing (one ERROR per episode naming
    the server, and the sender when it is the sender's), not dead-lettered per alert."""
    from schemas.errors import DestinationFailingError

    error = classify_smtp(code, what, message, "smtp.example.com:25", "alerts@example.com")
    assert isinstance(error, DestinationFailingError)
    assert error.destination == destination
    assert fix in error.fix
    assert f"SMTP {code}" in str(error)


@pytest.mark.parametrize(
    ("code", "what", "message"),
    [(550, "RCPT", "5.1.1 User unknown"), (554, "DataError", "5.7.1 Message rejected as spam")],
)
def test_refusals_of_one_message_stay_permanent(code: int, what: str, message: str) -> None:
    """A bad address or a message refused for its content is that alert's: dead-lettered with its reason."""
    error = classify_smtp(code, what, message, "smtp.example.com:25", "alerts@example.com")
    assert isinstance(error, PermanentDeliveryError)
    assert message in str(error)


async def test_the_episodes_an_email_names_are_those_its_destination_errors_open(
    monkeypatch: pytest.MonkeyPatch, make_alert: Callable[..., Alert]
) -> None:
    """The relay's refusal opens the server's episode and a refused sender the server-and-sender one: the
    notifier names both as what a delivery of its proves working (``alerts/retry.py`` closes their breakers
    on it, also for a receiver whose own destination never failed)."""
    import aiosmtplib

    from alerts.channels.base import EpisodeAware, Notification
    from schemas.errors import DestinationFailingError

    notifier = EmailNotifier(EmailReceiver(to=("a@example.com",)), Settings(smtp_from="Preempt <p@example.com>"))
    assert isinstance(notifier, EpisodeAware)
    notification = Notification(receiver="r", alerts=(make_alert(),), group_key="g")
    relay = {"a@example.com": (554, "5.7.1 <a@example.com>: Relay access denied")}
    destinations = []

    async def refuse_relay(message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, str]]:
        return relay

    monkeypatch.setattr(notifier, "_deliver", refuse_relay)
    with pytest.raises(DestinationFailingError) as failing:
        await notifier.send(notification)
    destinations.append(failing.value.destination)

    async def refuse_sender(*args: object, **kwargs: object) -> None:
        raise aiosmtplib.SMTPSenderRefused(553, "5.7.1 Sender address rejected", "p@example.com")

    monkeypatch.undo()
    monkeypatch.setattr(aiosmtplib, "send", refuse_sender)
    with pytest.raises(DestinationFailingError) as failing:
        await notifier.send(notification)
    destinations.append(failing.value.destination)
    assert destinations[0] != destinations[1]
    assert notifier.episodes(notification) == tuple(destinations)
