"""Slack Block Kit messages for alerts and digests, always inside Slack's limits and always escaped.

``build_message`` is called by the Slack channel for every post and update. Every piece of event or
account text is escaped (``&``, ``<``, ``>``), so an account called ``<!channel>`` can neither ping a
channel nor inject a link; the only mention we create is the owner's, from a validated member id. In
mrkdwn, that text also keeps its ``*``, ``_``, ``~`` and backticks from formatting (``literal``: an
account called ``Acme *EU*`` shows its stars, not a bold "EU"); ``plain_text`` (the header, buttons)
and the notification text are formatted by nobody and only escaped.
Limits (https://api.slack.com/reference/block-kit/blocks): ≤ 50 blocks, header ≤ 150 characters,
section text ≤ 3,000, section field ≤ 2,000, button text ≤ 75, button value ≤ 2,000, ≤ 10 context elements.
A header is one line (``one_line``: an account name with a line break gave a header of two lines), and a link
button's ``url`` is a valid http(s) URL (``button_url``): Slack refuses a whole message whose block holds an
invalid one (a CRM link with a space or ``<``), so such a URL is percent-encoded, and one that cannot be made
valid (another scheme, no host) drops its button, logged and counted (``invalid_link``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from alerts.formatting import (
    account_name,
    evidence_text,
    link_name,
    markdown_mrkdwn,
    playbook,
    short_title,
    slack_code,
    slack_escape,
    slack_literal,
    without_bidi_controls,
)
from alerts.templates import name_aside
from schemas import formatting
from schemas.alert import SEVERITY_ORDER, Alert
from streams.runtime.logs import get_logger
from streams.runtime.metrics import NOTIFIER_FALLBACKS

log = get_logger(__name__)

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_URL = 3000
MAX_FALLBACK = 3000
MAX_DIGEST_ALERTS = 12  # ≤ 3 blocks each (section, note, actions) + header, account and overflow: 39 ≤ 50

ACTION_ACK = "preempt_ack"
ACTION_SNOOZE = "preempt_snooze_7d"
ACTION_NOT_HELPFUL = "preempt_not_helpful"
FEEDBACK_ACTION_IDS = frozenset({ACTION_ACK, ACTION_SNOOZE, ACTION_NOT_HELPFUL})

SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":large_blue_circle:",
    "info": ":white_circle:",
}
_MEMBER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")
_WORD_BOUNDARY_REACH = 30  # how many characters a cut may give up to end after a whole word
# What a URL's path, query and fragment keep as they are (RFC 3986's reserved and unreserved characters, and
# "%" of an existing escape); every other character (a space, "<", ">", '"', a non-ASCII letter) is escaped.
_URL_KEEP = "/:@!$&'()*+,;=-._~?%"
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST = re.compile(r"^[A-Za-z0-9.\-]+$")


def escape(text: object) -> str:
    """Slack's three control characters as entities: ``&`` ``<`` ``>``."""
    return slack_escape(text)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis: after a whole word when one ends near the
    limit, never inside an ``&amp;``-style entity nor inside a ``<url|text>`` link or ``<@U…>`` mention."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if not text[len(cut)].isspace():
        # "…Incorporated L…" reads as a typo: end at the last word when it is close enough.
        space = max(cut.rfind(" "), cut.rfind("\n"))
        if space > 0 and len(cut) - space <= _WORD_BOUNDARY_REACH:
            cut = cut[:space]
    # After the word boundary (a space can lie inside a link's text): text is escaped before it is
    # clipped, so a "<" is always the start of our own link or mention, and one cut before its ">"
    # would show Slack a raw, broken "<https://…".
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    cut = _ENTITY_TAIL.sub("", cut)
    return cut.rstrip() + "…"


def safe(text: object, limit: int) -> str:
    """Escape, then clip: the form every piece of alert text takes in ``plain_text`` (headers, buttons)
    and in the notification text."""
    return clip(escape(text), limit)


