"""Alert builders shared by the alerts unit tests and the channel integration tests."""

from __future__ import annotations

import itertools
from typing import Any

from schemas.alert import Alert

_ids = itertools.count(1)

HOSTILE = "<!channel> <!here> <@U0BADBAD> <https://evil.example|click me> & friends >>"


def build_alert(**overrides: Any) -> Alert:
    """An alert for account ``acme`` (enterprise, owned by Jane); any field can be overridden."""
    account = {
        "name": "Acme",
        "tier": "enterprise",
        "mrr": 12500.0,
        "timezone": "Europe/Paris",
        "owner": {"name": "Jane Doe", "email": "jane@example.com", "slack": "U0JANE01"},
        "links": {"crm": "https://crm.example.com/acme"},
    }
    fields: dict[str, Any] = {
        "alert_id": f"alert-{next(_ids)}",
        "rule_id": "error-spike",
        "kind": "threshold",
        "title": "Acme: API errors are spiking",
        "severity": "high",
        "priority": 2,
        "account_id": "acme",
        "account": account,
        "fired_at": "2026-11-23T06:10:00Z",
        "emitted_at": "2026-11-23T06:10:00.120Z",
        "window": {"start": "2026-11-23T06:00:00Z", "end": "2026-11-23T06:10:00Z"},
        "evidence": {"measure": "count", "value": 37, "threshold": 20, "sample_event_ids": ["e1", "e2"]},
        "playbook": "Call the **admin** within the hour and offer a workaround.",
        "labels": {"team": "support"},
    }
    if "account" in overrides:
        account = {**account, **overrides.pop("account")}
        fields["account"] = account
    fields.update(overrides)
    return Alert.model_validate(fields)


def hostile_alert(length: int = 10_000, **overrides: Any) -> Alert:
    """An alert whose every free-text field is long and tries to ping @channel or inject a link."""
    text = (HOSTILE + " ") * (length // (len(HOSTILE) + 1) + 1)
    fields: dict[str, Any] = {
        "title": text[:length],
        "playbook": text[:length],
        "account": {
            "name": text[:length],
            "tier": text[:500],
            "owner": {"name": text[:500], "email": "x@example.com", "slack": "<!channel>"},
            "links": {"crm": "javascript:alert(1)", "<!channel>": "https://ok.example.com/" + "a" * 100},
        },
        "evidence": {"measure": text[:300], "value": text[:length], "sample_event_ids": [text[:200]] * 20},
        "labels": {"team": text[:200]},
    }
    fields.update(overrides)
    return build_alert(**fields)
