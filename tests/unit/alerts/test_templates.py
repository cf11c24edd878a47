"""Sandboxed templates: defaults, overrides, HTML autoescape, and failures that fall back instead of crashing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from alerts.templates import check_template, render, safe_url, template_context
from schemas.alert import Alert
from streams.runtime.metrics import NOTIFIER_FALLBACKS


def test_default_subject_has_severity_account_and_title(make_alert: Callable[..., Alert]) -> None:
    """The email subject is [SEVERITY] Account: title, without repeating the account prefix of the title."""
    context = template_context((make_alert(),))
    assert render("email_subject", context) == "[HIGH] Acme: API errors are spiking"


def test_digest_subject_counts_and_takes_highest_severity(make_alert: Callable[..., Alert]) -> None:
    """A group's subject counts its alerts and shows the most severe one's severity."""
    context = template_context((make_alert(severity="low"), make_alert(severity="critical"), make_alert()))
    assert render("email_subject", context) == "[CRITICAL] Acme: 3 alerts"


def test_override_renders_with_owner_fields(make_alert: Callable[..., Alert]) -> None:
    """Receivers may override templates; account and owner fields are available."""
    context = template_context((make_alert(),))
    assert render("email_to", context, "{{ account.owner.email }}") == "jane@example.com"
    assert render("x", context, "{{ alert.evidence.value }}/{{ count }}") == "37/1"


def test_missing_fields_render_empty(make_alert: Callable[..., Alert]) -> None:
    """An undefined path renders as empty text rather than failing."""
    context = template_context((make_alert(account={"owner": {}}),))
    assert render("email_to", context, "{{ account.owner.email }}") == ""
    assert render("x", context, "[{{ account.owner.nope.deeper }}]") == "[]"


def test_broken_override_falls_back_to_default_and_logs(make_alert: Callable[..., Alert]) -> None:
    """A template that fails at render time is logged and replaced by the default."""
    context = template_context((make_alert(),))
    with capture_logs() as logs:
        subject = render("email_subject", context, "{{ 1 / 0 }}")
    assert subject == "[HIGH] Acme: API errors are spiking"
    assert logs[0]["event"] == "template_failed"
    assert logs[0]["template"] == "email_subject"


@pytest.mark.parametrize("template", ["email_subject", "slack_title", "slack_text", "email_text", "console_text"])
def test_an_override_that_renders_blank_falls_back_to_the_default_counted(
    make_alert: Callable[..., Alert], template: str
) -> None:
    """A receiver's subject/title/text written from a field this alert lacks (``{{ account.owner.name }}`` for an
    account without owner) rendered blank: an email with an empty subject, a Slack header "Preempt alert", an
    empty console line — nothing logged, nothing counted. It falls back to the built-in template now, as a
    failing override does: WARNING ``template_rendered_empty`` and ``preempt_notifier_fallbacks_total{reason=
    "template_empty"}``."""
    context = template_context((make_alert(account={"name": "Acme", "owner": {}}),))
    before = NOTIFIER_FALLBACKS.labels(reason="template_empty")._value.get()
    with capture_logs() as logs:
        rendered = render(template, context, "  {{ account.owner.name }} \n")
    assert rendered.strip()
    assert rendered == render(template, context)
    assert [(r["event"], r["template"]) for r in logs] == [("template_rendered_empty", template)]
    assert NOTIFIER_FALLBACKS.labels(reason="template_empty")._value.get() == before + 1


def test_a_recipient_or_channel_template_that_renders_blank_stays_blank(make_alert: Callable[..., Alert]) -> None:
    """``to`` and ``channel`` have no default: blank means "nobody", which the channel dead-letters itself."""
    context = template_context((make_alert(account={"owner": {}}),))
    with capture_logs() as logs:
        assert render("email_to", context, "{{ account.owner.email }}") == ""
        assert render("slack_channel", context, "{{ account.owner.slack }}") == ""
    assert logs == []


@pytest.mark.timeout(10)  # before the sandbox bounded it, this ran for hours
def test_an_override_with_huge_nested_loops_falls_back_to_the_default(make_alert: Callable[..., Alert]) -> None:
    """An override looping 10^10 times stops at the sandbox's step limit and falls back like any failing
    template (logged, counted): one notification cannot hold the notifier."""
    context = template_context((make_alert(),))
    fallbacks = NOTIFIER_FALLBACKS.labels(reason="template_error")
    before = fallbacks._value.get()
    loops = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
    with capture_logs() as logs:
        subject = render("email_subject", context, loops)
    assert subject == "[HIGH] Acme: API errors are spiking"
    assert logs[0]["event"] == "template_failed"
    assert logs[0]["error"].startswith("TemplateLimitError: template stopped after 100,000 loop steps")
    assert fallbacks._value.get() == before + 1


def test_sandbox_blocks_unsafe_access(make_alert: Callable[..., Alert]) -> None:
    """Reaching Python internals through a template is refused by the sandbox (and falls back)."""
    context = template_context((make_alert(),))
    out = render("email_subject", context, "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert out == "[HIGH] Acme: API errors are spiking"


def test_unknown_template_without_override_is_empty(make_alert: Callable[..., Alert]) -> None:
    """A name with no default and a failing override renders empty, never raising."""
    assert render("slack_channel", template_context((make_alert(),)), "{{ nope(") == ""


def test_html_is_autoescaped(make_alert: Callable[..., Alert]) -> None:
    """Account text cannot inject markup into the HTML email; javascript: links are left out."""
    alert = make_alert(title="<script>alert(1)</script>", account={"links": {"crm": "javascript:alert(1)"}})
    html = render("email_html", template_context((alert,)), html=True)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "javascript" not in html
    assert render("email_text", template_context((alert,))).startswith("<script>alert(1)</script>")


def test_check_template_reports_syntax_errors() -> None:
    """check_template raises ValueError for invalid Jinja2."""
    check_template("{{ account.name }}")
    with pytest.raises(ValueError, match="invalid template"):
        check_template("{% if %}")


@pytest.mark.parametrize(
    ("url", "expected"),
    [("https://x.example", "https://x.example"), ("mailto:a@b.c", "mailto:a@b.c"), ("javascript:x", "#"), ("", "#")],
)
def test_safe_url(url: str, expected: str) -> None:
    """Only http(s) and mailto links pass."""
    assert safe_url(url) == expected


def test_a_routing_template_cannot_change_the_alert_it_renders(make_alert) -> None:
    """Routing-file templates render read-only, as rule templates do: a mutating call fails (logged, the
    default template is used), so one receiver's template cannot empty what another receiver shows."""
    context = {"alerts": [make_alert().model_dump(mode="json")]}
    evidence = dict(context["alerts"][0]["evidence"])
    with capture_logs() as logs:
        render("slack.title", context, "{{ alerts[0].evidence.clear() }}")
    assert context["alerts"][0]["evidence"] == evidence
    assert any(e["event"] == "template_failed" and "SecurityError" in e["error"] for e in logs)