def literal(text: object, limit: int) -> str:
    """Escape, keep Slack from formatting it (``Acme *EU*`` shows its stars), then clip: the form account,
    user and event text takes in mrkdwn (``alerts.formatting.slack_literal``)."""
    return clip(slack_literal(text), limit)


def code(text: object, limit: int) -> str:
    """An id as inline code (a backtick in it cannot end the code early), clipped inside the backticks."""
    return "`" + clip(slack_code(text)[1:-1], limit) + "`"


def one_line(text: str) -> str:
    """``text`` on one line: each run of white space (line breaks, tabs, U+2028) as one space. Slack shows a
    header's line breaks, so an account name with one gave a header of two lines."""
    return " ".join(text.split())


def button_url(raw: object) -> tuple[str | None, str]:
    """``(url, "")`` for a link button, percent-encoded where Slack would refuse it (a space, ``<``, ``>``,
    a non-ASCII letter), or ``(None, why)`` when no valid http(s) URL can be made of it."""
    text = str(raw or "").strip()
    if not text:
        return None, "empty"
    try:
        parts = urlsplit(text)
        port = parts.port  # raises for a port that is not a number
    except ValueError:
        return None, "not a URL"
    if parts.scheme.lower() not in ("http", "https"):
        return None, "not an http(s) URL"
    host = parts.hostname or ""
    if not host:
        return None, "no host"
    if not _HOST.match(host):
        try:
            host = host.encode("idna").decode("ascii")  # a non-ASCII host in its ASCII form
        except UnicodeError:
            return None, "invalid host"
        if not _HOST.match(host):
            return None, "invalid host"
    netloc = host + (f":{port}" if port is not None else "")
    if parts.username is not None or parts.password is not None:
        return None, "credentials in the URL"
    encoded = [quote(_STRAY_PERCENT.sub("%25", piece), safe=_URL_KEEP) for piece in (parts.path, parts.query)]
    fragment = quote(_STRAY_PERCENT.sub("%25", parts.fragment), safe=_URL_KEEP)
    url = urlunsplit((parts.scheme.lower(), netloc, encoded[0], encoded[1], fragment))
    if len(url) > MAX_URL:
        return None, f"longer than {MAX_URL} characters"
    return url, ""


