"""The default pack's alerts as a CSM receives them, on every channel, with and without account data.

Thirty simulated days of 100 accounts go through the backtest core twice — with the accounts, and
without (what a backtest without --accounts or a brand-new live account gets) — and every alert is
rendered by the channels' own code: Slack Block Kit, the email's text and HTML parts, the console.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest
from pydantic import SecretStr

from alerts.channels.base import Notification
from alerts.channels.console import ConsoleNotifier
from alerts.channels.email import EmailNotifier
from alerts.channels.slack import render_message
from alerts.routing.config import EmailReceiver, SlackReceiver
from rules.backtest import run_backtest
from rules.engine import RuleEngine
from rules.findings import alert_id_for
from rules.loader import load_rules
from schemas.alert import Alert
from schemas.event import Event
from streams.runtime.settings import Settings
from streams.simulate.generator import Simulation, SimulationConfig

PACK = Path(__file__).resolve().parents[3] / "rules" / "packs" / "default"
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30
RAW_FLOAT = re.compile(r"(?<![\d.])\d+\.0(?![\d])")  # "6.0", "1170.0": a number shown as Python prints it


@pytest.fixture(scope="module")
def backtests() -> dict[str, list[Alert]]:
    """The pack's alerts over the simulation, with accounts and without."""
    simulation = Simulation(SimulationConfig(seed=7, accounts=100, start_ms=int(START.timestamp() * 1000), days=DAYS))
    accounts = {a.account.account_id: a.account for a in simulation.accounts}
    events = list(simulation.events())
    until = START.timestamp() + DAYS * 86400
    out = {}
    for name, known in (("with accounts", accounts), ("without accounts", {})):
        engine = RuleEngine(load_rules(PACK))
        out[name] = run_backtest(engine, enumerate(events, start=1), known, until, allowed_lateness=5.0).alerts
    return out


def _messages(alert: Alert) -> dict[str, str]:
    settings = Settings()
    slack = render_message(SlackReceiver(webhook_url=SecretStr("https://hooks.example.com/x")), (alert,))
    email = EmailNotifier(EmailReceiver(to=("csm@example.com",)), settings).build((alert,), ["csm@example.com"], "g")
    parts = {p.get_content_type(): str(p.get_content()) for p in email.iter_parts()}
    console = ConsoleNotifier().format(Notification("csm", (alert,), "g"))
    return {
        "slack": json.dumps(slack, ensure_ascii=False),
        "slack text": slack["text"],
        "email subject": str(email["Subject"]),
        "email text": parts["text/plain"],
        "email html": parts["text/html"],
        "console": console,
    }


def test_every_rule_of_the_pack_fired(backtests):
    """The simulation exercises every rule of the pack (so the checks below cover every template)."""
    rules = {a.rule_id for a in backtests["with accounts"]}
    assert rules == {r.id for r in load_rules(PACK).rules}


def test_account_data_does_not_change_alert_ids(backtests):
    """Account data changes the text only: the alert ids are the same with and without it."""
    assert [a.alert_id for a in backtests["with accounts"]] == [a.alert_id for a in backtests["without accounts"]]


@pytest.mark.parametrize("which", ["with accounts", "without accounts"])
def test_no_none_no_markdown_no_raw_numbers_anywhere(backtests, which):
    """No channel shows None, a dict repr or a number like 6.0; plain text carries no Markdown **."""
    for alert in backtests[which]:
        for channel, text in _messages(alert).items():
            where = f"{alert.rule_id} {alert.alert_id} {channel}"
            assert "None" not in text, where
            assert "{'" not in text, where
            assert not RAW_FLOAT.search(text), f"{where}: {RAW_FLOAT.search(text)}"
            if channel in ("email text", "console", "slack text", "email subject"):
                assert "**" not in text, where


@pytest.mark.parametrize("which", ["with accounts", "without accounts"])
def test_every_alert_says_why_in_a_sentence(backtests, which):
    """Each alert carries its rule's summary sentence, which every channel shows."""
    for alert in backtests[which]:
        summary = alert.evidence.model_dump().get("summary")
        assert summary
        assert "None" not in summary, alert.rule_id
        messages = _messages(alert)
        for channel in ("slack", "email text", "console"):
            assert summary.replace('"', '\\"') in messages[channel] or summary in messages[channel], channel


def test_sparse_account_gets_sensible_fallbacks(backtests):
    """Without account data the name is the id, the owner is "the account's owner", and no MRR is shown."""
    alert = next(a for a in backtests["without accounts"] if a.rule_id == "cancel-after-payment-failure")
    messages = _messages(alert)
    assert alert.title.startswith(f"{alert.account_id}: ")
    assert "1. The account's owner: call the account's billing admin" in messages["email text"]
    assert "Owner: none on record" in messages["email text"]
    assert "MRR" not in messages["email text"]
    assert "$" not in messages["slack"]


