"""Block Kit: content, escaping and Slack's limits, for single alerts, digests and every default-pack rule."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.blocks import (
    ACTION_ACK,
    ACTION_NOT_HELPFUL,
    ACTION_SNOOZE,
    MAX_BLOCKS,
    MAX_DIGEST_ALERTS,
    Note,
    annotate_posted,
    build_message,
    clip,
    escape,
)
from alerts.cli.preview import mrkdwn_html
from alerts.formatting import SLACK_LITERAL
from alerts.testing.factories import HOSTILE, build_alert, hostile_alert
from schemas.alert import Alert

DEFAULT_PACK = Path(__file__).resolve().parents[3] / "rules" / "packs" / "default"
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def _texts(node: Any) -> Iterator[str]:
    """Every string in a payload (texts, values, ids) — where a mention could hide."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)
    elif isinstance(node, str):
        yield node


def _mrkdwn_objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every mrkdwn text object of a payload."""
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            yield node
        for value in node.values():
            yield from _mrkdwn_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _mrkdwn_objects(value)


def assert_within_slack_limits(message: dict[str, Any]) -> None:
    """Slack's documented Block Kit limits, checked block by block."""
    blocks = message["blocks"]
    assert message["text"]
    assert len(message["text"]) <= 3000
    assert 1 <= len(blocks) <= MAX_BLOCKS
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert block["text"]["text"].strip()
            assert len(block["text"]["text"]) <= 150
        elif kind == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
        elif kind == "actions":
            assert 1 <= len(block["elements"]) <= 25
            assert len(block["block_id"]) <= 255
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= 75
                assert len(button["action_id"]) <= 255
                assert len(button.get("value", "")) <= 2000
                assert len(button.get("url", "")) <= 3000


# The only tokens we create: the owner's mention, and a formatting character shown as itself.
_OUR_TOKENS = re.compile(r"<@U0JANE01>|" + re.escape(SLACK_LITERAL.format("@")).replace("@", "[*_~`]"))


def assert_no_injection(message: dict[str, Any]) -> None:
    """No raw special mention or link from alert text survives; only the owner mention we create is allowed
    (and the date tokens that show a formatting character as itself)."""
    for text in _texts(message):
        for found in re.findall(r"<[^>]*>", text):
            assert _OUR_TOKENS.fullmatch(found), f"unescaped {found!r} in {text[:80]!r}"


def test_single_alert_has_every_part(make_alert: Callable[..., Alert]) -> None:
    """Header, account context (tier, owner, MRR), evidence, playbook, links and the three buttons."""
    alert = make_alert()
    message = build_message((alert,))
    blocks = message["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": alert.title, "emoji": True}}
    flat = json.dumps(message)
    for expected in (
        "enterprise",
        "<@U0JANE01> (Jane Doe)",
        "$12,500",
        "*Why*: 37 matching events, at or above the threshold of 20",
        "fired Mon 23 Nov 2026, 07:10 CET",
        "*admin*",
    ):
        assert expected in flat
    actions = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [b.get("action_id") for b in actions] == [ACTION_ACK, ACTION_SNOOZE, ACTION_NOT_HELPFUL, "preempt_link_0"]
    value = json.loads(actions[0]["value"])
    assert value == {"alert_id": alert.alert_id, "rule_id": "error-spike", "account_id": "acme"}
    assert actions[3]["url"] == "https://crm.example.com/acme"
    assert message["text"] == (
        "[HIGH] API errors are spiking (Acme): 37 matching events, at or above the threshold of 20"
    )
    assert_within_slack_limits(message)


def test_hostile_text_is_escaped_and_clipped() -> None:
    """Long text full of <!channel> and links stays within limits and is escaped everywhere."""
    message = build_message((hostile_alert(),))
    assert_within_slack_limits(message)
    assert_no_injection(message)
    assert "&lt;!channel&gt;" in message["blocks"][0]["text"]["text"]
    assert "javascript:" not in json.dumps(message)


def test_note_replaces_feedback_buttons(make_alert: Callable[..., Alert]) -> None:
    """An update with a note shows the (escaped) note and drops Acknowledge/Snooze/Not helpful."""
    alert = make_alert()
    message = build_message((alert,), notes={alert.alert_id: "Acknowledged by <!channel> Jane"})
    flat = json.dumps(message)
    assert ACTION_ACK not in flat
    assert "Acknowledged by &lt;!channel&gt; Jane" in flat