def test_templates_show_times_in_the_owners_timezone_when_the_account_has_none() -> None:
    """Email and console show the fired time in the zone quiet hours use: the owner's when the account has none."""
    alert = Alert.model_validate(
        {
            "alert_id": "a1",
            "rule_id": "error-spike",
            "kind": "threshold",
            "title": "Kaisha: API errors",
            "severity": "high",
            "priority": 2,
            "account_id": "kaisha",
            "account": {"name": "Kaisha", "owner": {"name": "Kenji", "timezone": "Asia/Tokyo"}},
            "fired_at": "2026-11-23T06:10:00Z",
        }
    )
    context = template_context((alert,))
    for name in ("email_text", "email_html", "console_text"):
        out = render(name, context)
        assert "15:10 JST" in out, name
        assert "06:10 UTC" not in out, name


@pytest.mark.parametrize("template", ["email_text", "email_html", "console_text"])
def test_an_alert_without_playbook_still_says_what_to_do(make_alert: Callable[..., Alert], template: str) -> None:
    """A rule without a ``playbook`` gets the fallback next step (naming the rule), never a silent gap."""
    rendered = render(template, template_context((make_alert(playbook=""),)))
    assert "No playbook is written for rule" in rendered
    assert "error-spike" in rendered
    written = render(template, template_context((make_alert(),)))
    assert "No playbook is written" not in written
    assert "admin" in written


def test_slack_text_of_a_one_account_digest_names_the_account_once(make_alert: Callable[..., Alert]) -> None:
    """The notification text of a one-account digest says "2 alerts for Acme: A; B", not "Acme: A; Acme: B"."""
    context = template_context((make_alert(), make_alert(title="Acme: champion went quiet")))
    assert render("slack_text", context) == "[HIGH] 2 alerts for Acme: API errors are spiking; champion went quiet"


@pytest.mark.parametrize(
    ("title", "subject", "text"),
    [
        # The default pack's at-risk and a sequence's titles start with the name but not with "name: ".
        (
            "Acme is at risk: usage fell and a user is a detractor",
            "[HIGH] Acme is at risk: usage fell and a user is a detractor",
            "[HIGH] Acme is at risk: usage fell and a user is a detractor: ",
        ),
        (
            "Acme: API errors are spiking",
            "[HIGH] Acme: API errors are spiking",
            "[HIGH] API errors are spiking (Acme): ",
        ),
        ("API errors are spiking", "[HIGH] Acme: API errors are spiking", "[HIGH] API errors are spiking (Acme): "),
        # A title whose first word only begins like the name does not name the account.
        (
            "Acmes everywhere: sync failed",
            "[HIGH] Acme: Acmes everywhere: sync failed",
            "[HIGH] Acmes everywhere: sync failed (Acme): ",
        ),
    ],
)
def test_the_subject_and_the_slack_text_name_the_account_once(
    make_alert: Callable[..., Alert], title: str, subject: str, text: str
) -> None:
    """A title that already starts with the account's name is not given it a second time: the subject of
    "Acme is at risk: …" was "[HIGH] Acme: Acme is at risk: …" and its Slack text "… (Acme): …"."""
    context = template_context((make_alert(title=title),))
    assert render("email_subject", context) == subject
    assert render("slack_text", context).startswith(text)
