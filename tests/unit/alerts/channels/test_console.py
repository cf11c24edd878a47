"""Console channel: a readable preview."""

from __future__ import annotations

import io
from collections.abc import Callable

from alerts.channels.base import Notification, Notifier
from alerts.channels.console import ConsoleNotifier
from schemas.alert import Alert


async def test_preview_shows_alert_and_receiver(make_alert: Callable[..., Alert]) -> None:
    """The preview names the receiver, severity, title, evidence sentence, account, owner and playbook (no Markdown)."""
    out = io.StringIO()
    notifier = ConsoleNotifier(stream=out)
    receipt = await notifier.send(Notification(receiver="console", alerts=(make_alert(),), group_key="g"))
    text = out.getvalue()
    assert receipt.receiver == "console"
    assert "preempt → console" in text
    assert "[HIGH] Acme: API errors are spiking" in text
    assert "why:      37 matching events, at or above the threshold of 20" in text
    assert "account:  Acme (acme), enterprise, $12,500 MRR" in text
    assert "owner:    Jane Doe (account owner)" in text
    assert "fired:    Mon 23 Nov 2026, 07:10 CET" in text  # in the account's timezone (Europe/Paris)
    assert "playbook: Call the admin within the hour" in text
    assert "**" not in text


async def test_digest_preview_counts_alerts(make_alert: Callable[..., Alert]) -> None:
    """A group preview says how many alerts it holds and lists each."""
    out = io.StringIO()
    alerts = (make_alert(title="one"), make_alert(title="two"))
    await ConsoleNotifier(stream=out).send(Notification(receiver="c", alerts=alerts, group_key="g"))
    assert "(2 alerts)" in out.getvalue()
    assert "] one" in out.getvalue()
    assert "] two" in out.getvalue()


def test_console_notifier_satisfies_protocol() -> None:
    """ConsoleNotifier is a Notifier."""
    assert isinstance(ConsoleNotifier(), Notifier)