def test_known_account_reads_like_a_person_wrote_it(backtests):
    """With account data: money with separators, the owner by name and role, times in the owner's zone."""
    seat = next(a for a in backtests["with accounts"] if a.rule_id == "seat-utilisation-low")
    text = _messages(seat)["email text"]
    assert re.search(r"\d+ of \d+ seats in use \(\d+(\.\d)?%\), below the 35% floor on \d of the last 7 days", text)
    assert re.search(r"\$\d{1,3}(,\d{3})* MRR", text)
    assert re.search(r"Owner: [A-Z][a-z]+ [A-Z][a-z]+ \(account owner\)", text)
    quiet = next(a for a in backtests["with accounts"] if a.rule_id == "champion-gone-quiet")
    assert quiet.user_id
    assert quiet.user_id in quiet.title  # the champion who went quiet is named
    assert quiet.user_id in (quiet.evidence.model_dump()["summary"] or "")
    zone = quiet.account.timezone
    abbreviations = {"America/New_York": ("EST", "EDT"), "Europe/London": ("GMT", "BST"), "UTC": ("UTC",)}
    console = _messages(quiet)["console"]
    assert any(f" {abbr}" in console for abbr in abbreviations.get(str(zone), ("",))), (zone, console)
    score = next(a for a in backtests["with accounts"] if a.rule_id == "engagement-score-low")
    assert "/100" in score.playbook
    assert "{" not in score.playbook


def _initech_alert(account: dict[str, object]) -> Alert:
    """A threshold alert for account ``initech`` with this account record, as a producer sends it."""
    return Alert.model_validate(
        {
            "alert_id": "x",
            "rule_id": "r",
            "kind": "threshold",
            "title": "Initech: errors",
            "severity": "high",
            "priority": 1,
            "account_id": "initech",
            "fired_at": "2026-11-23T06:10:00Z",
            "account": account,
        }
    )


def test_account_links_are_named_in_words_on_every_channel():
    """Account links read "CRM", "admin", "billing portal" in Slack buttons and both email parts, never a raw
    key such as "crm" or "Billing_portal"."""
    links = {
        "crm": "https://crm.example.com/a",
        "admin": "https://admin.example.com/a",
        "billing_portal": "https://b.example.com/a",
    }
    alert = _initech_alert({"name": "Initech", "links": links})
    blocks = render_message(SlackReceiver(channel="#cs"), (alert,))["blocks"]
    buttons = [e["text"]["text"] for b in blocks if b["type"] == "actions" for e in b["elements"] if "url" in e]
    assert buttons == ["Open admin", "Open billing portal", "Open CRM"]
    message = EmailNotifier(EmailReceiver(to=("a@example.com",)), Settings()).build((alert,), ["a@example.com"], "g")
    text, html = (part.get_content() for part in message.iter_parts())
    assert "CRM: https://crm.example.com/a" in text
    assert "Admin: https://admin.example.com/a" in text
    assert "Billing portal: https://b.example.com/a" in text
    assert "Open billing portal</a>" in html
    assert "Open CRM</a>" in html
    assert "_" not in "".join(buttons) + text.split("-- Preempt")[0].replace("https://", "")


def test_a_per_user_alert_names_the_user_on_every_channel(make_alert):
    """An alert of a ``group_by: user`` rule says which user it is about, whatever its title says: a CSM told
    "no activity for 7 days" about one of the account's users cannot act without knowing whom."""
    alert = make_alert(user_id="u-4711", title="An admin went quiet")
    for channel, text in _messages(alert).items():
        if channel not in ("slack text", "email subject"):
            assert "u-4711" in text, channel
    assert "user" not in _messages(make_alert(user_id=None))["console"]


def test_a_digest_of_per_user_alerts_names_each_user(make_alert):
    """Grouped into one message, each per-user alert names its own user (Slack digest lines, email parts)."""
    alerts = (make_alert(alert_id="a1", user_id="u-1"), make_alert(alert_id="a2", user_id="u-2"))
    slack = json.dumps(render_message(SlackReceiver(webhook_url=SecretStr("https://hooks.example.com/x")), alerts))
    email = EmailNotifier(EmailReceiver(to=("csm@example.com",)), Settings()).build(alerts, ["csm@example.com"], "g")
    for text in [slack, *(str(p.get_content()) for p in email.iter_parts())]:
        assert "u-1" in text
        assert "u-2" in text


ABSENCE_RULE = """
id: payment-not-recovered
kind: absence
title: "{{ account.name }}: failed payment not recovered in 3 days"
severity: critical
priority: 1
start: {event: Invoice Payment Failed}
expect: {event: [Invoice Paid, Payment Method Updated]}
within: 3d
"""