def _plain(text: str) -> dict[str, Any]:
    # Slack refuses empty plain_text; an alert with a blank title still needs a header.
    return {"type": "plain_text", "text": text if text.strip() else "Preempt alert", "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _owner(alert: Alert) -> str | None:
    owner = alert.account.owner
    slack = str(owner.get("slack") or "")
    name = owner.get("name") or owner.get("email")
    if _MEMBER_ID.match(slack):
        # The one mention we create on purpose: the account owner, from a validated member id.
        return f"<@{slack}>" + (f" ({literal(name, 200)})" if name else "")
    return literal(name, 300) if name else None


def _user(alert: Alert) -> str:
    # a per-user rule's alert is about one user of the account: say whom (the title may not)
    return f" · user {code(alert.user_id, 300)}" if alert.user_id else ""


def _account_fields(alert: Alert) -> list[dict[str, Any]]:
    acc = alert.account
    account_id = code(alert.account_id, 300)
    who = f"{literal(acc.name, 500)} ({account_id})" if acc.name else account_id
    fields = [_mrkdwn(f"*Account*\n{who}")]
    if acc.tier:
        fields.append(_mrkdwn(f"*Tier*\n{literal(acc.tier, 200)}"))
    owner = _owner(alert)
    if owner:
        fields.append(_mrkdwn(f"*Owner*\n{owner}"))
    if not owner:
        fields.append(_mrkdwn("*Owner*\nnone on record"))
    if acc.mrr is not None:
        fields.append(_mrkdwn(f"*MRR*\n{safe(formatting.money(acc.mrr), 100)}"))
    return fields


def _when(alert: Alert, value: str | None) -> str:
    # Times in the account's (else its owner's) timezone, as quiet hours read it; UTC when unknown or invalid.
    return formatting.datetime_text(value, alert.account.local_timezone) if value else "…"


def _headline(alert: Alert) -> str:
    emoji = SEVERITY_EMOJI.get(alert.severity, "")
    return (
        f"{emoji} *{alert.severity.upper()}* · priority {alert.priority} · rule {code(alert.rule_id, 200)}"
        f"{_user(alert)} · fired {safe(_when(alert, alert.fired_at), 64)}"
    )


def _evidence(alert: Alert) -> str:
    ev = alert.evidence
    lines = [f"*Why*: {slack_literal(evidence_text(alert))}"]
    # A window of one instant (an ``any`` alert's event) is the fired time the context line already shows.
    if (alert.window.start or alert.window.end) and alert.window.start != alert.window.end:
        lines.append(f"Window: {escape(_when(alert, alert.window.start))} → {escape(_when(alert, alert.window.end))}")
    if ev.sample_event_ids:
        shown = ", ".join(slack_code(e) for e in ev.sample_event_ids[:5])
        more = f" and {len(ev.sample_event_ids) - 5} more" if len(ev.sample_event_ids) > 5 else ""
        lines.append(f"Sample events: {shown}{more}")
    return clip("\n".join(lines), MAX_SECTION_TEXT)


def _playbook(alert: Alert) -> str:
    # The playbook's Markdown as Slack mrkdwn (**bold** → *bold*, links → <url|text>), escaped.
    return clip(f"*What to do*\n{markdown_mrkdwn(playbook(alert))}", MAX_SECTION_TEXT)


def _action_value(alert: Alert) -> str:
    ids = {"alert_id": alert.alert_id, "rule_id": alert.rule_id, "account_id": alert.account_id}
    value = json.dumps(ids, separators=(",", ":"))
    if len(value) > MAX_BUTTON_VALUE:  # absurdly long ids: keep the JSON valid, shorten each id
        value = json.dumps({k: v[:600] for k, v in ids.items()}, separators=(",", ":"))
    return value


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": _plain(clip(text, MAX_BUTTON_TEXT)),
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _link_buttons(alert: Alert) -> list[dict[str, Any]]:
    buttons = []
    for i, (label, raw) in enumerate(sorted(alert.account.links.items())):
        url, why = button_url(raw)
        if url is None:
            NOTIFIER_FALLBACKS.labels(reason="invalid_link").inc()
            log.warning(
                "account link button left out", alert_id=alert.alert_id, link=one_line(str(label))[:100], reason=why
            )
            continue
        buttons.append(
            {
                "type": "button",
                "text": _plain(clip(f"Open {escape(one_line(link_name(label)))}", MAX_BUTTON_TEXT)),
                "action_id": f"preempt_link_{i}",
                "url": url,
            }
        )
    return buttons[:5]


def _actions(alert: Alert, index: int, *, feedback: bool) -> dict[str, Any] | None:
    value = _action_value(alert)
    elements = (
        [
            _button("Acknowledge", ACTION_ACK, value, "primary"),
            _button("Snooze 7d", ACTION_SNOOZE, value),
            _button("Not helpful", ACTION_NOT_HELPFUL, value),
        ]
        if feedback
        else []
    )
    elements += _link_buttons(alert)
    if not elements:
        return None
    # block_id must be unique in a message, even if a group carried the same alert twice.
    return {"type": "actions", "block_id": clip(f"actions:{index}:{alert.alert_id}", 255), "elements": elements}


def _line_title(alert: Alert, one_account: bool) -> str:
    # A digest of one account names it in its header: its lines drop the "Acme: " most titles start with.
    if not one_account:
        return alert.title
    short = alert.title.removeprefix(f"{alert.account.name or alert.account_id}: ")
    return short if short.strip() else alert.title


def _fallback(alerts: tuple[Alert, ...], text: str | None) -> str:
    if text is not None and text.strip():
        return safe(text, MAX_FALLBACK)
    first = alerts[0]
    who = first.account.name or first.account_id
    accounts = len({a.account_id for a in alerts})
    if len(alerts) == 1:
        body = f"[{first.severity.upper()}] {name_aside(first.title, who)}: {evidence_text(first)}"
    else:
        whom = f"{accounts} accounts" if accounts > 1 else who
        ordered = sorted(alerts, key=lambda a: (SEVERITY_ORDER[a.severity], a.priority, a.fired_at))
        body = f"{len(alerts)} alerts for {whom}: " + "; ".join(_line_title(a, accounts == 1) for a in ordered)
    return safe(body, MAX_FALLBACK) if body.strip() else "Preempt alert"


@dataclass(frozen=True, slots=True)
class Note:
    """What replaces an alert's feedback buttons after a press: ``text`` ("Acknowledged") and who (``by``)."""

    text: str
    by: str | None = None

    def __str__(self) -> str:
        who = f"<@{self.by}>" if self.by and _MEMBER_ID.match(self.by) else (self.by or "someone")
        return f"{self.text} by {who}"


def _note_block(note: Note | str) -> dict[str, Any]:
    # Escaped like all text; ``by`` becomes a mention when it is a member id (Slack shows the person's
    # name; a validated member id can neither broadcast nor link).
    if isinstance(note, str):
        text = literal(note, MAX_SECTION_TEXT)
    else:
        who = f"<@{note.by}>" if note.by and _MEMBER_ID.match(note.by) else literal(note.by or "someone", 300)
        text = f"{literal(note.text, MAX_SECTION_TEXT - 400)} by {who}"
    return {"type": "context", "elements": [_mrkdwn(text)]}


def _header_title(alert: Alert, title: str | None) -> str:
    # One line, the name as the title shows it: "Acme\nCorp: …" starts with the one-line name "Acme Corp".
    return short_title(one_line(title if title is not None else alert.title), one_line(account_name(alert)), MAX_HEADER)


def _single(alert: Alert, title: str | None, note: Note | str | None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        # A long account name gives way before what happened (the title usually starts with the name).
        {"type": "header", "text": _plain(safe(_header_title(alert, title), MAX_HEADER))},
        {"type": "context", "elements": [_mrkdwn(clip(_headline(alert), MAX_SECTION_TEXT))]},
        {"type": "section", "fields": [_mrkdwn(clip(f["text"], MAX_FIELD_TEXT)) for f in _account_fields(alert)]},
        {"type": "section", "text": _mrkdwn(_evidence(alert))},
    ]
    blocks.append({"type": "section", "text": _mrkdwn(_playbook(alert))})
    if note:
        blocks.append(_note_block(note))
    actions = _actions(alert, 0, feedback=note is None)
    if actions:
        blocks.append(actions)
    return blocks


def _digest(alerts: tuple[Alert, ...], title: str | None, notes: Mapping[str, Note | str]) -> list[dict[str, Any]]:
    first = alerts[0]
    accounts = {a.account_id for a in alerts}
    who = first.account.name or first.account_id
    heading = title if title is not None else (f"{len(alerts)} alerts for {who}" if len(accounts) == 1 else None)
    heading = heading if heading is not None else f"{len(alerts)} alerts for {len(accounts)} accounts"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(safe(one_line(heading), MAX_HEADER))}]
    if len(accounts) == 1:
        blocks.append(
            {"type": "section", "fields": [_mrkdwn(clip(f["text"], MAX_FIELD_TEXT)) for f in _account_fields(first)]}
        )
    ordered = sorted(alerts, key=lambda a: (SEVERITY_ORDER[a.severity], a.priority, a.fired_at))
    one_account = len(accounts) == 1
    for index, alert in enumerate(ordered[:MAX_DIGEST_ALERTS]):
        account = "" if one_account else f" — {literal(alert.account.name or alert.account_id, 300)}"
        text = (
            # The line names its account (after the title, or in the header): the title's "Acme: " is dropped.
            f"{SEVERITY_EMOJI.get(alert.severity, '')} *{literal(_line_title(alert, True), 1000)}*{account}\n"
            f"{alert.severity.upper()} · rule {code(alert.rule_id, 200)}{_user(alert)} "
            f"· fired {safe(_when(alert, alert.fired_at), 64)}\n"
            f"{slack_literal(evidence_text(alert))}"
        )
        blocks.append({"type": "section", "text": _mrkdwn(clip(text, MAX_SECTION_TEXT))})
        note = notes.get(alert.alert_id)
        if note:
            blocks.append(_note_block(note))
        actions = _actions(alert, index, feedback=not note)
        if actions:
            blocks.append(actions)
    if len(ordered) > MAX_DIGEST_ALERTS:
        more = len(ordered) - MAX_DIGEST_ALERTS
        shown = f"…and {more} more alert{'s' if more != 1 else ''} not shown"
        blocks.append({"type": "context", "elements": [_mrkdwn(shown)]})
    return blocks


