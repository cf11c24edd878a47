"""The alert contract: optional parts sent as JSON null read as absent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.alert import Alert

REQUIRED = {
    "alert_id": "a-1",
    "rule_id": "usage-drop",
    "kind": "drop",
    "title": "Initech: usage dropped",
    "severity": "medium",
    "priority": 4,
    "account_id": "initech",
    "fired_at": "2026-11-23T06:10:00Z",
}


@pytest.mark.parametrize(
    "optional",
    [
        {"account": None},
        {"account": {"owner": None, "links": None, "name": None, "mrr": None}},
        {"evidence": None},
        {"evidence": {"value": None, "sample_event_ids": None}},
        {"window": None},
        {"playbook": None},
        {"labels": None},
        {"user_id": None, "emitted_at": None},
    ],
)
def test_optional_parts_sent_as_null_read_as_absent(optional: dict[str, object]) -> None:
    """An alert from another producer that writes null for an optional part is the alert without it,
    not an invalid record the notifier would dead-letter."""
    alert = Alert.model_validate_json(json.dumps({**REQUIRED, **optional}))
    assert alert == Alert.model_validate(REQUIRED)


@pytest.mark.parametrize("field", ["alert_id", "rule_id", "title", "severity", "account_id", "fired_at"])
def test_required_fields_stay_required_even_as_null(field: str) -> None:
    """A required field sent as null is still an invalid alert."""
    with pytest.raises(ValueError, match=field):
        Alert.model_validate_json(json.dumps({**REQUIRED, field: None}))


@pytest.mark.parametrize(
    ("account", "zone"),
    [
        ({"timezone": "Europe/Paris", "owner": {"timezone": "America/Chicago"}}, "Europe/Paris"),
        ({"owner": {"timezone": "America/Chicago"}}, "America/Chicago"),
        ({"timezone": None, "owner": {"timezone": ""}}, None),
        ({}, None),
    ],
)
def test_local_timezone_is_the_accounts_else_its_owners(account: dict[str, object], zone: str | None) -> None:
    assert Alert.model_validate({**REQUIRED, "account": account}).account.local_timezone == zone


def test_an_account_name_with_nothing_to_see_reads_as_no_name() -> None:
    """An alert from any producer whose account name is spaces or zero-width characters has no name, so every
    channel shows the account id instead (Slack showed an empty Account field); real names are kept."""
    for blank in ("", "  ", "\u200b", "\u2060\u200d \n"):
        assert Alert.model_validate({**REQUIRED, "account": {"name": blank}}).account.name is None
    for name in ("Acme", " Acme ", "🚀", "שלום"):
        assert Alert.model_validate({**REQUIRED, "account": {"name": name}}).account.name == name


@pytest.mark.parametrize(
    ("field", "value"),
    [("alert_id", ""), ("rule_id", ""), ("account_id", ""), ("alert_id", "a\n1"), ("account_id", "x" * 257)],
)
def test_an_alert_without_a_usable_id_is_invalid(field: str, value: str) -> None:
    """An empty (or control-character, overlong) alert, rule or account id is no alert: the notifier
    dead-letters it as invalid_alert. Before, two alerts of one account with alert_id "" were one
    "duplicate" (the second never sent), and an alert without an account was sent as "()"."""
    with pytest.raises(ValueError, match=field):
        Alert.model_validate({**REQUIRED, field: value})


@pytest.mark.parametrize(
    ("fields", "title"),
    [
        ({"title": "", "account": {"name": "Initech"}}, "Initech: alert from rule usage-drop"),
        ({"title": "  \n", "account": {"name": "Initech"}}, "Initech: alert from rule usage-drop"),
        ({"title": "", "account": None}, "acc-1: alert from rule usage-drop"),
        ({"title": "\x1b\u200b", "account": None}, "acc-1: alert from rule usage-drop"),
        ({"title": "", "account": {"name": "  "}}, "acc-1: alert from rule usage-drop"),
    ],
)
def test_a_blank_title_becomes_one_a_csm_can_read(fields: dict[str, Any], title: str) -> None:
    """A rule's title template naming a value the finding lacks renders empty (a template_error, by design):
    Slack then read "[HIGH]  (acc-1): …" under a "Preempt alert" header, the email subject "[HIGH] acc-1:",
    the console "[HIGH] ". The alert now says whose and which rule."""
    alert = Alert.model_validate({**REQUIRED, "account_id": "acc-1", "rule_id": "usage-drop", **fields})
    assert alert.title == title
