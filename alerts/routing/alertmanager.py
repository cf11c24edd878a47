"""Routing files written for Alertmanager: what loads as it is, and what Preempt says it does not support.

Called by ``RoutingConfig.load`` on the raw YAML before validation. Where the concepts match it
rewrites Alertmanager's spelling into Preempt's (the deprecated ``match``/``match_re`` maps and
their inhibit-rule cousins become matchers; a Slack ``api_url`` is the ``webhook_url``; a silence as
Alertmanager's API gives it — ``startsAt``, ``endsAt``, ``createdBy``, ``comment``, matcher objects — is
Preempt's silence). Every
key Preempt does not support is removed and reported with a sentence saying why and what to do
instead, so ``preempt routes check`` names it rather than answering "extra inputs are not permitted".
"""

from __future__ import annotations

import re
from typing import Any

# Keys that exist in Alertmanager's configuration and not in Preempt's, by where they appear.
UNSUPPORTED_TOP: dict[str, str] = {
    "global": "Preempt takes Slack and SMTP settings from PREEMPT_* variables (PREEMPT_SLACK_BOT_TOKEN, "
    "PREEMPT_SMTP_HOST…); remove the global section",
    "templates": "Preempt templates are written inline in each receiver (title, text, subject, html); "
    "template files are not loaded",
    "time_intervals": "Preempt has quiet_hours in the account owner's timezone instead of named time intervals",
    "mute_time_intervals": "Preempt has quiet_hours in the account owner's timezone instead of named time intervals",
    "tracing": "Preempt does not export traces",
}
UNSUPPORTED_ROUTE: dict[str, str] = {
    "mute_time_intervals": "use the file's quiet_hours (in the owner's timezone) or a silence instead",
    "active_time_intervals": "use the file's quiet_hours (in the owner's timezone) instead",
}
_INTEGRATIONS = (
    "webhook",
    "pagerduty",
    "opsgenie",
    "victorops",
    "pushover",
    "wechat",
    "sns",
    "telegram",
    "webex",
    "msteams",
    "msteamsv2",
    "discord",
    "jira",
    "rocketchat",
    "incidentio",
)
UNSUPPORTED_RECEIVER: dict[str, str] = {
    f"{name}_configs": "Preempt delivers to Slack (slack_configs), email (email_configs) and the console "
    "(console_configs) only"
    for name in _INTEGRATIONS
}
_NO_RESOLVE = "Preempt alerts are interventions and never resolve; remove it"
UNSUPPORTED_SLACK: dict[str, str] = {
    "send_resolved": _NO_RESOLVE,
    "http_config": "Preempt's Slack client has no per-receiver HTTP settings",
    "api_url_file": "give the webhook as webhook_url, or PREEMPT_SLACK_WEBHOOK_URL",
    "username": "the Slack app's own name is used",
    "icon_emoji": "the Slack app's own icon is used",
    "icon_url": "the Slack app's own icon is used",
    "color": "Preempt's Block Kit messages set their own layout",
    "fields": "Preempt's Block Kit messages carry the account, evidence and playbook",
    "actions": "Preempt adds its own buttons (Acknowledge, Snooze 7d, Not helpful)",
    "pretext": "use title or text",
    "footer": "use title or text",
    "fallback": "use text (the plain-text fallback)",
    "callback_id": "Preempt adds its own buttons",
    "short_fields": "Preempt's Block Kit messages set their own layout",
    "link_names": "Preempt's Block Kit messages set their own layout",
    "mrkdwn_in": "Preempt's Block Kit messages set their own layout",
    "image_url": "Preempt's Block Kit messages set their own layout",
    "thumb_url": "Preempt's Block Kit messages set their own layout",
    "title_link": "Preempt links the account's CRM and admin pages itself",
}
UNSUPPORTED_EMAIL: dict[str, str] = {
    "send_resolved": _NO_RESOLVE,
    "smarthost": "the SMTP server comes from PREEMPT_SMTP_HOST and PREEMPT_SMTP_PORT",
    "hello": "the SMTP client's own HELO name is used",
    "auth_username": "use PREEMPT_SMTP_USERNAME",
    "auth_password": "use PREEMPT_SMTP_PASSWORD",
    "auth_password_file": "use PREEMPT_SMTP_PASSWORD",
    "auth_secret": "use PREEMPT_SMTP_PASSWORD",
    "auth_identity": "use PREEMPT_SMTP_USERNAME",
    "require_tls": "use PREEMPT_SMTP_STARTTLS or PREEMPT_SMTP_USE_TLS",
    "tls_config": "use PREEMPT_SMTP_CA_FILE",
    "headers": "Preempt sets the headers (use subject for the subject)",
}

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _quote(value: object) -> str:
    # YAML's true/false as written (and as a rule's labels hold them), not Python's True/False
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _matchers_from_maps(node: dict[str, Any], exact: str, regex: str, target: str, where: str, out: list[str]) -> None:
    """Alertmanager's deprecated ``match``/``match_re`` maps → matcher strings appended to ``target``."""
    converted: list[str] = []
    for key, op in ((exact, "="), (regex, "=~")):
        if key not in node:
            continue
        value = node.pop(key)
        if not isinstance(value, dict):
            out.append(f"{where}.{key}: must be a mapping of label to value, as in Alertmanager")
            continue
        for name, text in value.items():
            if not isinstance(name, str) or not _LABEL_NAME.match(name):
                out.append(f"{where}.{key}: {name!r} is not a label name")
                continue
            converted.append(f"{name}{op}{_quote(text)}")
    if converted:
        existing = node.get(target)
        existing = [existing] if isinstance(existing, str) else list(existing or [])
        node[target] = [*existing, *converted]


