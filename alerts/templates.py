"""Message templates rendered in Jinja2's sandbox (schemas/template_sandbox.py: loop steps,
value sizes, work and output bounded per rendering); receivers may override any of them.

Called by the channels (Slack, email, console) for every notification. A template that fails to
render — a bad override, a missing field, a sandbox violation — is logged and replaced by the
built-in default, so a template error never stops a notification (and never crashes the notifier).
HTML is rendered in a separate autoescaping environment, so account or event text cannot inject markup.
Every template sees the formatting filters of alerts/formatting.py (``number``, ``money``, ``duration``,
``datetime``, ``person``, ``evidence``, ``plain``…); a missing value prints as nothing, never "None".
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateError

from alerts.formatting import FILTERS, without_bidi_controls
from schemas.alert import SEVERITY_ORDER, Alert
from schemas.template_sandbox import BoundedSandbox, TemplateLimitError
from streams.runtime.logs import get_logger
from streams.runtime.metrics import NOTIFIER_FALLBACKS

log = get_logger(__name__)

DEFAULT_TEMPLATES: dict[str, str] = {
    "slack_title": (
        "{% if count > 1 %}{{ count }} alerts for "
        "{% if accounts > 1 %}{{ accounts }} accounts{% else %}{{ alert|account_name }}{% endif %}"
        "{% else %}{{ alert.title }}{% endif %}"
    ),
    "slack_text": (
        "[{{ severity|upper }}] {% if count > 1 %}{{ count }} alerts for "
        "{% if accounts > 1 %}{{ accounts }} accounts{% else %}{{ alert|account_name }}{% endif %}: "
        "{% for a in alerts %}{{ a.title|strip_prefix((a|account_name) ~ ': ') if accounts == 1 else a.title }}"
        "{% if not loop.last %}; {% endif %}{% endfor %}"
        "{% else %}{{ alert.title|name_aside(alert|account_name) }}: "
        "{{ alert|evidence }}{% endif %}"
    ),
    "email_subject": (
        "{% set who = alert|account_name %}[{{ severity|upper }}] "
        "{% if accounts > 1 %}{{ count }} alerts for {{ accounts }} accounts"
        "{% elif count > 1 %}{{ who }}: {{ count }} alerts"
        "{% else %}{{ alert.title|named(who) }}{% endif %}"
    ),
    "email_text": """\
{% for a in alerts %}{% set tz = a.account.timezone %}{% if count > 1 %}{{ loop.index }}. {% endif %}{{ a.title }}
{{ a|evidence }}

Account: {{ a|account_name }}{% if a.account.name %} ({{ a.account_id }}){% endif %}\
{% set facts = a.account|facts %}{% if facts %}, {{ facts }}{% endif %}
Owner: {{ a.account.owner|owner('none on record') }}\
{% if a.account.owner.email and a.account.owner.name %} <{{ a.account.owner.email }}>{% endif %}
{% if a.user_id %}User: {{ a.user_id }}
{% endif %}Severity: {{ a.severity }}, priority {{ a.priority }}, rule {{ a.rule_id }}
Fired: {{ a.fired_at|datetime(tz) }}

What to do:
{{ a|playbook|plain }}
{% for k, v in a.account.links.items() %}{% if v|safe_url != '#' %}{% set name = k|link_name %}\
{{ name[:1]|upper }}{{ name[1:] }}: {{ v }}
{% endif %}{% endfor %}
{% endfor %}-- Preempt
""",
    "email_html": """\