def test_an_absence_alert_says_which_events_did_not_come_on_every_channel(tmp_path):
    """The absence rule of docs/rules.md without a ``summary``: the CSM reads what is missing and after what
    ("no 'Invoice Paid' or 'Payment Method Updated' within 3 days of 'Invoice Payment Failed'"), not "the
    expected follow-up did not happen"; the alert id is the one the rule, account and start give."""
    (tmp_path / "rule.yaml").write_text(ABSENCE_RULE)
    failed = Event(event="Invoice Payment Failed", event_id="f1", account_id="acme", ts=START.timestamp())
    engine = RuleEngine(load_rules(tmp_path / "rule.yaml"))
    [alert] = run_backtest(engine, [(1, failed)], {}, START.timestamp() + 4 * 86400, allowed_lateness=0.0).alerts
    missing = "no 'Invoice Paid' or 'Payment Method Updated' within 3 days of 'Invoice Payment Failed'"
    for channel, text in _messages(alert).items():
        if channel != "email subject":
            assert missing in unescape(text), channel
    assert alert.alert_id == alert_id_for("payment-not-recovered", "acme", None, "2026-10-01T00:00:00.000Z")


def _email_parts(account: dict[str, object]) -> tuple[str, str]:
    alert = _initech_alert(account)
    message = EmailNotifier(EmailReceiver(to=("a@example.com",)), Settings()).build((alert,), ["a@example.com"], "g")
    text, html = (str(part.get_content()) for part in message.iter_parts())
    return text, html


def test_an_owner_known_only_by_email_is_named_once():
    """An owner with an email and no name reads "Owner: ann@example.com (account owner)" in both email parts;
    it read "ann@example.com (account owner) <ann@example.com>". A named owner keeps the address."""
    text, html = _email_parts({"name": "Initech", "owner": {"email": "ann@example.com"}})
    assert "Owner: ann@example.com (account owner)\n" in text
    assert "<td>ann@example.com (account owner)</td>" in html
    text, html = _email_parts({"name": "Initech", "owner": {"name": "Ann Lee", "email": "ann@example.com"}})
    assert "Owner: Ann Lee (account owner) <ann@example.com>\n" in text
    assert "<td>Ann Lee (account owner) &lt;ann@example.com&gt;</td>" in html


def test_an_account_link_that_is_not_http_is_left_out_of_the_email_as_out_of_slack():
    """A ``javascript:`` link (account data) gets no "Open admin" link to ``#`` in the HTML part and no
    "Admin: javascript:…" line in the text part — Slack gives it no button either; http(s) links stay."""
    links = {"admin": "javascript:alert(1)", "crm": "https://crm.example.com/a"}
    text, html = _email_parts({"name": "Initech", "links": links})
    assert "javascript" not in text + html
    assert "Open admin" not in html
    assert 'href="#"' not in html
    assert "CRM: https://crm.example.com/a" in text
    assert '<a href="https://crm.example.com/a">Open CRM</a>' in html


def test_bidi_overrides_in_account_and_event_text_cannot_turn_a_line_around(make_alert):
    """An unclosed right-to-left override (U+202E) or isolate in an account name, title, playbook or event
    property reaches no channel: it displayed the rest of the line reversed ("(Acme‮): 3 matching events"
    read "(Acme stneve gnihctam 3 :)"). Right-to-left letters and emoji are kept."""
    name = "Acme\u202e \u2067שלום 🚀"
    alert = make_alert(
        title=f"{name}: sync failed\u202d",
        account={"name": name, "owner": {"name": "Eve\u202e", "email": "eve@example.com"}},
        kind="any",
        evidence={"value": "CSAT Answered", "properties": {"comment": "bad\u202e service"}},
        playbook="Call \u202b**them**",
    )
    for channel, text in _messages(alert).items():
        assert not set(text) & {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}, channel
        assert "Acme שלום 🚀" in text, channel
    assert "bad service" in _messages(alert)["email text"]


def test_control_characters_in_account_and_event_text_reach_no_channel(make_alert):
    """A NUL, an ESC sequence, a BEL or a C1 control in an account name, title, owner, playbook or event
    property is left out of every channel: they went raw into the email's Subject header and its 7bit text
    part (RFC 5322 and RFC 2045 forbid NUL there) and into the console's terminal. Tabs and line breaks stay."""
    name = "Nul\x00Corp\x1b[31m\x07\x85"
    alert = make_alert(
        title=f"{name}: sync failed",
        account={"name": name, "owner": {"name": "Eve\x1b]0;x\x07", "email": "eve@example.com"}},
        kind="any",
        evidence={"value": "CSAT Answered", "properties": {"comment": "bad\x00\x7f service"}},
        playbook="Call\x08 **them**\n\n1. today",
    )
    controls = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))} - set("\t\n\r")
    messages = _messages(alert)
    for channel, text in messages.items():
        assert not set(text) & controls, channel
        assert "NulCorp[31m" in text, channel
    assert "bad service" in messages["email text"]
    email = EmailNotifier(EmailReceiver(to=("csm@example.com",)), Settings()).build((alert,), ["csm@example.com"], "g")
    assert b"\x00" not in email.as_bytes()