def _presses(block: Mapping[str, Any], alert_id: str) -> bool:
    """True for an actions block holding a feedback button of ``alert_id``."""
    for element in block.get("elements") or ():
        if isinstance(element, Mapping) and element.get("action_id") in FEEDBACK_ACTION_IDS:
            try:
                if json.loads(str(element.get("value")))["alert_id"] == alert_id:
                    return True
            except (ValueError, KeyError, TypeError):
                continue
    return False


def annotate_posted(blocks: list[Any], alert_id: str, note: Note | str) -> list[Any] | None:
    """The blocks of a message as Slack shows it, with ``alert_id``'s feedback buttons replaced by
    ``note`` (its link buttons and the message's other alerts unchanged); None when no block holds
    that alert's buttons (already answered, or not our message).

    Used to update a message this process did not post (another replica, or before a restart).
    """
    out: list[Any] = []
    found = False
    for block in blocks:
        if isinstance(block, Mapping) and block.get("type") == "actions" and _presses(block, alert_id):
            found = True
            out.append(_note_block(note))
            kept = [
                e
                for e in block.get("elements") or ()
                if not (isinstance(e, Mapping) and e.get("action_id") in FEEDBACK_ACTION_IDS)
            ]
            if kept:
                out.append({**block, "elements": kept})
        else:
            out.append(block)
    return out[:MAX_BLOCKS] if found else None