<!DOCTYPE html>
<html><body style="font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; color: #1d1c1d">
{% for a in alerts %}{% set tz = a.account.timezone %}
<h2 style="margin-bottom: 4px">{{ a.title }}</h2>
<p style="font-size: 15px; margin-top: 0"><strong>{{ a|evidence }}</strong></p>
<table style="border-collapse: collapse">
<tr><th align="left" style="padding-right: 12px">Account</th><td>{{ a|account_name }}\
{% if a.account.name %} ({{ a.account_id }}){% endif %}</td></tr>
{% set facts = a.account|facts %}{% if facts %}<tr><th align="left">Plan</th><td>{{ facts }}</td></tr>{% endif %}
<tr><th align="left">Owner</th><td>{{ a.account.owner|owner('none on record') }}\
{% if a.account.owner.email and a.account.owner.name %} &lt;{{ a.account.owner.email }}&gt;{% endif %}</td></tr>
{% if a.user_id %}<tr><th align="left">User</th><td>{{ a.user_id }}</td></tr>{% endif %}
<tr><th align="left">Severity</th>\
<td>{{ a.severity|upper }}, priority {{ a.priority }}, rule <code>{{ a.rule_id }}</code></td></tr>
<tr><th align="left">Fired</th><td>{{ a.fired_at|datetime(tz) }}</td></tr>
</table>
<h3>What to do</h3>{{ a|playbook|markdown_html }}
{% for k, v in a.account.links.items() %}{% if v|safe_url != '#' %}\
<p><a href="{{ v|safe_url }}">Open {{ k|link_name }}</a></p>{% endif %}{% endfor %}
{% if not loop.last %}<hr>{% endif %}
{% endfor %}
<p style="color: #888">Preempt</p>
</body></html>
""",
    "console_text": """\
{% for a in alerts %}{% set tz = a.account.timezone %}[{{ a.severity|upper }}] {{ a.title }}
  why:      {{ a|evidence }}
  account:  {{ a|account_name }}{% if a.account.name %} ({{ a.account_id }}){% endif %}\
{% set facts = a.account|facts %}{% if facts %}, {{ facts }}{% endif %}
  owner:    {{ a.account.owner|owner('none on record') }}
{% if a.user_id %}  user:     {{ a.user_id }}
{% endif %}  fired:    {{ a.fired_at|datetime(tz) }}  rule: {{ a.rule_id }} ({{ a.kind }})  alert_id: {{ a.alert_id }}
  playbook: {{ a|playbook|plain|indent(12) }}
{% endfor %}""",
}


def strip_prefix(value: Any, prefix: str) -> str:
    """``Acme: API errors`` without ``Acme: `` — titles often repeat the account name a subject already has."""
    text = str(value)
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text


def _starts_with_name(title: str, name: str) -> bool:
    # "Acme is at risk" names Acme; "Acmes are…" or "Acme2: …" do not (the name must end at a word's end).
    return bool(name) and title.startswith(name) and not title[len(name) : len(name) + 1].isalnum()


def named(value: Any, name: str) -> str:
    """The title with the account's name in front, unless the title already starts with it.

    ``Acme: API errors`` and ``Acme is at risk: …`` stay as they are (a subject that put ``Acme: `` before
    them read ``Acme: Acme is at risk: …``); ``API errors`` becomes ``Acme: API errors``.
    """
    text = str(value)
    return text if _starts_with_name(text, name) else f"{name}: {text}" if name else text


def name_aside(value: Any, name: str) -> str:
    """The title with the account's name after it, said once: ``API errors (Acme)`` for ``Acme: API errors``
    and for ``API errors``; ``Acme is at risk: …`` as it is (not ``Acme is at risk: … (Acme)``)."""
    text = str(value)
    if not name:
        return text
    if text.startswith(f"{name}: "):
        return f"{text[len(name) + 2 :]} ({name})"
    return text if _starts_with_name(text, name) else f"{text} ({name})"


def safe_url(value: Any) -> str:
    """The link when it is http(s) or mailto, else ``#`` (no ``javascript:`` links from account data)."""
    text = str(value).strip()
    return text if text.lower().startswith(("https://", "http://", "mailto:")) else "#"


def _none_as_empty(value: Any) -> Any:
    # A missing field prints as nothing, never as "None".
    return "" if value is None else value


def _environment(html: bool) -> BoundedSandbox:
    env = BoundedSandbox(
        undefined=ChainableUndefined, autoescape=html, keep_trailing_newline=True, finalize=_none_as_empty
    )
    env.filters.update(FILTERS)
    env.filters["strip_prefix"] = strip_prefix
    env.filters["named"] = named
    env.filters["name_aside"] = name_aside
    env.filters["safe_url"] = safe_url
    return env


