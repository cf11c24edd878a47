"""Inhibition (Alertmanager ``inhibit_rules``): an active source alert mutes matching target alerts.

Example: while a critical composite alert is active for an account, its component alerts for the
same account (``equal: [account_id]``) are not sent. The notifier passes the alerts it knows to be
active (its recent alerts) to ``inhibited_by`` before sending each alert.
"""

from __future__ import annotations

from collections.abc import Iterable

from alerts.routing.config import InhibitRule
from alerts.routing.matchers import alert_value, matches_all
from schemas.alert import Alert


class Inhibitor:
    """Applies a routing file's inhibit rules."""

    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = tuple(rules)

    def can_inhibit(self, alert: Alert) -> bool:
        """Whether ``alert`` matches some rule's source side: only such alerts need remembering as active
        (others, however many, must not push real sources out of a bounded memory)."""
        return any(matches_all(rule.source_matchers, alert) for rule in self.rules)

    def inhibited_by(self, alert: Alert, active: Iterable[Alert]) -> InhibitRule | None:
        """The first rule under which some other active alert mutes ``alert``, or None.

        As in Alertmanager, an alert never inhibits itself; an alert that matches both sides of a
        rule cannot be inhibited under it by another alert that also matches both sides (two such
        alerts would otherwise mute each other and nothing would be sent); and a name in ``equal``
        that is missing from both alerts counts as equal.
        """
        targeted = [rule for rule in self.rules if matches_all(rule.target_matchers, alert)]
        if not targeted:
            return None
        sources = [a for a in active if a.alert_id != alert.alert_id]
        for rule in targeted:
            two_sided = matches_all(rule.source_matchers, alert)
            for source in sources:
                if not matches_all(rule.source_matchers, source):
                    continue
                if two_sided and matches_all(rule.target_matchers, source):
                    continue
                if all(alert_value(source, name) == alert_value(alert, name) for name in rule.equal):
                    return rule
        return None
