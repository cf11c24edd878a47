"""alerts/formatting.py: the playbook's Markdown per channel and the filters the templates see."""

from __future__ import annotations

from alerts.formatting import FILTERS, evidence_text, markdown_html, markdown_mrkdwn, markdown_text
from alerts.templates import render, template_context

PLAYBOOK = """**Acme** (growth, $1,040 MRR) uses under 35% of its seats.

1. Dana: ask the champion which teams were meant to use the product and
   what is stopping them.
2. Open [the CRM](https://crm.example.com/acme) & log it."""


def test_plain_text_drops_markdown_and_keeps_the_layout():
    """Plain text has no ** and keeps numbered steps with their continuation indent; links show their URL."""
    assert markdown_text(PLAYBOOK) == (
        "Acme (growth, $1,040 MRR) uses under 35% of its seats.\n\n"
        "1. Dana: ask the champion which teams were meant to use the product and\n"
        "   what is stopping them.\n"
        "2. Open the CRM (https://crm.example.com/acme) & log it."
    )


def test_slack_mrkdwn_bold_links_and_escaping():
    """Slack gets *bold*, <url|text> links, and & < > escaped so nothing can ping or inject."""
    text = markdown_mrkdwn(PLAYBOOK + " <!channel>")
    assert text.startswith("*Acme* (growth")
    assert "<https://crm.example.com/acme|the CRM> &amp; log it. &lt;!channel&gt;" in text
    assert "**" not in text


def test_html_escapes_raw_html_and_unsafe_links():
    """Email HTML renders Markdown but shows raw HTML as text and drops javascript: links."""
    html = str(markdown_html("**hi** <script>alert(1)</script> [x](javascript:alert(1))"))
    assert "<strong>hi</strong>" in html
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript' not in html


def test_empty_or_missing_markdown():
    """No playbook renders as nothing on every channel."""
    assert markdown_text(None) == markdown_mrkdwn("  ") == ""
    assert str(markdown_html(None)) == ""


def test_evidence_filter_takes_an_alert_or_a_bare_evidence_dict(make_alert):
    """``a|evidence`` builds the kind's sentence; ``a.evidence|evidence`` (older templates) still works."""
    alert = make_alert()
    assert evidence_text(alert) == "37 matching events, at or above the threshold of 20"
    assert evidence_text(alert.evidence.model_dump()) == "count 37 (threshold 20)"


def test_templates_see_every_filter(make_alert):
    """A receiver's template can use the formatting filters by name."""
    context = template_context((make_alert(),))
    source = (
        "{{ alert.account.mrr|money }} {{ 604800|duration }} {{ 0.3|percent }} {{ 6.0|number }} "
        "{{ alert.fired_at|datetime(alert.account.timezone) }} {{ alert.account.owner|owner }} "
        "{{ alert.playbook|plain }} {{ alert.account.tier|aside }}"
    )
    assert render("email_text", context, source) == (
        "$12,500 7 days 30% 6 Mon 23 Nov 2026, 07:10 CET Jane Doe (account owner) "
        "Call the admin within the hour and offer a workaround.  (enterprise)"
    )
    assert {"number", "money", "mrr", "percent", "duration", "datetime", "date", "person", "evidence"} <= set(FILTERS)


def test_a_huge_whole_number_prints_as_a_float_in_the_number_and_money_filters(make_alert):
    """1e308 through ``number``, ``money`` and ``mrr`` prints as ``1e+308``, not as its 309 digits (as a rule
    template prints it); up to 2**53 a whole float still prints as an integer with separators."""
    alert = make_alert(account={"mrr": 1e308})
    source = (
        "{{ alert.account.mrr|number }} {{ alert.account.mrr|money }} {{ alert.account.mrr|mrr }} "
        "{{ 9007199254740992.0|number }}"
    )
    assert render("email_text", template_context((alert,)), source) == (
        "1e+308 $1e+308 $1e+308 MRR 9,007,199,254,740,992"
    )


def test_missing_values_never_print_none(make_alert):
    """A template naming a field the alert lacks prints nothing, not None."""
    alert = make_alert(account={"tier": None, "mrr": None, "owner": {}})
    context = template_context((alert,))
    assert (
        render("email_text", context, "[{{ alert.account.tier }}|{{ alert.account.mrr }}|{{ alert.user_id }}]")
        == "[||]"
    )