def build_message(
    alerts: tuple[Alert, ...],
    *,
    title: str | None = None,
    text: str | None = None,
    notes: Mapping[str, Note | str] | None = None,
) -> dict[str, Any]:
    """``{"text": fallback, "blocks": [...]}`` for one alert or a digest of several.

    ``title`` and ``text`` are receiver template overrides (already rendered, escaped here).
    ``notes`` (alert id → a ``Note`` such as "Acknowledged" by U0JANE01, or text; escaped) replace
    those alerts' feedback buttons — used for ``chat.update``; the other alerts of a digest keep theirs.
    """
    if not alerts:
        raise ValueError("build_message needs at least one alert")
    notes = notes or {}
    blocks = (
        _single(alerts[0], title, notes.get(alerts[0].alert_id)) if len(alerts) == 1 else _digest(alerts, title, notes)
    )
    if len(blocks) > MAX_BLOCKS:  # unreachable by construction; a guard so a future change cannot break Slack
        blocks = [*blocks[: MAX_BLOCKS - 1], {"type": "context", "elements": [_mrkdwn("(message shortened)")]}]
    message: dict[str, Any] = _in_reading_order({"text": _fallback(alerts, text), "blocks": blocks})
    return message


def _in_reading_order(node: Any) -> Any:
    # Every text of the message without bidi overrides: account or event text cannot turn a line around.
    if isinstance(node, str):
        return without_bidi_controls(node)
    if isinstance(node, dict):
        return {key: _in_reading_order(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_in_reading_order(value) for value in node]
    return node
