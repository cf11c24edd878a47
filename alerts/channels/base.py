"""What every channel implements: ``Notifier.send`` a ``Notification``, get a ``DeliveryReceipt``.

The notifier app's worker loop calls ``send`` once per (group, receiver) and owns every retry: a
channel raises ``RetryableDeliveryError(retry_after=…)`` or ``PermanentDeliveryError`` and never
sleeps or retries by itself. Errors never carry secrets (webhook URLs, tokens, passwords).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from alerts.blocks import Note
from schemas.alert import Alert
from schemas.errors import RetryableDeliveryError


@dataclass(frozen=True)
class Notification:
    """One message to one receiver: a single alert, or a group of alerts sent as one digest."""

    receiver: str
    alerts: tuple[Alert, ...]
    group_key: str


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
    ) -> None:
        """Edit an earlier message of ``alerts`` (Slack: ``chat.update`` of ``ref``, else the button press's
        ``response_url``): ``notes`` maps an alert id to the line that replaces its buttons ("Acknowledged
        by …"); others do nothing."""
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
