"""What every channel implements: ``Notifier.send`` a ``Notification``, get a ``DeliveryReceipt``.

The notifier app's worker loop calls ``send`` once per (group, receiver) and owns every retry: a
channel raises ``RetryableDeliveryError(retry_after=…)`` or ``PermanentDeliveryError`` and never
sleeps or retries by itself. Errors never carry secrets (webhook URLs, tokens, passwords).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from alerts.blocks import Note
from schemas.alert import Alert
from schemas.errors import RetryableDeliveryError


class RecipientLedger(Protocol):
    """Which recipients of one delivery target already have an alert, kept in the delivery log
    (``alerts.delivery_log.TargetLedger``): a channel with several recipients per alert (email) sends a retry,
    a replay or a re-read after a restart only to the recipients not recorded, and records each it reached."""

    def reached(self, alert: Alert, address: str) -> bool:
        """True when ``address`` is recorded as having ``alert`` at this target."""
        ...

    def record(self, alerts: tuple[Alert, ...], addresses: Iterable[str], ref: str | None) -> None:
        """Record that ``addresses`` took the message ``ref`` holding ``alerts``."""
        ...


@dataclass(frozen=True)
class Notification:
    """One message to one receiver: a single alert, or a group of alerts sent as one digest.

    ``ledger``: where the channel looks up and records the recipients already reached (None: not kept)."""

    receiver: str
    alerts: tuple[Alert, ...]
    group_key: str
    ledger: RecipientLedger | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DeliveryReceipt:
    """Proof of delivery: the receiver and the channel's reference (Slack ``channel:ts``, email Message-ID).

    ``refused`` lists (alert id, why) for alerts that reached some of their recipients but not all (an
    SMTP server refusing one address of several): delivered, and dead-lettered for the ones left out.
    """

    receiver: str
    ref: str | None
    refused: tuple[tuple[str, str], ...] = ()


class PartlyDeliveredError(RetryableDeliveryError):
    """Some recipients took the message and others refused it for now (SMTP RCPT 4xx): the retry goes to
    those only. ``receipt`` is what the delivery loop records if it gives up on them: delivered, with its
    ``refused`` naming the alerts they did not get (dead-lettered as ``recipients_refused``, not
    ``gave_up``: a replay would send the message again to the recipients who have it)."""

    def __init__(self, message: str, *, receipt: DeliveryReceipt) -> None:
        super().__init__(message)
        self.receipt = receipt


@runtime_checkable
class Notifier(Protocol):
    """One destination of a receiver (a Slack channel or webhook, an email config, the console)."""

    receiver_type: str  # "slack" | "email" | "console" — the metric label

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Deliver now or raise ``RetryableDeliveryError`` / ``PermanentDeliveryError``."""
        ...

    async def update(
        self,
        ref: str | None,
        alerts: tuple[Alert, ...],
        notes: Mapping[str, Note | str],
        response_url: str | None = None,
    ) -> bool | None:
        """Edit an earlier message of ``alerts`` (Slack: ``chat.update`` of ``ref``, else the button press's
        ``response_url``): ``notes`` maps an alert id to the line that replaces its buttons ("Acknowledged
        by …"); others do nothing. False: nothing to edit it with (logged)."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once at shutdown."""
        ...


@runtime_checkable
class PartitionedNotifier(Protocol):
    """A destination whose address is a template rendered per alert (a Slack ``channel`` such as
    ``{{ account.owner.slack }}``): the dispatcher asks it to split a group into one notification per
    address, so that a group spanning several owners reaches each owner with their own alerts only."""

    def partition(self, alerts: tuple[Alert, ...]) -> list[tuple[Alert, ...]]:
        """``alerts`` split by destination, in order; each part is sent (and retried) on its own."""
        ...


@runtime_checkable
class DestinationAware(Protocol):
    """A channel that says where a notification's attempt goes (a webhook URL, a Slack channel, an SMTP
    server), so that the delivery loop bounds attempts in flight per destination: one that hangs holds
    back its own deliveries only (``alerts/retry.py``)."""

    receiver_type: str

    def destination(self, notification: Notification) -> str:
        """A key naming the destination of ``notification`` (never a secret: hash one)."""
        ...


@runtime_checkable
class EpisodeAware(Protocol):
    """A channel whose destinations share what can fail for every message (the Slack bot token of every channel,
    the SMTP server of every sender): it names those failing-destination episodes (the ``destination`` of its
    ``DestinationFailingError``), so that a delivery through them closes their breaker in the delivery loop
    (``alerts/retry.py``) even when its own destination was never seen failing."""

    def episodes(self, notification: Notification) -> tuple[str, ...]:
        """The episode names a delivery of ``notification`` proves working (never a secret)."""
        ...
