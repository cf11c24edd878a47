"""The email channel (aiosmtplib): multipart/alternative, plain text first and then HTML.

Recipients are templates rendered per alert (``{{ account.owner.email }}``), so one notification for a
group becomes one digest per distinct set of alerts and recipients (of at most ``MAX_DIGEST_ALERTS``
alerts, and halved until each part fits the template sandbox's output limit). SMTP 4xx replies,
disconnects and timeouts raise ``RetryableDeliveryError``; 5xx replies raise ``PermanentDeliveryError``.
Message-IDs are derived from the group and its alerts, so a retried message threads with (and is
deduplicated against) the first attempt by mail clients; a retry of a notification whose first digests
went out before a later one failed sends only what was not accepted yet. The SMTP password never appears
in errors or logs.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from email.message import EmailMessage
from email.utils import formatdate, getaddresses

import aiosmtplib

from alerts.blocks import Note
from alerts.channels.base import DeliveryReceipt, Notification
from alerts.routing.config import EmailReceiver
from alerts.templates import render, template_context
from schemas.alert import Alert
from schemas.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
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


def classify_smtp(code: int, what: str, message: str = "") -> DeliveryError:
    """4xx → retryable, everything else → permanent (the one place that decides)."""
    detail = f"email {what}: SMTP {code} {message.strip()[:200]}".rstrip()
    return RetryableDeliveryError(detail) if 400 <= code < 500 else PermanentDeliveryError(detail)


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
        # One notification can be several digests: Message-ID of each one the server accepted (oldest first,
        # bounded) → (what it refused of its recipients, None when nothing; when, monotonic).
        self._accepted: OrderedDict[str, tuple[str | None, float]] = OrderedDict()

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
        subject = " ".join(render("email_subject", context, self._config.subject).split())[:MAX_SUBJECT]
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
        """The SMTP server every message goes to: the key of its attempts' slots in the delivery loop."""
        return f"{self._settings.smtp_host}:{self._settings.smtp_port}"

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Send one digest per distinct recipient set; the receipt's ref lists the Message-IDs."""
        digests = self._digests(notification.alerts)
        if not digests:
            raise PermanentDeliveryError(f"email receiver {notification.receiver!r}: no valid recipient rendered")
        ids = []
        refused: list[tuple[str, str]] = []
        for digest, recipients in digests:
            for alerts, message in self._messages(digest, recipients, notification.group_key):
                message_id = str(message["Message-ID"])
                if not self._accepted_recently(message_id):
                    # A retry after a later digest failed must not send the earlier ones again: their
                    # Message-IDs (derived from group, alerts and recipients) were accepted already.
                    self._remember(message_id, await self._deliver(message, recipients))
                detail = self._accepted[message_id][0]
                if detail is not None:
                    refused += [(a.alert_id, detail) for a in alerts]
                ids.append(message_id)
        return DeliveryReceipt(receiver=notification.receiver, ref=",".join(ids), refused=tuple(refused))

    def _remember(self, message_id: str, refused: str | None) -> None:
        self._accepted[message_id] = (refused, _clock())
        self._accepted.move_to_end(message_id)
        while len(self._accepted) > MAX_REMEMBERED:
            self._accepted.popitem(last=False)

    def _accepted_recently(self, message_id: str) -> bool:
        # Only a retry of the same notification may skip it: retries end with the give-up window, and
        # the same alert arriving again after its delivery record expired is sent again (as documented).
        entry = self._accepted.get(message_id)
        return entry is not None and _clock() - entry[1] <= self._settings.delivery_give_up_seconds

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

    async def _deliver(self, message: EmailMessage, recipients: list[str]) -> str | None:
        """Send ``message``; None when every recipient took it, else what was refused (the rest got it)."""
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
            codes = [r.code for r in exc.recipients]
            retry = any(400 <= c < 500 for c in codes)
            detail = f"email RCPT: every recipient refused (SMTP {', '.join(str(c) for c in sorted(set(codes)))})"
            raise (RetryableDeliveryError(detail) if retry else PermanentDeliveryError(detail)) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise classify_smtp(exc.code, type(exc).__name__.removeprefix("SMTP"), exc.message) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise PermanentDeliveryError(f"email: server does not support what is configured ({exc})") from None
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
        if not refused:
            return None
        # Some recipients got it, some did not: resending would duplicate it for the others, so the
        # refused ones are reported (the dispatcher dead-letters those alerts with this detail).
        codes = sorted({r.code for r in refused.values()})
        log.warning("email_recipients_refused", receiver=self._receiver, refused=len(refused), codes=codes)
        return (
            f"email RCPT: {len(refused)} of {len(recipients)} recipients refused "
            f"(SMTP {', '.join(str(c) for c in codes)}); the others received it"
        )
