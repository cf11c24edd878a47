"""The notifier's formatting layer: what every channel (Slack, email text and HTML, console) shows.

Numbers, money, durations, times and people come from schemas/formatting.py (shared with the rule
engine); this module adds what only the channels need: the alert's evidence as a sentence, times
in the account owner's timezone, and the playbook's Markdown turned into Slack mrkdwn, safe HTML
or plain text (no ``**`` left in a console or a plain email). ``FILTERS`` exposes all of it to
the message templates (alerts/templates.py) under the names docs/notifications.md lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from markupsafe import Markup

from schemas import formatting
from schemas.alert import Alert

# html=False: raw HTML in a playbook is shown as text, never interpreted (account data may be in it).
_MD = MarkdownIt("commonmark", {"html": False})
_SAFE_SCHEMES = ("https://", "http://", "mailto:")


# Unicode's bidirectional embeddings, overrides and isolates (LRE RLE PDF LRO RLO, LRI RLI FSI PDI). An
# account or user text holding an unclosed RLO (U+202E) turned the rest of its line around in Slack and
# email clients: "(Acme\u202e): 3 matching events" showed as "(Acme stneve gnihctam 3 :)". No text of
# ours uses them, and right-to-left names (Hebrew, Arabic) show right to left without them.
# Control characters other than tab and line breaks (C0, DEL, C1) go too: account or event text holding a
# NUL, an ESC sequence or a BEL went raw into an email's Subject header and its "7bit" text part (RFC 5322
# and RFC 2045 forbid NUL there) and into the console's terminal, where ESC sequences recolour or clear it.
_BIDI_CONTROLS = dict.fromkeys(
    [
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        *(c for c in range(0x20) if chr(c) not in "\t\n\r"),
        *range(0x7F, 0xA0),
    ]
)


def without_bidi_controls(text: str) -> str:
    """``text`` without bidirectional embedding, override and isolate characters (marks such as U+200F stay)
    and without control characters other than tab, line feed and carriage return."""
    return text.translate(_BIDI_CONTROLS)


def slack_escape(text: object) -> str:
    """Slack's three control characters as entities: ``&`` ``<`` ``>``."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Slack mrkdwn has no escape character: an account called "Acme *EU*" was shown "Acme EU" with EU in bold
# (``~Legacy~`` struck through, a backtick opened code). A zero-width space does not help: Slack takes it
# for a word break, so one next to a marker makes formatting *more* likely (the trick Slack formatters use
# to force bold inside a word). What Slack shows as typed is the fallback of a date token whose format it
# cannot read: each marker that could open or close formatting is sent as such a token, and shows as
# itself. A marker between two letters or digits (``Acme_Corp``) opens and closes nothing and is sent as is.
_SLACK_MARKERS = frozenset("*_~`")
SLACK_LITERAL = "<!date^00000000^{{_}}|{}>"
# Where a token cannot go (inside a link's label, which Slack parses as one ``<…>``): a look-alike.
_SLACK_LOOKALIKES = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})


def _word_char(char: str) -> bool:
    # ASCII only: whether Slack counts an accented letter as part of a word is not known, so a marker
    # next to one is broken (harmless) rather than trusted (a name shown in bold).
    return char.isascii() and char.isalnum()


# Slack reads a ">" (sent as &gt;) or a fullwidth "＞" at the start of a line as a block quote, escaped or
# not: text that starts a line with one is shown as a quote. A soft hyphen (U+00AD, invisible) before it
# keeps it a character; it is put where the text starts too, which may be the start of a line of the message.
_LINE_START_QUOTE = re.compile(r"(^|\n)([ \t]*)(&gt;|\uff1e)")


def _no_quote(escaped: str) -> str:
    return _LINE_START_QUOTE.sub("\\1\\2\u00ad\\3", escaped)


def slack_literal(text: object, *, in_link: bool = False) -> str:
    """``text`` as Slack mrkdwn that shows it as typed: escaped (``&<>``), and every ``*``, ``_``, ``~`` or
    backtick that Slack could read as formatting sent so that it shows as itself. For account, user and
    event text in mrkdwn (never in ``plain_text``, where Slack formats nothing). ``in_link``: for a link's
    label, where those characters become look-alikes (∗ ˍ ∼ ˋ)."""
    raw = str(text)
    if not _SLACK_MARKERS.intersection(raw):
        return _no_quote(slack_escape(raw))
    if in_link:
        return _no_quote(slack_escape(raw.translate(_SLACK_LOOKALIKES)))
    out: list[str] = []
    last = 0
    for url in _URL.finditer(raw):  # Slack links a URL as it is: a token inside it would cut the link
        out.append(_literal_words(raw[last : url.start()]))
        out.append(slack_escape(url.group()))
        last = url.end()
    out.append(_literal_words(raw[last:]))
    return _no_quote("".join(out))


