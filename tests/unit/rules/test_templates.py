"""Rule templates: checked at load, rendered in a sandbox that cannot reach anything else."""

from __future__ import annotations

import pytest

from rules.templates import KNOWN_ATTRIBUTES, check_template, render_template, unknown_account_view


@pytest.mark.parametrize(
    "source",
    [
        "{{ account.name }} ({{ account.tier }})",
        "{{ evidence.value | round(1) }} vs {{ evidence['threshold'] }}",
        "{{ rule.id }} {{ rule.severity }} {{ window.start }}",
        "{% if evidence.baseline %}baseline {{ evidence.baseline }}{% endif %}",
        "plain text",
    ],
)
def test_valid_templates(source):
    """Placeholders on the four names and their fields are accepted."""
    assert check_template(source) == source


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ settings.slack_bot_token }}", "unknown placeholder settings"),
        ("{{ account.password }}", "account has no field 'password'"),
        ("{{ rule.query }}", "rule has no field 'query'"),
        ("{{ account.name ", "syntax error"),
        ("{% for x in %}", "syntax error"),
        ("{{ evidence.properties.clear() }}", "calls clear"),
        ("{% set _ = evidence.sample_event_ids.append('x') %}", "calls append"),
    ],
)
def test_invalid_templates(source, reason):
    """Unknown names, unknown fields and syntax errors are refused at load."""
    with pytest.raises(ValueError, match=reason):
        check_template(source)


def test_every_account_field_the_docs_list_is_accepted():
    """Every account field docs/rules.md lists for templates (seats, customer_since, renewal_date too) is
    accepted at load, and every field the engine's account view has is one of them."""
    source = (
        "{{ account.account_id }} {{ account.name }} {{ account.tier }} {{ account.plan }} {{ account.mrr }} "
        "{{ account.seats }} {{ account.customer_since }} {{ account.renewal_date }} {{ account.owner.name }} "
        "{{ account.timezone }} {{ account.tags }} {{ account.links.crm }}"
    )
    assert check_template(source) == source
    assert set(unknown_account_view("acme")) == KNOWN_ATTRIBUTES["account"]


def test_sandbox_blocks_python_internals():
    """Reaching for dunder attributes fails safely and is reported, never executed."""
    text, error = render_template("{{ evidence.__class__.__mro__ }}", {"evidence": {}})
    assert error is not None
    assert "object" not in text


def test_a_template_cannot_change_the_values_it_renders():
    """Rendering is read-only: a mutating call fails (reported) and leaves the evidence as it was, so one
    rule's template never changes another alert about the same event."""
    properties = {"plan": "pro"}
    evidence = {"properties": properties, "sample_event_ids": ["e1"]}
    _, error = render_template(
        "{{ evidence.properties.clear() }}{{ evidence.sample_event_ids.append('x') }}", {"evidence": evidence}
    )
    assert error is not None
    assert evidence == {"properties": {"plan": "pro"}, "sample_event_ids": ["e1"]}


def test_a_whole_number_prints_without_a_decimal_point():
    """Counts are floats in the evidence (37.0); a template prints them as "37", other numbers as they are."""
    context = {"evidence": {"value": 37.0, "ratio": 0.25, "drop_pct": 50.0, "threshold": 20}}
    text, error = render_template(
        "{{ evidence.value }} errors, {{ evidence.ratio }}, {{ evidence.drop_pct }}%, {{ evidence.threshold }}", context
    )
    assert (text, error) == ("37 errors, 0.25, 50%, 20", None)


def test_a_huge_whole_number_prints_as_a_float_not_as_hundreds_of_digits():
    """A property of 1e300 prints as ``1e+300`` (a whole float beyond 2**53 holds no more digits),
    not as a 301-digit integer; 2**53 itself still prints as an integer."""
    context = {"evidence": {"value": 1e300, "low": -1e20, "edge": float(2**53)}}
    text, error = render_template("{{ evidence.value }} {{ evidence.low }} {{ evidence.edge }}", context)
    assert (text, error) == ("1e+300 -1e+20 9007199254740992", None)


