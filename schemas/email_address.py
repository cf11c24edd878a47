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


def recipient_addresses(value: str) -> str:
    """``value`` when it is one or more addresses separated by commas or semicolons, each a mailbox.

    Raises ``ValueError`` otherwise: a fixed recipient that is no address would dead-letter every email
    sent to it instead of failing at start.
    """
    found = getaddresses([value.replace(";", ",")])
    if not found or any("@" not in addr or any(c in addr for c in " <>\r\n") for _name, addr in found):
        raise ValueError(
            f"{value!r} is not an email address (or a comma-separated list of them); "
            "write e.g. 'ops@example.com' or a template such as '{{ account.owner.email }}'"
        )
    return value