_URL = re.compile(r"\b(?:https?://|mailto:)[^\s<>]+", re.IGNORECASE)


def _literal_words(raw: str) -> str:
    out: list[str] = []
    for index, char in enumerate(raw):
        if char not in _SLACK_MARKERS:
            out.append(slack_escape(char))
            continue
        before = raw[index - 1] if index else ""
        after = raw[index + 1] if index + 1 < len(raw) else ""
        inside_a_word = char != "`" and _word_char(before) and _word_char(after)
        out.append(char if inside_a_word else SLACK_LITERAL.format(char))
    return "".join(out)


def slack_code(text: object) -> str:
    """``text`` as Slack inline code: backticks around it, escaped; a backtick inside (which would end the
    code early) becomes a look-alike. Nothing else inside code is formatted."""
    return "`" + slack_escape(str(text).replace("`", "\u02cb")) + "`"


def _safe_href(href: object) -> str | None:
    text = str(href or "").strip()
    return text if text.lower().startswith(_SAFE_SCHEMES) else None


def _inline(node: SyntaxTreeNode, slack: bool, in_link: bool = False) -> str:
    # Text the Markdown parser left as text is literal: in Slack its *, _, ~ and ` must not format.
    out: list[str] = []
    for child in node.children:
        kind = child.type
        if kind == "text":
            out.append(slack_literal(child.content, in_link=in_link) if slack else child.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "strong":
            inner = _inline(child, slack, in_link)
            out.append(f"*{inner}*" if slack and inner.strip() else inner)
        elif kind == "em":
            inner = _inline(child, slack, in_link)
            out.append(f"_{inner}_" if slack and inner.strip() else inner)
        elif kind == "code_inline":
            out.append(slack_code(child.content) if slack else child.content)
        elif kind == "link":
            href = _safe_href(child.attrs.get("href"))
            label = _inline(child, False)
            if href is None or label == href:  # an unsafe link's label, or a bare URL (Slack links it)
                out.append(_inline(child, slack, in_link))
            elif slack:
                out.append(f"<{slack_escape(href)}|{_inline(child, slack, in_link=True)}>")
            else:
                out.append(f"{label} ({href})")
        elif child.children:
            out.append(_inline(child, slack, in_link))
        else:
            out.append(slack_literal(child.content, in_link=in_link) if slack else child.content)
    return "".join(out)


def _blocks(node: SyntaxTreeNode, slack: bool) -> list[str]:
    parts: list[str] = []
    for child in node.children:
        kind = child.type
        if kind in ("paragraph", "heading"):
            text = _inline(child.children[0], slack) if child.children else ""
            parts.append(f"*{text}*" if kind == "heading" and slack else text)
        elif kind in ("bullet_list", "ordered_list"):
            start = int(str(child.attrs.get("start", 1)))
            items = []
            for index, item in enumerate(child.children):
                marker = f"{start + index}. " if kind == "ordered_list" else "• "
                lines = "\n".join(_blocks(item, slack)).split("\n")
                items.append(marker + lines[0] + "".join(f"\n{' ' * len(marker)}{line}" for line in lines[1:]))
            parts.append("\n".join(items))
        elif kind in ("fence", "code_block"):
            body = child.content.rstrip("\n")
            parts.append(f"```\n{slack_escape(body)}\n```" if slack else body)
        elif kind == "blockquote":
            inner = "\n\n".join(_blocks(child, slack)).split("\n")
            parts.append("\n".join(f"> {line}" if slack else f"  {line}" for line in inner))
        elif kind == "hr":
            parts.append("———")
        else:
            parts.append(slack_escape(child.content) if slack else child.content)
    return parts


def markdown_text(source: Any) -> str:
    """Markdown as plain text: ``**bold**`` loses its stars, lists keep their numbers and indentation."""
    text = "" if source is None else str(source)
    if not text.strip():
        return ""
    return "\n\n".join(p for p in _blocks(SyntaxTreeNode(_MD.parse(text)), slack=False) if p.strip())


def markdown_mrkdwn(source: Any) -> str:
    """Markdown as Slack mrkdwn (``*bold*``, ``_em_``, ``<url|text>``), every other ``&<>`` escaped."""
    text = "" if source is None else str(source)
    if not text.strip():
        return ""
    return "\n\n".join(p for p in _blocks(SyntaxTreeNode(_MD.parse(text)), slack=True) if p.strip())


def markdown_html(source: Any) -> Markup:
    """Markdown as HTML for email; raw HTML in the source is escaped, links are http(s)/mailto only."""
    text = "" if source is None else str(source)
    return Markup(_MD.render(text))  # noqa: S704 — markdown-it escapes every text (html=False)


def _as_dict(alert: Any) -> dict[str, Any]:
    if isinstance(alert, Alert):
        return alert.model_dump(mode="json")
    return dict(alert) if isinstance(alert, Mapping) else {}


def evidence_text(alert: Any) -> str:
    """Why the alert fired, as a sentence: the rule's ``summary`` when it wrote one, else built per kind.

    Takes an ``Alert`` or its JSON dict; a bare evidence dict (older templates: ``a.evidence|evidence``)
    gets the generic sentence.
    """
    data = _as_dict(alert)
    if "evidence" not in data or not isinstance(data.get("evidence"), Mapping):
        return formatting.evidence_sentence("", data)
    account = data.get("account") if isinstance(data.get("account"), Mapping) else {}
    owner = (account or {}).get("owner")
    # The account's zone, else its owner's (AlertAccount.local_timezone; a dict may come from a template).
    zone = (account or {}).get("timezone") or (owner.get("timezone") if isinstance(owner, Mapping) else None)
    return formatting.evidence_sentence(str(data.get("kind") or ""), data["evidence"], timezone=zone or None)


def account_name(alert: Any) -> str:
    """The account's name, or its id when the account is unknown (never "None")."""
    data = _as_dict(alert)
    account = data.get("account") if isinstance(data.get("account"), Mapping) else {}
    return str((account or {}).get("name") or data.get("account_id") or "unknown account")


# What a message says to do when its rule has no playbook: a CSM still gets a next step, and the gap
# is named so that CS ops can close it (rule authors may leave `playbook` out; docs/rules.md).
PLAYBOOK_FALLBACK = (
    "No playbook is written for rule `{rule_id}` yet: check the evidence above with the account's "
    "contacts, decide the next step, and ask CS ops to add a playbook to the rule."
)


def playbook(alert: Any) -> str:
    """The alert's playbook (Markdown), or the fallback next step naming the rule when it has none."""
    data = _as_dict(alert)
    written = str(data.get("playbook") or "").strip()
    return written or PLAYBOOK_FALLBACK.format(rule_id=data.get("rule_id") or "unknown")


# The least of an account's name a shortened title keeps, so that it still says whose alert it is.
_NAME_KEPT = 24


def clip_words(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters with ``…``: after a whole word when one ends within the
    last third of the limit. Plain text only (Slack text is clipped by alerts.blocks.clip, which knows links)."""
    if len(text) <= limit:
        return text
    if limit < 1:
        return ""
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if not text[len(cut)].isspace() and space > (limit * 2) // 3:
        cut = cut[:space]
    return cut.rstrip() + "…"


def short_title(title: str, name: str, limit: int) -> str:
    """``title`` in at most ``limit`` characters, giving up the account's name before what happened.

    Titles start with the account's name (``{{ account.name }}: …``), and names may be 256 characters
    long: cut at the end, a Slack header or an email subject showed only the name and lost what the
    alert is about. When the title starts with ``name: ``, the name is shortened (to no less than
    ``_NAME_KEPT`` characters) and the rest kept; any other title is cut at the end.
    """
    if len(title) <= limit:
        return title
    prefix = f"{name}: " if name else ""
    if not prefix or not title.startswith(prefix):
        return clip_words(title, limit)
    rest = title[len(prefix) :]
    budget = max(_NAME_KEPT, limit - len(rest) - 2)
    return clip_words(f"{clip_words(name, budget)}: {rest}", limit)


def link_name(key: Any) -> str:
    """An account link's key as words a CSM reads: ``crm`` → ``CRM``, ``billing_portal`` → ``billing portal``.

    A short key of letters is an acronym (CRM, ERP); longer ones are words (``admin``, ``hubspot``).
    """
    raw = str(key).strip()
    if raw.isalpha() and len(raw) <= 3:
        return raw.upper()
    return formatting.label(raw)


def owner_text(owner: Any, fallback: str = formatting.OWNER_FALLBACK) -> str:
    """The account owner by name with their role: ``Dana Whitfield (account owner)``, else ``fallback``."""
    return formatting.person(owner, "account owner", fallback)


FILTERS: dict[str, Any] = {
    **formatting.TEMPLATE_FILTERS,
    "owner": owner_text,
    "evidence": evidence_text,
    "account_name": account_name,
    "playbook": playbook,
    "link_name": link_name,
    "plain": markdown_text,
    "mrkdwn": markdown_mrkdwn,
    "markdown_html": markdown_html,
}
"""Every formatting filter the message templates can use (docs/notifications.md#formatting-filters)."""
