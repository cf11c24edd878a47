"""The email channel (aiosmtplib): multipart/alternative, plain text first and then HTML.

Recipients are templates rendered per alert (``{{ account.owner.email }}``), so one notification for a
group becomes one digest per distinct set of alerts and recipients (of at most ``MAX_DIGEST_ALERTS``
alerts, and halved until each part fits the template sandbox's output limit). SMTP 4xx replies,
disconnects and timeouts raise ``RetryableDeliveryError``; 5xx replies about one message or recipient raise
``PermanentDeliveryError``, and those about the destination — the login, TLS, relaying for this client, the
sender address (``smtp_scope``) — ``DestinationFailingError`` (retried, the destination's breaker opens).
Message-IDs are derived from the group and its alerts, so a retried message threads with (and is
deduplicated against) the first attempt by mail clients; a retry of a notification whose first digests
went out before a later one failed sends only what was not accepted yet. A server that takes a message for
some recipients and refuses others *for now* (RCPT 4xx: greylisting, a full mailbox, too many recipients)
raises ``PartlyDeliveredError``: the retry sends that message to the refused recipients only, and if they
still refuse when the loop gives up, the alerts are dead-lettered for them (``recipients_refused``), as a
5xx refusal of some recipients is at once. The SMTP password never appears in errors or logs.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate, getaddresses

import aiosmtplib

from alerts.blocks import Note
from alerts.channels.base import DeliveryReceipt, Notification, PartlyDeliveredError
from alerts.formatting import account_name, short_title, without_bidi_controls
from alerts.routing.config import EmailReceiver
from alerts.templates import render, template_context
from schemas.alert import Alert
from schemas.errors import (
    DeliveryError,
    DestinationFailingError,
    NoRecipientError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from schemas.formatting import plural
from schemas.template_sandbox import TemplateLimitError
from streams.runtime.kafka_clients import ca_bundle_context
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings

log = get_logger(__name__)
MAX_SUBJECT = 250
MAX_DIGEST_ALERTS = 100
"""Alerts in one email at most; a bigger digest is sent as several emails. The default HTML part of about
1,500 alerts passes the template sandbox's 1,000,000 characters of output: it rendered empty, and mail
clients, which show the HTML part, showed a blank email for a group of alerts recorded as delivered. Playbooks
have no length bound, so 100 alerts can still pass it: such an email is halved again (see ``_messages``)."""
MAX_REMEMBERED = 10_000
_clock = time.monotonic  # how long ago a message was accepted (patched in tests)


DESTINATION_CODES = frozenset({530, 534, 535, 538})
"""SMTP replies about the session, not the message: authentication required (530) or failed (535), this login
refused (534), TLS required first (530 "Must issue a STARTTLS command first", 538). Every message fails the
same way until the settings or the server change: retried (``DestinationFailingError``), not dead-lettered."""


def _smtp_fix(code: int, message: str) -> str:
    if code == 535:
        return "authentication failed: check PREEMPT_SMTP_USERNAME and PREEMPT_SMTP_PASSWORD (a rotated password?)"
    if code == 538 or "tls" in message.lower():
        return (
            "the server requires TLS: set PREEMPT_SMTP_STARTTLS=true (port 587) or PREEMPT_SMTP_USE_TLS=true (port 465)"
        )
    if code == 534:
        return (
            "the server refuses this login (an app password or another mechanism?): "
            "check PREEMPT_SMTP_USERNAME and PREEMPT_SMTP_PASSWORD"
        )
    return "the server requires authentication: set PREEMPT_SMTP_USERNAME and PREEMPT_SMTP_PASSWORD"


_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_RELAY = re.compile(
    r"relay(?:ing)?\s+(?:access\s+)?(?:is\s+)?(?:denied|not\s+(?:permitted|allowed|authorized)|prohibited|refused|forbidden)"
    r"|(?:unable|not\s+(?:permitted|allowed|authorized))\s+to\s+relay|(?:do|does|will)\s+not\s+relay|\bno\s+relaying\b",
    re.IGNORECASE,
)
"""A reply saying the server will not relay for this client ("Relay access denied", "Relaying denied", "Unable to
relay"), not one that merely holds the word (Postfix's "User unknown in relay recipient table" is the address's)."""
AUTH_STATUS = frozenset({"7.8", "7.9", "7.11", "7.13", "7.14", "7.57"})
"""Enhanced codes (RFC 3463 ``class.subject.detail``; RFC 4954, the IANA registry, Microsoft 365's 5.7.57) about
the login whatever the reply code: credentials invalid (x.7.8), mechanism too weak (x.7.9), encryption required
for it (x.7.11), account disabled (x.7.13), trust relationship required (x.7.14), anonymous client not allowed
to send (5.7.57)."""
SENDER_STATUS = frozenset({"1.7", "1.8", "7.23", "7.26", "7.27"})
"""Enhanced codes about the sender address whatever the stage: its syntax (x.1.7) or domain (x.1.8) is bad, SPF
(x.7.23) or DMARC and the other sender-authentication checks (x.7.26) fail, its domain accepts no mail (x.7.27,
RFC 7505): every message from that sender fails alike."""
CLIENT_STATUS = frozenset({"7.25", "7.54", "7.64"})
"""Enhanced codes about this client, not the message: its reverse DNS fails (x.7.25, RFC 7372), it may not relay
(Microsoft 365's 5.7.54 "Unable to relay", 5.7.64 "Relay Access Denied")."""
MESSAGE_AT_MAIL = frozenset({"3.4", "5.4", "6.7"})
"""Enhanced codes a MAIL refusal gives about one message: too big for the server (x.3.4, also 552), its MAIL
parameters (x.5.4, also 555), a non-ASCII address the server cannot take (x.6.7)."""
STAGES = ("session", "MAIL", "RCPT", "DATA")


def smtp_stage(what: str) -> str:
    """The SMTP stage of a refusal, from the name the channel gives it (aiosmtplib's exception without
    ``SMTP``, or the command): ``MAIL``, ``RCPT``, ``DATA`` or ``session`` (greeting, EHLO, STARTTLS, AUTH)."""
    if what in ("MAIL", "SenderRefused"):
        return "MAIL"
    if what in ("RCPT", "RecipientRefused", "RecipientsRefused"):
        return "RCPT"
    if what in ("DATA", "DataError"):
        return "DATA"
    return "session"


def smtp_scope(code: int, message: str, stage: str) -> str:
    """Whether a 5xx SMTP refusal is about the destination — ``"relay"`` (the server refuses this client: its
    login, its address, relaying for it), ``"sender"`` (the sender address) — or ``"message"`` (this message or
    this recipient). The destination-wide ones refuse every message alike until someone changes the settings or
    the server (docs/notifier-operations.md, "SMTP refusals"):

    * authentication and TLS (``DESTINATION_CODES``, ``AUTH_STATUS``) at any stage → relay;
    * every refusal before MAIL (the greeting's 554 "no SMTP service", EHLO, STARTTLS) → relay;
    * a refusal naming relaying ("554 5.7.1 Relay access denied", "550 5.7.1 Relaying denied", "Unable to
      relay") or ``CLIENT_STATUS`` at any stage → relay (RFC 3463's 5.7.1 alone is "delivery not authorized":
      per-host *or per-recipient* filtering, so without "relay" at RCPT or DATA it is the recipient's or the
      message's);
    * ``SENDER_STATUS`` at any stage, and every MAIL refusal but those about one message (552, 555,
      ``MAIL_AT_MAIL``) → sender;
    * everything else at RCPT (5.1.x a bad address, 5.2.x its mailbox, 5.7.1 a recipient's policy, 550, 553) and
      at DATA (5.7.1 spam or content policy, 5.6.x content, 5.3.4 size, 554 transaction failed) → message.
    """
    found = _ENHANCED.match(message)
    status = f"{found.group(2)}.{found.group(3)}" if found else None
    if code in DESTINATION_CODES or status in AUTH_STATUS:
        return "relay"
    if stage == "session" or status in CLIENT_STATUS or _RELAY.search(message):
        return "relay"
    if status in SENDER_STATUS:
        return "sender"
    if stage == "MAIL" and code not in (552, 555) and status not in MESSAGE_AT_MAIL:
        return "sender"
    return "message"


def _scope_fix(scope: str, code: int, message: str, sender: str) -> str:
    if code in DESTINATION_CODES:
        return _smtp_fix(code, message)
    if scope == "sender":
        return (
            f"the server refuses the sender {sender or 'address'}: set PREEMPT_SMTP_FROM (or the receiver's `from`) "
            "to an address this server and login may send as (SPF/DMARC of its domain)"
        )
    found = _ENHANCED.match(message)
    if _RELAY.search(message) or (found and found.group(2) == "7"):
        return (
            "the server refuses to relay for this notifier: log in (PREEMPT_SMTP_USERNAME/PREEMPT_SMTP_PASSWORD) "
            "or have the relay permit this host, or use the relay meant for it (PREEMPT_SMTP_HOST/PREEMPT_SMTP_PORT)"
        )
    return "the server refuses this client: check PREEMPT_SMTP_HOST/PREEMPT_SMTP_PORT and the server's logs"


def smtp_episode(server: str, sender: str = "") -> str:
    """The failing-destination episode of an SMTP refusal: the server's (its login, TLS, relaying for this client),
    or, given ``sender``, the server's refusal of that sender (another receiver's ``from`` may be fine)."""
    where = f"SMTP server {server}" if server else "SMTP server"
    return f"{where}, sender {sender}" if sender else where


def classify_smtp(code: int, what: str, message: str = "", server: str = "", sender: str = "") -> DeliveryError:
    """4xx → retryable; a destination-wide refusal (``smtp_scope``: authentication, TLS, relaying, the sender) →
    the destination failing (retried, one ERROR per episode); every other 5xx → permanent (the one place that
    decides). A sender refusal is its own episode per sender (another receiver's ``from`` may be fine)."""
    detail = f"email {what}: SMTP {code} {' '.join(message.split())[:200]}".rstrip()
    if 400 <= code < 500:
        return RetryableDeliveryError(detail)
    scope = smtp_scope(code, message, smtp_stage(what))
    if scope == "message":
        return PermanentDeliveryError(detail)
    where = smtp_episode(server, sender if scope == "sender" else "")
    fix = _scope_fix(scope, code, message, sender)
    return DestinationFailingError(f"{detail} ({where}: {fix})", fix=fix, destination=where)


_SEVERITY_TAG = re.compile(r"\[[^\]]{1,20}\] ")


def _subject(rendered: str, name: str) -> str:
    """The subject on one line, at most ``MAX_SUBJECT`` characters: a long account name is shortened
    before the title (``[HIGH] Very Long Account… : sync failed``), and a cut is marked with ``…``."""
    line = " ".join(rendered.split())
    name = re.sub(r"\s+", " ", without_bidi_controls(name))  # as the rendered subject shows it
    tag = _SEVERITY_TAG.match(line)
    head = tag.group() if tag else ""
    return head + short_title(line[len(head) :], name, MAX_SUBJECT - len(head))


Refusals = dict[str, tuple[int, str]]
"""Recipients a server refused at RCPT: address → (SMTP code, its message)."""


@dataclass(slots=True)
class _SentMessage:
    """What became of one message (by Message-ID) on its recipients so far."""

    first: float  # when the server first took it for someone (monotonic)
    delivered: set[str] = field(default_factory=set)
    refused: Refusals = field(default_factory=dict)  # refused for good (5xx)
    deferred: Refusals = field(default_factory=dict)  # refused for now (4xx) at the last attempt

    def settled(self, address: str) -> bool:
        return address in self.delivered or address in self.refused


def _codes(refusals: Refusals) -> str:
    return ", ".join(str(c) for c in sorted({code for code, _ in refusals.values()}))


def _reply_text(refusals: Refusals) -> str:
    """The first refusal's words, its addresses left out (the reason, for the dead letter's ``error``)."""
    _code, text = next(iter(refusals.values()))
    return " ".join(re.sub(r"<[^<>]*>:?\s*", "", text).split())[:200]


def _addresses(rendered: str) -> list[str]:
    found = []
    for _name, addr in getaddresses([rendered.replace(";", ",")]):
        addr = addr.strip()
        if addr and "@" in addr and not any(c in addr for c in "\r\n <>"):
            found.append(addr)
    return found


class EmailNotifier:
    """One ``email_configs`` entry of a receiver."""

    receiver_type = "email"

    def __init__(self, config: EmailReceiver, settings: Settings, *, receiver: str = "", timeout_s: float = 15.0):
        if settings.smtp_ca_file is not None:
            # A CA file that is not PEM failed every TLS connection, retried for an hour: refused at start.
            ca_bundle_context("PREEMPT_SMTP_CA_FILE", settings.smtp_ca_file)
        self._config = config
        self._settings = settings
        self._receiver = receiver
        self._timeout = timeout_s
        # One notification can be several digests: Message-ID of each one the server took for some recipient
        # (oldest first, bounded) → who got it and who refused it.
        self._accepted: OrderedDict[str, _SentMessage] = OrderedDict()

    def recipients(self, alert: Alert) -> list[str]:
        """The addresses this alert goes to: every ``to`` template rendered for it, deduplicated."""
        context = template_context((alert,))
        found: list[str] = []
        for template in self._config.to:
            for addr in _addresses(render("email_to", context, template)):
                if addr not in found:
                    found.append(addr)
        return found

    def partition(self, alerts: tuple[Alert, ...]) -> list[tuple[Alert, ...]]:
        """The alerts that have some recipient, then those none of whose ``to`` templates renders a valid
        address (an account without an owner email) as a part of their own: that part is dead-lettered
        ("no valid recipient") instead of riding along, unsent, in a digest recorded as delivered."""
        if len(alerts) < 2:
            return [alerts]
        reachable: list[Alert] = []
        unreachable: list[Alert] = []
        for alert in alerts:
            (reachable if self.recipients(alert) else unreachable).append(alert)
        return [tuple(part) for part in (reachable, unreachable) if part]

    def _digests(self, alerts: Iterable[Alert]) -> list[tuple[tuple[Alert, ...], list[str]]]:
        per_recipient: dict[str, list[Alert]] = {}
        for alert in alerts:
            for addr in self.recipients(alert):
                per_recipient.setdefault(addr, []).append(alert)
        # Recipients that get the same alerts share one message (of at most MAX_DIGEST_ALERTS alerts).
        by_alerts: dict[tuple[str, ...], tuple[tuple[Alert, ...], list[str]]] = {}
        for addr, mine in per_recipient.items():
            key = tuple(a.alert_id for a in mine)
            by_alerts.setdefault(key, (tuple(mine), []))[1].append(addr)
        return [
            (alerts[start : start + MAX_DIGEST_ALERTS], recipients)
            for alerts, recipients in by_alerts.values()
            for start in range(0, len(alerts), MAX_DIGEST_ALERTS)
        ]

    def build(
        self, alerts: tuple[Alert, ...], recipients: list[str], group_key: str, *, divisible: bool = False
    ) -> EmailMessage:
        """The multipart/alternative message (text part first, then HTML) for these alerts. With ``divisible``,
        a part whose default template passes a sandbox limit raises ``TemplateLimitError`` (the caller sends
        fewer alerts per email) instead of rendering empty."""
        context = template_context(alerts)
        subject = _subject(render("email_subject", context, self._config.subject), account_name(context["alert"]))
        msg = EmailMessage()
        msg["Subject"] = subject or f"[{context['severity'].upper()}] Preempt alert"
        msg["From"] = self._config.from_ or self._settings.smtp_from
        msg["To"] = ", ".join(recipients)
        msg["Date"] = formatdate(usegmt=True)
        identity = "\n".join([group_key, *sorted(a.alert_id for a in alerts), *sorted(recipients)])
        msg["Message-ID"] = f"<{hashlib.sha256(identity.encode()).hexdigest()[:32]}@preempt>"
        msg.set_content(render("email_text", context, self._config.text, divisible=divisible))
        html = render("email_html", context, self._config.html, html=True, divisible=divisible)
        msg.add_alternative(html, subtype="html")
        return msg

    def _messages(
        self, alerts: tuple[Alert, ...], recipients: list[str], group_key: str
    ) -> Iterator[tuple[tuple[Alert, ...], EmailMessage]]:
        """The emails of one digest, each with its alerts: one email, or, when a part does not fit the
        template sandbox (long playbooks), the two halves, each split again if need be, down to a single
        alert (whose part then falls back as any failing template does: logged and counted). Rendering
        depends only on the alerts, so a retry splits the same way and finds the same Message-IDs."""
        try:
            message = self.build(alerts, recipients, group_key, divisible=len(alerts) > 1)
        except TemplateLimitError:
            half = len(alerts) // 2
            yield from self._messages(alerts[:half], recipients, group_key)
            yield from self._messages(alerts[half:], recipients, group_key)
            return
        yield alerts, message

    def destination(self, notification: Notification) -> str:
        """The SMTP server every message goes to, and the sender it sends as: the key of its attempts' slots and
        breaker in the delivery loop (a server refusing one receiver's ``from`` holds back only that sender's)."""
        return f"{self._server()} from {self._sender()}"

    def episodes(self, notification: Notification) -> tuple[str, ...]:
        """The server's episode (shared by every sender: its login, TLS, relaying) and this sender's: a message
        the server takes proves both work, also for a receiver whose own key was never seen failing."""
        return smtp_episode(self._server()), smtp_episode(self._server(), self._sender())

    def _server(self) -> str:
        return f"{self._settings.smtp_host}:{self._settings.smtp_port}"

    def _sender(self) -> str:
        """The envelope sender (MAIL FROM): the address of the ``From`` this receiver's emails carry."""
        found = getaddresses([self._config.from_ or self._settings.smtp_from])
        return found[0][1] if found and found[0][1] else "(no sender)"

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Send one digest per distinct recipient set; the receipt's ref lists the Message-IDs."""
        digests = self._digests(notification.alerts)
        if not digests:
            raise NoRecipientError(f"email receiver {notification.receiver!r}: no valid recipient rendered")
        ids = []
        refused: list[tuple[str, str]] = []
        deferred: list[tuple[tuple[Alert, ...], _SentMessage]] = []
        ledger = notification.ledger
        # The recipients each message reached, written to the delivery log only when the notification does not
        # end delivered to all (a recipient refused or deferred, or a later message failing): a complete one is
        # recorded as delivered to the target, which stops every re-send, and a record per recipient per alert
        # would only grow the account's delivery-log value towards Kafka's record size limit.
        reached: list[tuple[tuple[Alert, ...], list[str], str]] = []
        complete = False
        try:
            for digest, recipients in digests:
                for alerts, message in self._messages(digest, recipients, notification.group_key):
                    message_id = str(message["Message-ID"])
                    # A retry after a later digest failed must not send the earlier ones again: their Message-IDs
                    # (derived from group, alerts and recipients) were accepted already; nor a message again to
                    # the recipients that took it when others refused it for now.
                    # The delivery log's record of each recipient (ledger) does the same across a restart and
                    # for a replayed dead letter: a recipient that has every alert of it is skipped.
                    sent = self._accepted_recently(message_id)
                    pending = [
                        r
                        for r in recipients
                        if (sent is None or not sent.settled(r))
                        and not (ledger is not None and all(ledger.reached(a, r) for a in alerts))
                    ]
                    if pending:
                        refusals = await self._deliver(message, pending)
                        sent = self._record(message_id, sent, pending, refusals)
                        reached.append((alerts, [r for r in pending if r not in refusals], message_id))
                    if sent is not None:
                        if sent.refused:
                            refused += [(a.alert_id, self._refused_detail(sent, len(recipients))) for a in alerts]
                        if sent.deferred:
                            deferred.append((alerts, sent))
                    ids.append(message_id)
            complete = not refused and not deferred
        finally:
            if ledger is not None and not complete:
                for alerts, addresses, message_id in reached:
                    ledger.record(alerts, addresses, message_id)
        receipt = DeliveryReceipt(receiver=notification.receiver, ref=",".join(ids), refused=tuple(refused))
        if deferred:
            raise self._partly_delivered(receipt, deferred)
        return receipt

    def _record(
        self, message_id: str, sent: _SentMessage | None, pending: list[str], refusals: Refusals
    ) -> _SentMessage:
        """Remember what the server did with ``pending``; raise when nobody has the message yet and nobody took it."""
        taken = [r for r in pending if r not in refusals]
        if sent is None and not taken:
            # Nobody has it: a plain failure, retried (some refused for now) or dead-lettered (all for good).
            detail = f"email RCPT: every recipient refused (SMTP {_codes(refusals)}: {_reply_text(refusals)})"
            codes = {code for code, _ in refusals.values()}
            if all(code >= 500 and smtp_scope(code, text, "RCPT") != "message" for code, text in refusals.values()):
                # "530 authentication required" or "554 5.7.1 Relay access denied" to every recipient: the
                # session or the relay, not the addresses
                code, message = next(iter(refusals.values()))
                raise classify_smtp(code, "RCPT", message, self._server(), self._sender())
            if any(400 <= code < 500 for code in codes):
                raise RetryableDeliveryError(detail)
            raise PermanentDeliveryError(detail)
        if sent is None:
            sent = _SentMessage(first=_clock())
        sent.delivered.update(taken)
        sent.deferred = {r: v for r, v in refusals.items() if 400 <= v[0] < 500}
        sent.refused.update({r: v for r, v in refusals.items() if r not in sent.deferred})
        if refusals:
            log.warning(
                "email_recipients_refused",
                receiver=self._receiver,
                refused=len(refusals),
                codes=sorted({code for code, _ in refusals.values()}),
                retried=len(sent.deferred),
            )
        self._accepted[message_id] = sent
        self._accepted.move_to_end(message_id)
        while len(self._accepted) > MAX_REMEMBERED:
            self._accepted.popitem(last=False)
        return sent

    @staticmethod
    def _refused_detail(sent: _SentMessage, recipients: int) -> str:
        return (
            f"email RCPT: {len(sent.refused)} of {recipients} recipients refused "
            f"(SMTP {_codes(sent.refused)}); the others received it"
        )

    @staticmethod
    def _partly_delivered(
        receipt: DeliveryReceipt, deferred: list[tuple[tuple[Alert, ...], _SentMessage]]
    ) -> PartlyDeliveredError:
        """The retryable error of messages some recipients took and others refused for now: retried for
        those only; if the loop gives up, ``receipt`` with the alerts refused to them is what was delivered."""
        waiting = {r: v for _alerts, sent in deferred for r, v in sent.deferred.items()}
        detail = (
            f"email RCPT: {plural(len(waiting), 'recipient')} refused for now (SMTP {_codes(waiting)}); "
            "the others received it"
        )
        given_up = [
            (a.alert_id, f"{detail}; retried until the give-up window") for alerts, _ in deferred for a in alerts
        ]
        return PartlyDeliveredError(detail, receipt=replace(receipt, refused=receipt.refused + tuple(given_up)))

    def _accepted_recently(self, message_id: str) -> _SentMessage | None:
        # Only a retry of the same notification may skip it: retries end with the give-up window, and
        # the same alert arriving again after its delivery record expired is sent again (as documented).
        entry = self._accepted.get(message_id)
        if entry is None or _clock() - entry.first > self._settings.delivery_give_up_seconds:
            return None
        return entry

    async def update(
        self,
        ref: str | None,
        alerts: tuple[Alert, ...],
        notes: Mapping[str, Note | str],
        response_url: str | None = None,
    ) -> None:
        """An email cannot be edited: nothing to do."""

    async def aclose(self) -> None:
        """Connections are per send: nothing to release."""

    async def _deliver(self, message: EmailMessage, recipients: list[str]) -> Refusals:
        """Send ``message`` to ``recipients``; returns the ones the server refused at RCPT (all of them, when it
        took the message for nobody). Any other failure raises."""
        s = self._settings
        try:
            refused, _reply = await aiosmtplib.send(
                message,
                recipients=recipients,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password is not None else None,
                use_tls=s.smtp_use_tls,
                start_tls=False if s.smtp_use_tls else s.smtp_starttls,
                timeout=self._timeout,
                cert_bundle=str(s.smtp_ca_file) if s.smtp_ca_file is not None else None,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return {r.recipient: (r.code, r.message) for r in exc.recipients}
        except aiosmtplib.SMTPResponseException as exc:
            what = type(exc).__name__.removeprefix("SMTP")
            raise classify_smtp(exc.code, what, exc.message, self._server(), self._sender()) from None
        except aiosmtplib.SMTPNotSupported as exc:
            # STARTTLS or AUTH configured and not offered: every message would fail alike until the settings
            # or the server change, so the destination fails (retried), not each alert.
            fix = "check PREEMPT_SMTP_STARTTLS, PREEMPT_SMTP_USE_TLS, PREEMPT_SMTP_PORT and the login settings"
            raise DestinationFailingError(
                f"email: SMTP server {self._server()} does not support what is configured ({exc}): {fix}",
                fix=fix,
                destination=smtp_episode(self._server()),
            ) from None
        except aiosmtplib.SMTPException as exc:
            # aiosmtplib's own words say what is wrong ("SMTP STARTTLS extension not supported by server",
            # "Connection lost"); they never hold the password. Retried, as Alertmanager does.
            reason = " ".join(str(exc).split())[:200]
            raise RetryableDeliveryError(
                f"email: {type(exc).__name__} talking to {s.smtp_host}:{s.smtp_port}"
                + (f": {reason}" if reason else "")
            ) from None
        except (OSError, TimeoutError) as exc:
            raise RetryableDeliveryError(
                f"email: {type(exc).__name__} talking to {s.smtp_host}:{s.smtp_port}"
            ) from None
        # Some recipients got it, some did not: resending to all would duplicate it for the others, so the
        # refused ones are returned (retried alone when they refused for now, dead-lettered otherwise).
        return {address: (response.code, response.message) for address, response in refused.items()}