def test_digest_groups_alerts_and_caps_them(make_alert: Callable[..., Alert]) -> None:
    """A group becomes one digest: a header with the count and per-alert buttons, capped with a 'more' line."""
    alerts = tuple(make_alert(title=f"alert {i}", severity="low" if i else "critical") for i in range(30))
    message = build_message(alerts)
    assert message["blocks"][0]["text"]["text"] == "30 alerts for Acme"
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    assert len(actions) == MAX_DIGEST_ALERTS
    assert "alert 0" in message["blocks"][2]["text"]["text"]  # critical first
    assert "18 more alerts" in json.dumps(message["blocks"][-1])
    assert_within_slack_limits(message)


def test_hostile_digest_across_accounts() -> None:
    """A digest of many hostile alerts from several accounts stays within limits and escaped."""
    alerts = tuple(hostile_alert(length=5000, account_id=f"acct-{i}") for i in range(60))
    message = build_message(alerts)
    assert message["blocks"][0]["text"]["text"] == "60 alerts for 60 accounts"
    assert_within_slack_limits(message)
    assert_no_injection(message)


def test_overrides_are_escaped(make_alert: Callable[..., Alert]) -> None:
    """Receiver template output (title, text) is escaped like alert text."""
    message = build_message((make_alert(),), title="<!here> " + "x" * 500, text="<!channel> hi")
    assert message["blocks"][0]["text"]["text"].startswith("&lt;!here&gt;")
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    assert message["text"] == "&lt;!channel&gt; hi"


def test_clip_never_cuts_an_entity() -> None:
    """Clipping escaped text never leaves half an &amp; entity."""
    for n in range(5, 40):
        clipped = clip(escape("&" * 50), n)
        assert len(clipped) <= n
        assert re.search(r"&[a-z]*…$", clipped) is None or clipped.endswith(";…")


def test_empty_alert_tuple_is_refused() -> None:
    """build_message needs at least one alert."""
    with pytest.raises(ValueError, match="at least one alert"):
        build_message(())


