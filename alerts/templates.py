"""Message templates rendered in Jinja2's sandbox; receivers may override any of them.

Called by the channels (Slack, email, console) for every notification. A template that fails to
render — a bad override, a missing field, a sandbox violation — is logged and replaced by the
built-in default, so a template error never stops a notification (and never crashes the notifier).
HTML is rendered in a separate autoescaping environment, so account or event text cannot inject markup.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from schemas.alert import SEVERITY_ORDER, Alert
from schemas.logs import get_logger
from schemas.metrics import NOTIFIER_FALLBACKS

log = get_logger(__name__)

DEFAULT_TEMPLATES: dict[str, str] = {
    "slack_title": (
        "{% if count > 1 %}{{ count }} alerts for {{ account.name or alert.account_id }}"
        "{% else %}{{ alert.title }}{% endif %}"
    ),
    "slack_text": (
        "[{{ severity|upper }}] {% if count > 1 %}{{ count }} alerts for {{ account.name or alert.account_id }}: "
        "{% for a in alerts %}{{ a.title }}{% if not loop.last %}; {% endif %}{% endfor %}"
        "{% else %}{{ alert.title }} ({{ account.name or alert.account_id }}){% endif %}"
    ),
    "email_subject": (
        "{% set who = account.name or alert.account_id %}[{{ severity|upper }}] {{ who }}: "
        "{% if count > 1 %}{{ count }} alerts{% else %}{{ alert.title|strip_prefix(who ~ ': ') }}{% endif %}"
    ),
    "email_text": """\
{% for a in alerts %}{% if count > 1 %}{{ loop.index }}. {% endif %}{{ a.title }}
Severity: {{ a.severity }}  Priority: {{ a.priority }}  Rule: {{ a.rule_id }}
Account: {{ a.account.name or a.account_id }} ({{ a.account_id }})\
{% if a.account.tier %}, tier {{ a.account.tier }}{% endif %}\
{% if a.account.mrr is not none %}, MRR {{ a.account.mrr|money }}{% endif %}
{% if a.account.owner.name or a.account.owner.email %}Owner: {{ a.account.owner.name or '' }} \
{{ a.account.owner.email or '' }}
{% endif %}Fired at: {{ a.fired_at }}
Evidence: {{ a.evidence|evidence }}
{% if a.playbook %}
What to do:
{{ a.playbook }}
{% endif %}{% for k, v in a.account.links.items() %}{{ k }}: {{ v }}
{% endfor %}
{% endfor %}-- Preempt
""",
    "email_html": """\