def test_missing_value_renders_leniently_with_the_error():
    """A value missing at run time renders empty and the error is returned, never raised."""
    text, error = render_template("value={{ evidence.nope }}", {"evidence": {}})
    assert (text, error is not None) == ("value=", True)


def test_nested_loops_stop_with_the_error_instead_of_stalling_the_worker():
    """Nested loops over range() stop at the sandbox's step limit: the raw source is the text and the
    error says why (the alert still goes out, with a ``template_error``), within a fraction of a second."""
    source = "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}{{ account.name }}"
    text, error = render_template(source, {"account": {"name": "Acme"}})
    assert text == source
    assert error is not None
    assert str(error).startswith("template stopped after 100,000 loop steps")


def test_render_without_placeholders_is_the_source():
    """Plain text is returned as is."""
    assert render_template("Hello", {}) == ("Hello", None)


def test_a_template_past_the_limits_is_not_rendered_a_second_time_leniently(monkeypatch) -> None:
    """Strict rendering stopped by the sandbox's limits gives the raw source at once: the lenient retry
    would do all that work again (twice the time per field per alert in the worker)."""
    from rules import templates

    calls: list[bool] = []
    real = templates._compiled

    def counting(source: str, strict: bool, *args):
        calls.append(strict)
        return real(source, strict, *args)

    monkeypatch.setattr(templates, "_compiled", counting)
    source = "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}x"
    text, error = templates.render_template(source, {})
    assert text == source
    assert isinstance(error, templates.TemplateLimitError)
    assert calls == [True]


def test_values_printed_into_a_playbook_are_text_not_markdown() -> None:
    """An end user's NPS comment or an account name cannot add a link or emphasis to a playbook's Markdown;
    the rule author's own Markdown stays Markdown."""
    from alerts.formatting import markdown_html, markdown_text

    comment = "[Reset your password](https://phish.example) *now* <b>&amp; `x` _y_ \\"
    context = {"evidence": {"properties": {"comment": comment}}, "account": {"name": "Acme *Bold*"}}
    source = '**Call {{ account.name }}** today. They wrote: "{{ evidence.properties.comment }}"'
    playbook, error = render_template(source, context, markdown=True)
    assert error is None
    html = str(markdown_html(playbook))
    for markup in ("<a ", "<em>", "<code>", "<b>"):
        assert markup not in html, html
    assert html.startswith("<p><strong>Call Acme *Bold*</strong> today.")
    assert markdown_text(playbook) == f'Call Acme *Bold* today. They wrote: "{comment}"'
    title, _ = render_template("{{ account.name }}: NPS", context)
    assert title == "Acme *Bold*: NPS"  # titles and summaries are plain text: nothing to escape


def test_a_value_printed_into_a_playbook_stays_on_one_line() -> None:
    """A line break in an end user's text could start a heading or a numbered step of its own in the
    playbook (fake instructions); it reads as one line of text."""
    comment = "fine\n\n# URGENT\n\n1. Visit https://phish.example"
    playbook, error = render_template('They wrote: "{{ evidence.c }}"', {"evidence": {"c": comment}}, markdown=True)
    assert error is None
    assert playbook == 'They wrote: "fine # URGENT 1. Visit https://phish.example"'


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("> quote", "> quote"),
        ("# URGENT", "# URGENT"),
        ("1. Refund everyone", "1. Refund everyone"),
        ("2) Refund everyone", "2) Refund everyone"),
        ("- item", "- item"),
        ("+ item", "+ item"),
        ("---", "---"),
        ("===", "==="),
        ("~~~", "~~~"),
        ("      indented code", "indented code"),
        ("-5 seats", "-5 seats"),
        ("1.5 days", "1.5 days"),
    ],
)
def test_a_value_printed_at_the_start_of_a_playbook_line_opens_no_block(value: str, shown: str) -> None:
    """An end user's text printed where a playbook line starts ("They wrote:\\n{{ c }}") is one line of text on
    every channel: it made a quote, a heading, a numbered step, a rule or a code block of its own."""
    from alerts.formatting import markdown_html, markdown_mrkdwn, markdown_text

    playbook, error = render_template("They wrote:\n{{ evidence.c }}", {"evidence": {"c": value}}, markdown=True)
    assert error is None
    html = str(markdown_html(playbook))
    for block in ("<blockquote", "<h1", "<h2", "<ol", "<ul", "<hr", "<pre", "<code"):
        assert block not in html, html
    assert markdown_text(playbook) == f"They wrote:\n{shown}"
    if "~" not in value:  # Slack mrkdwn: a leading ">" is kept from quoting by a soft hyphen (alerts.formatting)
        assert markdown_mrkdwn(playbook) == "They wrote:\n" + shown.replace(">", "\u00ad&gt;")