def _drop(node: dict[str, Any], table: dict[str, str], where: str, out: list[str]) -> None:
    for key in [k for k in node if k in table]:
        node.pop(key)
        out.append(f"{f'{where}.' if where else ''}{key}: Alertmanager's {key} is not supported: {table[key]}")


def _route(node: object, where: str, out: list[str]) -> None:
    if not isinstance(node, dict):
        return
    _drop(node, UNSUPPORTED_ROUTE, where, out)
    _matchers_from_maps(node, "match", "match_re", "matchers", where, out)
    children = node.get("routes")
    if isinstance(children, list):
        for index, child in enumerate(children):
            _route(child, f"{where}.routes[{index}]", out)


def _receiver(node: object, where: str, out: list[str]) -> None:
    if not isinstance(node, dict):
        return
    _drop(node, UNSUPPORTED_RECEIVER, where, out)
    for kind, table in (("slack_configs", UNSUPPORTED_SLACK), ("email_configs", UNSUPPORTED_EMAIL)):
        configs = node.get(kind)
        if not isinstance(configs, list):
            continue
        for index, config in enumerate(configs):
            if not isinstance(config, dict):
                continue
            here = f"{where}.{kind}[{index}]"
            if kind == "slack_configs" and "api_url" in config:
                if "webhook_url" in config:
                    out.append(f"{here}.api_url: give the webhook once, as webhook_url")
                config["webhook_url"] = config.pop("api_url")  # Alertmanager's name for the same URL
            _drop(config, table, here, out)


# A silence as Alertmanager's API and ``amtool silence query -o json`` give it → Preempt's keys.
SILENCE_KEYS: dict[str, str] = {
    "startsAt": "starts_at",
    "endsAt": "ends_at",
    "createdBy": "created_by",
    "comment": "reason",
}


def _silence(node: object, where: str, out: list[str]) -> None:
    """An Alertmanager silence (camelCase keys, matcher objects) → Preempt's silence, in place."""
    if not isinstance(node, dict):
        return
    for theirs, ours in SILENCE_KEYS.items():
        if theirs not in node:
            continue
        value = node.pop(theirs)
        if ours in node:
            out.append(f"{where}.{theirs}: give the {ours.replace('_', ' ')} once, as {ours} (Alertmanager's {theirs})")
        else:
            node[ours] = value
    matchers = node.get("matchers")
    if not isinstance(matchers, list):
        return
    converted: list[object] = []
    for matcher in matchers:
        if not isinstance(matcher, dict):
            converted.append(matcher)
            continue
        name, value = matcher.get("name"), matcher.get("value")
        if not isinstance(name, str) or value is None or set(matcher) - {"name", "value", "isRegex", "isEqual"}:
            converted.append(matcher)  # left for the matcher's own check to name (alerts.routing.config)
            continue
        op = (
            ("=~" if matcher.get("isRegex") else "=")
            if matcher.get("isEqual", True)
            else ("!~" if matcher.get("isRegex") else "!=")
        )
        converted.append(f"{name}{op}{_quote(value)}")
    node["matchers"] = converted


def translate(data: dict[str, Any]) -> list[str]:
    """Rewrite Alertmanager spellings in ``data`` (in place); return one problem per unsupported key."""
    problems: list[str] = []
    _drop(data, UNSUPPORTED_TOP, "", problems)
    _route(data.get("route"), "route", problems)
    receivers = data.get("receivers")
    if isinstance(receivers, list):
        for index, receiver in enumerate(receivers):
            _receiver(receiver, f"receivers[{index}]", problems)
    rules = data.get("inhibit_rules")
    if isinstance(rules, list):
        for index, rule in enumerate(rules):
            if isinstance(rule, dict):
                where = f"inhibit_rules[{index}]"
                _matchers_from_maps(rule, "source_match", "source_match_re", "source_matchers", where, problems)
                _matchers_from_maps(rule, "target_match", "target_match_re", "target_matchers", where, problems)
    silences = data.get("silences")
    if isinstance(silences, list):
        for index, silence in enumerate(silences):
            _silence(silence, f"silences[{index}]", problems)
    return problems