<!DOCTYPE html>
<html><body style="font-family: sans-serif">
{% for a in alerts %}
<h2>{{ a.title }}</h2>
<p><strong>{{ a.severity|upper }}</strong> &middot; priority {{ a.priority }} &middot; \
rule <code>{{ a.rule_id }}</code></p>
<table>
<tr><th align="left">Account</th><td>{{ a.account.name or a.account_id }} ({{ a.account_id }})</td></tr>
{% if a.account.tier %}<tr><th align="left">Tier</th><td>{{ a.account.tier }}</td></tr>{% endif %}
{% if a.account.mrr is not none %}<tr><th align="left">MRR</th><td>{{ a.account.mrr|money }}</td></tr>{% endif %}
{% if a.account.owner.name or a.account.owner.email %}<tr><th align="left">Owner</th>
<td>{{ a.account.owner.name or '' }} {{ a.account.owner.email or '' }}</td></tr>{% endif %}
<tr><th align="left">Fired at</th><td>{{ a.fired_at }}</td></tr>
<tr><th align="left">Evidence</th><td>{{ a.evidence|evidence }}</td></tr>
</table>
{% if a.playbook %}<h3>What to do</h3><pre style="white-space: pre-wrap">{{ a.playbook }}</pre>{% endif %}
{% for k, v in a.account.links.items() %}<p><a href="{{ v|safe_url }}">{{ k }}</a></p>{% endfor %}
{% if not loop.last %}<hr>{% endif %}
{% endfor %}
<p style="color: #888">Preempt</p>
</body></html>
""",
    "console_text": """\
{% for a in alerts %}[{{ a.severity|upper }}] {{ a.title }}
  account: {{ a.account.name or a.account_id }} ({{ a.account_id }})\
{% if a.account.tier %} tier={{ a.account.tier }}{% endif %}\
{% if a.account.owner.email %} owner={{ a.account.owner.email }}{% endif %}
  rule: {{ a.rule_id }} ({{ a.kind }})  fired_at: {{ a.fired_at }}  alert_id: {{ a.alert_id }}
  evidence: {{ a.evidence|evidence }}
{% if a.playbook %}  playbook: {{ a.playbook|replace('\n', '\n            ') }}
{% endif %}{% endfor %}""",
}


def money(value: Any) -> str:
    """``12500.0`` → ``$12,500`` (MRR in the account's billing currency, shown as dollars)."""
    try:
        return f"${float(value):,.0f}"
    except (TypeError, ValueError):
        return str(value)


def evidence_summary(evidence: Any) -> str:
    """One line: ``count = 37 (threshold 20, baseline 4.5)``."""
    if not isinstance(evidence, dict):
        return str(evidence)
    if evidence.get("value") is None:
        return "see the alert"
    measure = evidence.get("measure") or "value"
    text = f"{measure} = {evidence['value']}"
    extras = [f"{k} {evidence[k]}" for k in ("threshold", "baseline") if evidence.get(k) is not None]
    return f"{text} ({', '.join(extras)})" if extras else text


def strip_prefix(value: Any, prefix: str) -> str:
    """``Acme: API errors`` without ``Acme: `` — titles often repeat the account name a subject already has."""
    text = str(value)
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text


def safe_url(value: Any) -> str:
    """The link when it is http(s) or mailto, else ``#`` (no ``javascript:`` links from account data)."""
    text = str(value).strip()
    return text if text.lower().startswith(("https://", "http://", "mailto:")) else "#"


def _environment(html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=html, keep_trailing_newline=True)
    env.filters["money"] = money
    env.filters["evidence"] = evidence_summary
    env.filters["strip_prefix"] = strip_prefix
    env.filters["safe_url"] = safe_url
    return env


_TEXT_ENV = _environment(html=False)
_HTML_ENV = _environment(html=True)


@lru_cache(maxsize=512)
def _compile(source: str, html: bool) -> Template:
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def check_template(source: str) -> None:
    """Raise ``ValueError`` when ``source`` is not valid Jinja2 (used when the routing file loads)."""
    try:
        _compile(source, False)
    except TemplateError as exc:
        raise ValueError(f"invalid template: {exc}") from None


def template_context(alerts: tuple[Alert, ...]) -> dict[str, Any]:
    """What every template sees: ``alert`` (the first), ``alerts``, ``account``, ``count``, ``severity`` (highest)."""
    dumped = [a.model_dump(mode="json") for a in alerts]
    first = dumped[0] if dumped else {}
    highest = min((a.severity for a in alerts), key=lambda s: SEVERITY_ORDER[s], default="info")
    account = dict(first.get("account") or {})
    account.setdefault("account_id", first.get("account_id"))
    account["account_id"] = first.get("account_id")
    return {"alert": first, "alerts": dumped, "account": account, "count": len(dumped), "severity": highest}


def render(name: str, context: dict[str, Any], override: str | None = None, *, html: bool = False) -> str:
    """Render the ``override`` template (or the default called ``name``); never raises.

    A failing override falls back to the default; a failing default yields an empty string.
    Both failures are logged with the template name (never the context, which may be large).
    """
    for source, what in ((override, "override"), (DEFAULT_TEMPLATES.get(name), "default")):
        if source is None:
            continue
        try:
            return _compile(source, html).render(context)
        except Exception as exc:  # noqa: BLE001 — any template failure falls back, by contract
            NOTIFIER_FALLBACKS.labels(reason="template_error").inc()
            log.warning("template_failed", template=name, which=what, error=f"{type(exc).__name__}: {exc}")
    return ""