_TEXT_ENV = _environment(html=False)
_HTML_ENV = _environment(html=True)


@lru_cache(maxsize=512)
def _compile(source: str, html: bool) -> Template:
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


# ``{{ .CommonLabels.x }}``, ``{{ range .Alerts }}``, ``{{- template "x" . }}``: Go's text/template,
# as Alertmanager configs are written.
_GO_TEMPLATE = re.compile(r"\{\{-?\s*(\.|range\s+\.|template\s|define\s|if\s+\.|with\s+\.)")


def check_template(source: str) -> None:
    """Raise ``ValueError`` when ``source`` is not valid Jinja2 (used when the routing file loads)."""
    try:
        _compile(source, False)
    except TemplateError as exc:
        if _GO_TEMPLATE.search(source):
            raise ValueError(
                "an Alertmanager (Go) template is not supported: Preempt templates are Jinja2, e.g. "
                "'{{ alert.title }}' or '{% for a in alerts %}{{ a.title }}{% endfor %}' (docs/notifications.md)"
            ) from None
        raise ValueError(f"invalid template: {exc}") from None


def template_context(alerts: tuple[Alert, ...]) -> dict[str, Any]:
    """What every template sees: ``alerts`` most severe first (then by priority), as in a Slack digest;
    ``alert`` (the first of them), ``account`` (its account), ``count``, ``accounts`` (how many distinct
    accounts: a group by owner or team spans several), ``severity`` (highest)."""
    ordered = sorted(alerts, key=lambda a: (SEVERITY_ORDER[a.severity], a.priority))  # stable: ties keep arrival
    dumped = [a.model_dump(mode="json") for a in ordered]
    for a, data in zip(ordered, dumped, strict=True):
        # Times show in the zone quiet hours use: the account's, else its owner's.
        data["account"]["timezone"] = a.account.local_timezone
    first = dumped[0] if dumped else {}
    highest = min((a.severity for a in alerts), key=lambda s: SEVERITY_ORDER[s], default="info")
    account = dict(first.get("account") or {})
    account.setdefault("account_id", first.get("account_id"))
    account["account_id"] = first.get("account_id")
    return {
        "alert": first,
        "alerts": dumped,
        "account": account,
        "count": len(dumped),
        "accounts": len({a.account_id for a in alerts}),
        "severity": highest,
    }


def render(
    name: str, context: dict[str, Any], override: str | None = None, *, html: bool = False, divisible: bool = False
) -> str:
    """Render the ``override`` template (or the default called ``name``); never raises, unless ``divisible``.

    A failing override falls back to the default, and so does one of a template that has a default (a subject,
    title or text, not a recipient or channel) that renders blank; a failing default yields an empty string.
    Both failures are logged with the template name (never the context, which may be large).
    ``divisible`` is for a caller that can render fewer alerts instead (the email digests): a default
    that passes a sandbox limit then raises ``TemplateLimitError`` rather than rendering empty.
    """
    for source, what in ((override, "override"), (DEFAULT_TEMPLATES.get(name), "default")):
        if source is None:
            continue
        try:
            # Every message a template makes (email, console, Slack overrides) is shown in reading order.
            rendered = without_bidi_controls(_compile(source, html).render(context))
        except Exception as exc:  # any template failure falls back, by contract (re-raised: checked above)
            if divisible and what == "default" and isinstance(exc, TemplateLimitError):
                raise
            NOTIFIER_FALLBACKS.labels(reason="template_error").inc()
            log.warning("template_failed", template=name, which=what, error=f"{type(exc).__name__}: {exc}")
            continue
        if what == "override" and name in DEFAULT_TEMPLATES and not rendered.strip():
            # A subject, title or text made only of fields this alert lacks ({{ account.owner.name }}, no owner):
            # the default says what the alert is, where a blank subject or a "Preempt alert" header would not.
            NOTIFIER_FALLBACKS.labels(reason="template_empty").inc()
            log.warning("template_rendered_empty", template=name, which=what)
            continue
        return rendered
    return ""
