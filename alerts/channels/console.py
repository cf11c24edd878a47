"""The console channel: a readable preview on stdout — the demo's default receiver, no credentials needed."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from alerts.blocks import Note
from alerts.channels.base import DeliveryReceipt, Notification
from alerts.routing.config import ConsoleReceiver
from alerts.templates import render, template_context
from schemas.alert import Alert

_RULE = "─" * 72


class ConsoleNotifier:
    """Writes each notification to a text stream (stdout by default)."""

    receiver_type = "console"

    def __init__(self, config: ConsoleReceiver | None = None, stream: TextIO | None = None) -> None:
        self._config = config or ConsoleReceiver()
        self._stream = stream

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text)
        stream.flush()

    def format(self, notification: Notification) -> str:
        """The text ``send`` writes: a header line with the receiver and group size, then the rendered alerts."""
        count = len(notification.alerts)
        body = render("console_text", template_context(notification.alerts), self._config.text)
        heading = f"preempt → {notification.receiver}" + (f" ({count} alerts)" if count > 1 else "")
        return f"{_RULE}\n{heading}\n{body.rstrip()}\n{_RULE}\n"

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Print the preview (``format``) to the stream."""
        self._write(self.format(notification))
        return DeliveryReceipt(receiver=notification.receiver, ref=None)

    async def update(
        self,
        ref: str | None,
        alerts: tuple[Alert, ...],
        notes: Mapping[str, Note | str],
        response_url: str | None = None,
    ) -> None:
        """Print the notes (a console message cannot be edited)."""
        for note in notes.values():
            self._write(f"preempt update: {note}\n")

    async def aclose(self) -> None:
        """Nothing to release."""