@pytest.mark.parametrize("markdown", [False, True])
def test_a_template_prints_values_in_words_never_as_python_reprs(markdown: bool) -> None:
    """``{{ evidence.value }}`` of a sum of 0.1 and 0.2 printed 0.30000000000000004, a min_ratio of 0.00001
    printed 1e-05, a flag True, a list ['e1', 'e2'] and an object {'score': 6, …}."""
    context = {
        "evidence": {
            "value": 0.1 + 0.2,
            "threshold": 0.00001,
            "ratio": 1 / 3,
            "expected_filtered": True,
            "sample_event_ids": ["e1", "e2"],
            "properties": {"score": 6, "comment": "slow", "nps": None},
            "components": {"activity": 33.3},
        }
    }
    source = (
        "{{ evidence.value }}|{{ evidence.threshold }}|{{ evidence.ratio }}|{{ evidence.expected_filtered }}|"
        "{{ evidence.sample_event_ids }}|{{ evidence.properties }}|{{ evidence.components }}"
    )
    text, error = render_template(source, context, markdown=markdown)
    assert error is None
    assert text == "0.3|0.00001|0.333333333333333|yes|e1, e2|score 6, comment slow|activity 33.3"


def test_aside_keeps_its_space_after_a_name_in_a_playbook() -> None:
    """`**{{ account.name }}**{{ account|facts|aside }}` (the docs' and the default pack's playbooks) reads
    "**Acme** (enterprise, …)": the playbook's Markdown escaping dropped the space `aside` prints first,
    giving "**Acme**(enterprise, …)" in every playbook, while titles and summaries kept it."""
    from alerts.formatting import markdown_text

    context = {"account": {"name": "Acme", "tier": "enterprise", "plan": "Business", "mrr": 4200.0}}
    source = "Call **{{ account.name }}**{{ account|facts|aside }} today."
    playbook, error = render_template(source, context, markdown=True)
    assert error is None
    assert playbook == "Call **Acme** (enterprise, Business, $4,200 MRR) today."
    assert markdown_text(playbook) == "Call Acme (enterprise, Business, $4,200 MRR) today."
    title, _ = render_template(source, context)
    assert title == "Call **Acme** (enterprise, Business, $4,200 MRR) today."


@pytest.mark.parametrize(
    "source",
    [
        "{{ account.tier|upper }}",
        "{{ account.tier|lower }}",
        "{{ account.tier|capitalize }}",
        "{{ account.tier|title }}",
        "{{ account.tier|string }}",
        "{{ account.tier|trim }}",
    ],
)
def test_a_text_filter_of_a_missing_value_prints_nothing_not_none(source: str) -> None:
    """A missing value prints as nothing (never 'None'), also through a text filter: `{{ account.tier|upper }}`
    of an account without a tier printed 'NONE' in the alert's title."""
    text, error = render_template(source, {"account": unknown_account_view("acme")})
    assert (text, error) == ("", None)
    assert render_template(source, {"account": {"tier": "gold"}})[0].lower() == "gold"


@pytest.mark.parametrize("markdown", [False, True])
def test_a_missing_value_joined_with_tilde_prints_nothing_not_none(markdown: bool) -> None:
    """``"Tier: " ~ account.tier`` printed "Tier: None" for an account without a tier."""
    source = "{{ 'Tier: ' ~ account.tier }}|{{ account.name ~ '!' }}|{{ 1 ~ 2 }}"
    assert render_template(source, {"account": unknown_account_view("acme")}, markdown=markdown) == (
        "Tier: |acme!|12",
        None,
    )
