"""The ``preempt-replay`` header: an alert produced again from the dead letters, and for which targets.

``preempt alerts dead-letters --replay`` (``alerts/cli/dead_letters.py``) sets it on every alert it
puts back on ``preempt.alerts``; the notifier (``alerts/runtime.py`` → ``Dispatcher.on_alert``) reads
it. Its value is a JSON array of the delivery targets (``receiver/channel``) the alert was
dead-lettered for. A replayed alert goes to those targets only — not routed again to the receivers
that had it, or were silenced or inhibited when it first came — still checked against the delivery
log. An empty array stands for a letter that named no target (it failed before routing, e.g.
``routing_error``): that alert is routed as new. A replayed alert is never an active source for
``inhibit_rules`` and is not observed in ``preempt_notification_latency_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

REPLAY_HEADER = "preempt-replay"

HeaderPairs = Mapping[str, bytes | None] | Iterable[tuple[str, bytes | None]] | None


class InvalidReplayHeaderError(ValueError):
    """The ``preempt-replay`` header is not a JSON array of target names."""


def replay_header(targets: Iterable[str]) -> tuple[str, bytes]:
    """The header for an alert replayed to ``targets`` (none: route it as new)."""
    return REPLAY_HEADER, orjson.dumps(sorted(set(targets)))


def replay_targets(headers: HeaderPairs) -> tuple[str, ...] | None:
    """The targets a record's ``preempt-replay`` header names; None when the record is not a replay.

    Raises ``InvalidReplayHeaderError`` for a value that is not a JSON array of strings.
    """
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in pairs:
        if name != REPLAY_HEADER:
            continue
        try:
            targets = orjson.loads(value or b"")
        except orjson.JSONDecodeError as exc:
            raise InvalidReplayHeaderError(f"{REPLAY_HEADER} header is not JSON: {exc}") from None
        if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
            raise InvalidReplayHeaderError(f"{REPLAY_HEADER} header is not a JSON array of target names")
        return tuple(targets)
    return None
