"""Silences: mute alerts of an account, a rule or a matcher set until an expiry, with a reason.

The notifier holds one ``SilenceSet`` built from the routing file and adds to it at runtime when a CSM
presses Snooze in Slack (``SilenceSet.add``); it asks ``silenced_by`` before sending each alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from alerts.routing.config import Silence
from schemas.alert import Alert


class SilenceSet:
    """The active and future silences; expired ones are pruned as time passes."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._by_id: dict[str, Silence] = {}
        for silence in silences:
            self.add(silence)

    def add(self, silence: Silence) -> None:
        """Add (or replace, by ``id``) a silence — e.g. a snooze created from Slack."""
        self._by_id[silence.id] = silence

    def silenced_by(self, alert: Alert, now: float) -> Silence | None:
        """The first silence active at ``now`` (epoch seconds) that matches ``alert``, or None."""
        for silence in self._by_id.values():
            if silence.active_at(now) and silence.matches(alert):
                return silence
        return None

    def prune(self, now: float) -> int:
        """Forget silences that ended before ``now``; returns how many were dropped."""
        expired = [sid for sid, s in self._by_id.items() if s.ends_at.timestamp() <= now]
        for sid in expired:
            del self._by_id[sid]
        return len(expired)

    def __iter__(self) -> Iterator[Silence]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
