"""The sender of the notifier's email: one address, checked where it is configured."""

from __future__ import annotations

from email.utils import getaddresses


def sender_address(value: str) -> str:
    """``value`` when it is one mailbox (``preempt@example.com`` or ``Preempt <preempt@example.com>``).

    Raises ``ValueError`` otherwise: an unusable sender would make every email fail at the SMTP
    server (a 5xx, so every alert dead-lettered) instead of at start.
    """
    found = getaddresses([value])
    if len(found) != 1 or "@" not in found[0][1] or any(c in found[0][1] for c in " <>\r\n"):
        raise ValueError(f"{value!r} is not one email address; write e.g. 'Preempt <preempt@example.com>'")
    return value