def _default_pack_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in sorted(p for p in DEFAULT_PACK.rglob("*") if p.suffix in (".yaml", ".yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        rules += data["rules"] if isinstance(data, dict) and "rules" in data else [data]
    return [r for r in rules if isinstance(r, dict) and "id" in r]


def test_every_default_pack_rule_alert_fits_slack() -> None:
    """For every rule in rules/packs/default, an alert with long hostile text is within limits and escaped."""
    rules = _default_pack_rules()
    assert rules, f"no rules found in {DEFAULT_PACK}"
    for rule in rules:
        hostile = (HOSTILE + " ") * 40

        def fill(text: object, hostile: str = hostile) -> str:
            return _PLACEHOLDER.sub(hostile, str(text or ""))

        alert = hostile_alert(
            rule_id=str(rule["id"]),
            kind=str(rule.get("kind", "threshold")),
            severity=rule.get("severity", "medium"),
            priority=int(rule.get("priority", 1)),
            title=fill(rule.get("title", rule["id"])) + hostile,
            playbook=fill(rule.get("playbook", "")) + hostile * 3,
            labels={str(k): str(v) for k, v in (rule.get("labels") or {}).items()},
        )
        for message in (
            build_message((alert,)),
            build_message((alert,) * 20),
            build_message((alert,), notes={alert.alert_id: hostile}),
        ):
            try:
                assert_within_slack_limits(message)
                assert_no_injection(message)
            except AssertionError as exc:
                raise AssertionError(f"rule {rule['id']}: {exc}") from exc


@given(
    title=st.text(max_size=400),
    name=st.text(max_size=400),
    playbook=st.text(max_size=4000),
    label=st.text(max_size=100),
)
@settings(max_examples=150, deadline=None)
def test_any_text_stays_escaped_and_within_limits(title: str, name: str, playbook: str, label: str) -> None:
    """Whatever text an alert carries, no '<' reaches Slack except the owner mention, and limits hold."""
    alert = build_alert(title=title, playbook=playbook, account={"name": name}, labels={"team": label})
    for message in (build_message((alert,)), build_message((alert, alert))):
        assert_within_slack_limits(message)
        assert_no_injection(message)


def test_digest_update_notes_one_alert_and_keeps_the_others_buttons(make_alert: Callable[..., Alert]) -> None:
    """In a digest, a note replaces only its own alert's feedback buttons; a member mention in the note
    stays a mention while everything else in it is escaped."""
    alerts = tuple(make_alert(title=f"alert {i}") for i in range(3))
    message = build_message(alerts, notes={alerts[1].alert_id: Note("Acknowledged <!channel>", by="U0JANE01")})
    assert_within_slack_limits(message)
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    with_feedback = [a["block_id"] for a in actions if any(e["action_id"] == ACTION_ACK for e in a["elements"])]
    assert with_feedback == [f"actions:0:{alerts[0].alert_id}", f"actions:2:{alerts[2].alert_id}"]
    notes = [b for b in message["blocks"] if b["type"] == "context" and "Acknowledged" in json.dumps(b)]
    assert [n["elements"][0]["text"] for n in notes] == ["Acknowledged &lt;!channel&gt; by <@U0JANE01>"]
    by_name = build_message(alerts[:1], notes={alerts[0].alert_id: Note("Acknowledged", by="<!here> Jane")})
    assert "Acknowledged by &lt;!here&gt; Jane" in json.dumps(by_name)


def test_digest_of_several_accounts_has_a_truthful_fallback(make_alert: Callable[..., Alert]) -> None:
    """The notification text of a digest spanning accounts counts the accounts instead of naming the first."""
    alerts = (
        make_alert(title="Acme: a"),
        make_alert(account_id="globex", title="Globex: b", account={"name": "Globex"}),
    )
    message = build_message(alerts)
    assert message["text"] == "2 alerts for 2 accounts: Acme: a; Globex: b"
    assert message["blocks"][0]["text"]["text"] == "2 alerts for 2 accounts"


def test_annotating_a_posted_digest_replaces_only_that_alerts_feedback_buttons(
    make_alert: Callable[..., Alert],
) -> None:
    """From a message's blocks as Slack sends them back, the pressed alert's feedback buttons give way
    to the note (its link buttons stay); the other alerts keep theirs; an alert whose buttons are gone
    (already answered) gives None."""
    alerts = tuple(make_alert(title=f"alert {i}") for i in range(3))
    posted = build_message(alerts)["blocks"]
    annotated = annotate_posted(posted, alerts[1].alert_id, Note("Acknowledged", by="U0JANE01"))
    assert annotated is not None
    assert_within_slack_limits({"text": "x", "blocks": annotated})
    feedback = [
        json.loads(e["value"])["alert_id"]
        for b in annotated
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == ACTION_ACK
    ]
    assert feedback == [alerts[0].alert_id, alerts[2].alert_id]
    assert sum(json.dumps(b).count("Acknowledged by <@U0JANE01>") for b in annotated) == 1
    links = [e for b in annotated if b["type"] == "actions" for e in b["elements"] if "url" in e]
    assert len(links) == 3  # each alert's "Open crm" link stays
    assert annotate_posted(annotated, alerts[1].alert_id, Note("Acknowledged", by="U0JANE01")) is None


def test_times_use_the_owners_timezone_when_the_account_has_none() -> None:
    """Quiet hours fall back to ``account.owner.timezone`` (alerts.dispatch.alert_timezone): the fired
    time a CSM reads must be in that zone too, not UTC."""
    alert = build_alert(account={"timezone": None, "owner": {"name": "Kenji", "timezone": "Asia/Tokyo"}})
    text = json.dumps(build_message((alert,))["blocks"])
    assert "15:10 JST" in text
    assert "06:10 UTC" not in text


def test_an_alert_without_playbook_gets_the_fallback_what_to_do_section() -> None:
    """A Slack message of a rule without a ``playbook`` still has a *What to do* section, naming the rule."""
    blocks = build_message((build_alert(playbook="  "),))["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    what = [t for t in texts if t.startswith("*What to do*")]
    assert len(what) == 1
    assert "No playbook is written for rule `error-spike`" in what[0]


def test_clip_ends_at_a_word_boundary_when_one_is_near() -> None:
    """A long account name in a header is cut after a whole word ("Incorporated …"), not mid-word ("L…")."""
    name = "Consolidated Holdings Company of Greater Regions Incorporated Limited and Partners"
    clipped = clip(name, 64)
    assert clipped == "Consolidated Holdings Company of Greater Regions Incorporated…"
    assert len(clipped) <= 64
    assert clip("x" * 100, 10) == "x" * 9 + "…"  # no space near: a hard cut still keeps the limit


def test_clip_never_leaves_half_a_slack_link_or_mention() -> None:
    """A cut inside ``<https://…|text>`` or ``<@U…>`` drops the unclosed link rather than print a raw ``<``."""
    text = "Call them now, then open <https://crm.example.com/accounts/acme-with-a-long-path|the CRM record> today"
    clipped = clip(text, 60)
    assert "<" not in clipped
    assert clipped == "Call them now, then open…"
    whole = clip(text, len(text) - 3)
    assert "<https://crm.example.com/accounts/acme-with-a-long-path|the CRM record>" in whole


def test_a_one_account_digest_names_the_account_once_per_line() -> None:
    """In a digest of one account the header names it; each alert's line drops the title's "Acme: " prefix."""
    alerts = (
        build_alert(title="Acme: API errors are spiking"),
        build_alert(title="Acme: champion went quiet", severity="low"),
    )
    message = build_message(alerts)
    lines = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]
    assert any("*API errors are spiking*" in line for line in lines)
    assert not any("Acme: " in line for line in lines)
    assert message["text"].count("Acme") == 1, message["text"]


def test_a_digest_of_several_accounts_names_each_account_once_per_line() -> None:
    """A line of a digest across accounts reads "*API errors are spiking* — Acme"; it repeated the name,
    "*Acme: API errors are spiking* — Acme" (a 256-character name twice in one line)."""
    alerts = (
        build_alert(title="Acme: API errors are spiking"),
        build_alert(title="Globex: champion went quiet", account_id="globex", account={"name": "Globex"}),
    )
    lines = [b["text"]["text"] for b in build_message(alerts)["blocks"] if b["type"] == "section" and "text" in b]
    assert any(line.startswith(":large_orange_circle: *API errors are spiking* — Acme\n") for line in lines), lines
    assert any("*champion went quiet* — Globex\n" in line for line in lines), lines
    assert not any("Acme: " in line or "Globex: " in line for line in lines)


def test_a_digest_with_one_alert_over_the_limit_says_one_more_alert() -> None:
    """The digest's overflow line is singular for one: "…and 1 more alert not shown"."""
    alerts = tuple(build_alert() for _ in range(MAX_DIGEST_ALERTS + 1))
    contexts = [b for b in build_message(alerts)["blocks"] if b["type"] == "context"]
    assert contexts[-1]["elements"][0]["text"] == "…and 1 more alert not shown"


def test_a_window_of_one_instant_is_not_shown_as_a_range() -> None:
    """An ``any`` alert's window starts and ends at its event: no "Window: 07:10 → 07:10" line repeating the time."""
    alert = build_alert(kind="any", window={"start": "2026-11-23T06:10:00Z", "end": "2026-11-23T06:10:00Z"})
    texts = [b["text"]["text"] for b in build_message((alert,))["blocks"] if b["type"] == "section" and "text" in b]
    why = next(t for t in texts if t.startswith("*Why*"))
    assert "Window:" not in why
    assert "→" not in why


def test_a_cut_at_a_word_inside_a_link_still_never_leaves_it_open() -> None:
    """The word boundary is found first, then an unclosed link is cut off: a space inside a link's text
    reopened it ("<https://crm.example/a|Reset your…" showed Slack a raw, broken link)."""
    text = "x" * 20 + " <https://crm.example/a|Reset your password>abcdefghijklmnop"
    clipped = clip(text, 70)
    assert clipped == "x" * 20 + "…"
    assert clipped.count("<") == clipped.count(">")


# Names Slack would format: bold, strike, code, italic at word breaks; "Acme_Corp" alone would not.
FORMATTING_NAMES = {
    "account": "Acme_Corp *EU*",
    "owner": "~Legacy~ `ops` _team_",
    "tier": "*gold*",
    "note_by": "_Jane_",
}


def _formatting_alert(account_id: str = "acme", **overrides: Any) -> Alert:
    names = FORMATTING_NAMES
    return build_alert(
        account_id=account_id,
        title=f"{names['account']}: usage dropped",
        account={"name": names["account"], "tier": names["tier"], "owner": {"name": names["owner"], "slack": ""}},
        evidence={"summary": f"no *Invoice Paid* from {names['account']} in 7 days", "sample_event_ids": ["e_1*"]},
        # A playbook template prints names Markdown-escaped (rules/templates.py).
        playbook="Call **Acme\\_Corp \\*EU\\*** about [the *invoice*](https://billing.example.com/_inv_).",
        **overrides,
    )


def _shown(message: dict[str, Any]) -> str:
    """Every mrkdwn text of a message as Slack draws it (the preview's model), one per line."""
    texts: list[str] = []
    for block in message["blocks"]:
        if block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
        elif block["type"] == "section":
            texts += [f["text"] for f in block.get("fields", [])]
            if "text" in block:
                texts.append(block["text"]["text"])
    return "\n".join(str(mrkdwn_html(t)) for t in texts)


def test_names_with_formatting_characters_show_as_typed_in_slack() -> None:
    """An account, owner, tier or person named with *, _, ~ or backticks is drawn as typed — no bold EU, no
    struck "Legacy" — in the account fields, titles, evidence, notes and playbook, of one alert and of
    digests; the header (plain_text, formatted by nobody) and the notification text keep the name as is."""
    names = FORMATTING_NAMES
    alert = _formatting_alert()
    other = _formatting_alert(account_id="other")
    note = Note("Acknowledged", names["note_by"])
    everything = (names["account"], names["owner"], names["tier"], names["note_by"], "no *Invoice Paid* from")
    for message, expected in (
        (build_message((alert,), notes={alert.alert_id: note}), everything),
        (build_message((alert, _formatting_alert()), notes={alert.alert_id: note}), everything),
        # Several accounts: no account fields, each line names its account.
        (build_message((alert, other)), (names["account"], "no *Invoice Paid* from")),
    ):
        shown = _shown(message)
        for name in expected:
            assert html.escape(name, quote=False) in shown, name
        for formatted in ("<b>EU</b>", "<s>Legacy</s>", "<code>ops</code>", "<i>team</i>", "<b>gold</b>"):
            assert formatted not in shown
        assert "<i>Jane</i>" not in shown
        assert "<b>Invoice Paid</b>" not in shown
        assert "Acme_Corp *EU*" in message["text"]
        assert_within_slack_limits(message)
    single = build_message((alert,), notes={alert.alert_id: note})
    shown = _shown(single)
    assert "<code>e_1*</code>" in shown
    assert "Call <b>Acme_Corp *EU*</b> about" in shown  # the playbook's own bold stays bold
    assert '<a href="https://billing.example.com/_inv_">the <i>invoice</i></a>' in shown  # and its link
    assert single["blocks"][0]["text"] == {"type": "plain_text", "text": alert.title, "emoji": True}


def test_a_marker_inside_a_word_is_sent_as_it_is() -> None:
    """Only characters Slack could read as formatting are changed: ``Acme_Corp_Ltd`` goes out as typed."""
    message = build_message((build_alert(account={"name": "Acme_Corp_Ltd"}),))
    assert "*Account*\nAcme_Corp_Ltd (`acme`)" in json.loads(json.dumps(message))["blocks"][2]["fields"][0]["text"]


def test_a_backtick_in_an_id_does_not_end_its_code() -> None:
    """An id shown as code stays one code span whatever it holds: its backtick becomes a look-alike."""
    message = build_message((build_alert(user_id="u`1 *x*"),))
    shown = _shown(message)
    assert "user <code>u\u02cb1 *x*</code>" in shown


def test_a_long_account_name_gives_way_to_the_title_in_the_header() -> None:
    """The header of an alert for an account with a 256-character name keeps what happened and shortens
    the name; it was cut at 150 characters, inside the name ("…Very Long…"), the alert's subject lost."""
    name = ("Very Long Account Name " * 12)[:256]
    cases = ((f"{name}: bank link not verified", None), (None, f"{name}: bank link not verified [gold]"))
    for title, override in cases:
        alert = build_alert(title=title or f"{name}: x", account={"name": name})
        header = build_message((alert,), title=override)["blocks"][0]["text"]["text"]
        assert len(header) <= 150
        assert header.startswith("Very Long Account Name Very Long")
        assert header.endswith("…: bank link not verified" + (" [gold]" if override else ""))


def test_text_that_starts_a_line_with_a_greater_than_sign_is_not_a_slack_quote() -> None:
    """Slack shows a line starting with ">" (even sent as "&gt;") as a block quote: an account named "> VIP",
    an owner's name with "> the boss" on a line of its own and a tier "＞ gold" are shown as typed, a soft
    hyphen before the sign; they were quoted."""
    alert = build_alert(
        title="> VIP: CSAT 1",
        kind="any",
        account={"name": "> VIP", "tier": "\uff1e gold", "owner": {"name": "Ann\n  > the boss"}},
        evidence={"value": "CSAT Answered", "properties": {"comment": "bad\n> quote\n  >> nested"}},
        playbook="Call them.",
    )
    blocks = build_message((alert,))["blocks"]
    # mrkdwn only: the header is plain_text, which Slack never formats
    texts = [str(m["text"]) for m in _mrkdwn_objects(blocks)]
    quoted = [line for t in texts for line in t.split("\n") if line.lstrip(" \t").startswith(("&gt;", "\uff1e"))]
    assert quoted == [], quoted
    joined = "\n".join(texts)
    assert "*Account*\n\u00ad&gt; VIP (`acme`)" in joined
    assert "*Owner*\nAnn\n  \u00ad&gt; the boss" in joined


def _link_urls(message: dict[str, Any]) -> list[str]:
    return [e["url"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if "url" in e]


def test_a_line_break_in_the_account_name_gives_a_one_line_header() -> None:
    """An account name (and title) with line breaks and tabs: the header of a single alert and of a digest is one
    line, the name still shortened as a title prefix."""
    account = {"name": "Acme\nCorp\t EU", "links": {}}
    alert = build_alert(title="Acme\nCorp\t EU: API errors\r\nare spiking", account=account)
    header = build_message((alert,))["blocks"][0]["text"]["text"]
    assert header == "Acme Corp EU: API errors are spiking"
    other = build_alert(title="second", account=account)
    digest = build_message((alert, other))["blocks"][0]["text"]["text"]
    assert "\n" not in digest
    assert "\t" not in digest
    assert digest == "2 alerts for Acme Corp EU"


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("https://crm.example.com/acme", "https://crm.example.com/acme"),
        ("https://crm.example.com/a b?q=<x>&n=1", "https://crm.example.com/a%20b?q=%3Cx%3E&n=1"),
        (" HTTPS://crm.example.com/Zürich#tab 2 ", "https://crm.example.com/Z%C3%BCrich#tab%202"),
        ("https://crm.example.com/already%20escaped/100%", "https://crm.example.com/already%20escaped/100%25"),
        ("http://bücher.example:8443/x", "http://xn--bcher-kva.example:8443/x"),
    ],
)
def test_link_button_urls_are_percent_encoded(raw: str, url: str) -> None:
    """A CRM link with spaces, ``<``, ``>`` or non-ASCII letters goes into the button percent-encoded."""
    alert = build_alert(account={"name": "Acme", "links": {"crm": raw}})
    assert _link_urls(build_message((alert,))) == [url]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("javascript:alert(1)", "not an http(s) URL"),
        ("crm.example.com/acme", "not an http(s) URL"),
        ("https://", "no host"),
        ("https://crm example.com/x", "invalid host"),
        ("https://user:pw@crm.example.com/", "credentials in the URL"),
        ("https://crm.example.com:http/", "not a URL"),
        ("https://crm.example.com/" + "x" * 3001, "longer than 3000 characters"),
    ],
)
def test_a_link_that_is_no_valid_http_url_drops_its_button_with_a_logged_reason(raw: str, why: str) -> None:
    """The button is left out (the rest of the message stays), with a WARNING naming the link and why, counted."""
    from prometheus_client import REGISTRY
    from structlog.testing import capture_logs

    def dropped() -> float:
        return REGISTRY.get_sample_value("preempt_notifier_fallbacks_total", {"reason": "invalid_link"}) or 0.0

    before = dropped()
    alert = build_alert(account={"name": "Acme", "links": {"crm": raw, "admin": "https://admin.example.com/"}})
    with capture_logs() as logs:
        message = build_message((alert,))
    assert _link_urls(message) == ["https://admin.example.com/"]
    assert [(e["event"], e["link"], e["reason"]) for e in logs if e["log_level"] == "warning"] == [
        ("account link button left out", "crm", why)
    ]
    assert dropped() == before + 1


def test_the_fallback_of_a_title_that_starts_with_the_account_names_it_once(make_alert: Callable[..., Alert]) -> None:
    """The notification text of "Acme is at risk: …" read "[CRITICAL] Acme is at risk: … (Acme): …", the name twice."""
    alert = make_alert(title="Acme is at risk: usage fell", account={"name": "Acme"}, severity="critical")
    assert build_message((alert,))["text"].startswith("[CRITICAL] Acme is at risk: usage fell: ")
    other = make_alert(title="Acme: usage fell", account={"name": "Acme"}, severity="high")
    assert build_message((other,))["text"].startswith("[HIGH] usage fell (Acme): ")
