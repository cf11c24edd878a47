"""``preempt alerts preview`` — what each receiver of a routing file would send for one alert.

The alert comes from a JSON file, stdin (``-``) or a backtest's JSONL (``--alert-id`` / ``--index``).
Each receiver the alert routes to renders it with the channels' own code (alerts/channels: the
Slack Block Kit message, the email's subject, text and HTML parts, the console text) — there is
no second renderer, so the preview is exactly what would be sent. ``--html`` writes a page that
shows every message side by side: Slack blocks drawn roughly as Slack shows them, the email's
HTML part in an iframe, text in ``<pre>``. Nothing is sent and no broker, SMTP server or Slack
token is needed.
"""

from __future__ import annotations

import html
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from jinja2 import Environment
from markupsafe import Markup
from pydantic import ValidationError

from alerts.channels.base import Notification
from alerts.channels.console import ConsoleNotifier
from alerts.channels.email import EmailNotifier
from alerts.channels.slack import render_channel, render_message
from alerts.cli import logs_to_stderr
from alerts.formatting import evidence_text
from alerts.routing.config import RoutingConfig
from alerts.routing.tree import RoutingTree
from schemas.alert import Alert
from schemas.error_text import first_problem, unreadable
from schemas.errors import ConfigError
from schemas.formatting import plural
from schemas.jsonl import read_lines
from streams.runtime.output_files import STDOUT_REFUSED, clobbering
from streams.runtime.settings import Settings

EXAMPLE_ROUTES = Path(__file__).resolve().parents[2] / "deploy" / "routes.example.yaml"


class PreviewError(click.ClickException):
    """One clear line on stderr and exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.message}", err=True)


@dataclass
class Rendered:
    """One message as one channel of one receiver would send it."""

    receiver: str
    channel: str  # "slack" | "email" | "console"
    destination: str
    slack: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    html: str = ""


def _alert_from(value: object, where: str) -> Alert:
    try:
        return Alert.model_validate(value)
    except ValidationError as exc:
        raise PreviewError(f"{where}: not an alert ({first_problem(exc.errors(), 'alert')})") from None


def load_alert(source: str, alert_id: str | None, index: int | None) -> Alert:
    """The alert in ``source`` (a JSON file, ``-`` for stdin, or JSONL with ``alert_id``/``index``)."""
    try:
        raw = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8-sig")
        raw = raw.removeprefix("\ufeff")  # a byte-order mark (Windows editors) is not part of the JSON
    except FileNotFoundError:
        raise PreviewError(
            f"{source}: no such file; give an alert JSON file, a backtest JSONL or - for stdin"
        ) from None
    except IsADirectoryError:
        raise PreviewError(f"{source}: is a folder; give an alert JSON file, a backtest JSONL or - for stdin") from None
    except UnicodeDecodeError as exc:
        raise PreviewError(
            f"{source}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); "
            "a compressed file? decompress it first (gzip -dk FILE)"
        ) from None
    except OSError as exc:
        raise PreviewError(f"{source}: cannot read it ({unreadable(exc)})") from None
    name = "stdin" if source == "-" else source
    if not raw.strip():
        raise PreviewError(f"{name}: empty; expected an alert JSON object or a backtest's alerts JSONL")
    try:
        whole = json.loads(raw)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and alert_id is None and index is None:
        return _alert_from(whole, name)
    # Lines as in every JSONL file (a U+2028 inside a JSON string does not end a line); one indented alert
    # is one record, not lines of one (the reader refuses a document spread over lines).
    lines = (
        [(1, raw)]
        if isinstance(whole, dict)
        else [
            (line.number, line.raw.decode("utf-8", "surrogateescape"))
            for line in read_lines(
                io.BytesIO(raw.encode("utf-8", "surrogateescape")), name="<stdin>" if source == "-" else source
            )
        ]
    )
    records: list[tuple[int, dict[str, Any]]] = []
    for number, line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PreviewError(f"{name} line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise PreviewError(f"{name} line {number}: expected an alert object, got {type(value).__name__}")
        records.append((number, value))
    if alert_id is not None:
        for number, value in records:
            if value.get("alert_id") == alert_id:
                return _alert_from(value, f"{name} line {number}")
        raise PreviewError(f"{name}: no alert with alert_id {alert_id} among its {plural(len(records), 'alert')}")
    if index is not None:
        if not 1 <= index <= len(records):
            raise PreviewError(
                f"{name}: --index {index} is out of range; it holds {plural(len(records), 'alert')} (1–{len(records)})"
            )
        number, value = records[index - 1]
        return _alert_from(value, f"{name} line {number}")
    if len(records) == 1:
        return _alert_from(records[0][1], name)
    raise PreviewError(f"{name}: {len(records)} alerts; choose one with --alert-id ID or --index N (1–{len(records)})")


def load_routes(path: Path | None) -> tuple[RoutingConfig, Path]:
    """The routing file: ``path``, else PREEMPT_ROUTES_PATH, else deploy/routes.example.yaml."""
    chosen = path or Settings().routes_path or EXAMPLE_ROUTES
    try:
        present = chosen.exists()
    except OSError:  # in a folder this user may not enter: loading it says so, naming the file
        present = True
    if not present:
        raise PreviewError(f"{chosen}: no such routing file; give --routes PATH or set PREEMPT_ROUTES_PATH")
    try:
        return RoutingConfig.load(chosen), chosen
    except ConfigError as exc:
        raise PreviewError(str(exc).splitlines()[0]) from None


def render_all(alert: Alert, config: RoutingConfig, settings: Settings, only: tuple[str, ...] = ()) -> list[Rendered]:
    """Every message each receiver the alert routes to (or each of ``only``) would send, by the channels' own code."""
    tree = RoutingTree(config)
    receivers = {r.name: r for r in config.receivers}
    only = tuple(dict.fromkeys(only))  # a receiver named twice is still one receiver
    unknown = [name for name in only if name not in receivers]
    if unknown:
        raise PreviewError(f"no receiver {', '.join(unknown)} in the routing file; it has {', '.join(receivers)}")
    alerts = (alert,)
    out: list[Rendered] = []
    matches = tree.match(alert)
    targets = (
        [(name, next((m for m in matches if m.receiver == name), None)) for name in only]
        if only
        else [(m.receiver, m) for i, m in enumerate(matches) if m.receiver not in {n.receiver for n in matches[:i]}]
    )  # routed: each receiver once, with its first route (the notifier sends once per receiver)
    for name, match in targets:
        receiver = receivers.get(name)
        if receiver is None:
            continue
        group_key = tree.group_key(alert, match) if match is not None else f"preview:{alert.account_id}"
        for slack in receiver.slack_configs:
            if slack.webhook_url is not None or not slack.channel:
                destination = "incoming webhook"
            else:
                target = render_channel(slack, alerts)
                destination = (
                    f"channel {target}"
                    if target
                    else "no channel: the channel template rendered empty (the message would not be sent)"
                )
            out.append(Rendered(name, "slack", destination, slack=render_message(slack, alerts)))
        for email in receiver.email_configs:
            notifier = EmailNotifier(email, settings, receiver=name)
            recipients = notifier.recipients(alert)
            message = notifier.build(alerts, recipients, group_key)
            parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
            headers = {k: str(message[k]) for k in ("Subject", "From", "To")}
            destination = ", ".join(recipients) or "no valid recipient (the message would not be sent)"
            out.append(
                Rendered(
                    name,
                    "email",
                    destination,
                    headers=headers,
                    text=str(parts.get("text/plain", "")),
                    html=str(parts.get("text/html", "")),
                )
            )
        for console in receiver.console_configs:
            text = ConsoleNotifier(console).format(Notification(name, alerts, group_key))
            out.append(Rendered(name, "console", "stdout", text=text))
    return out


def text_report(alert: Alert, routes: Path, rendered: list[Rendered]) -> str:
    """The preview as text: one section per message."""
    lines = [f"alert {alert.alert_id} ({alert.rule_id}) through {routes}: {plural(len(rendered), 'message')}"]
    for item in rendered:
        lines.append("")
        lines.append(f"=== {item.receiver} · {item.channel} → {item.destination}")
        if item.slack is not None:
            lines.append(json.dumps(item.slack, indent=2, ensure_ascii=False))
        if item.headers:
            lines += [f"{k}: {v}" for k, v in item.headers.items()]
            lines.append("")
        if item.text:
            lines.append(item.text.rstrip("\n"))
        if item.html:
            lines.append("--- text/html")
            lines.append(item.html.rstrip("\n"))
    return "\n".join(lines) + "\n"


# -- the HTML page ---------------------------------------------------------------------------------
# Slack's severity emoji as coloured dots (no emoji font needed to see them).
_EMOJI = {
    ":red_circle:": '<span class="dot" style="color: #e01e5a">●</span>',
    ":large_orange_circle:": '<span class="dot" style="color: #f2952f">●</span>',
    ":large_yellow_circle:": '<span class="dot" style="color: #ecb22e">●</span>',
    ":large_blue_circle:": '<span class="dot" style="color: #1d9bd1">●</span>',
    ":white_circle:": '<span class="dot" style="color: #bbbbbb">●</span>',
}
_SLACK_TOKEN = re.compile(r"<([^<>]*)>")
# While styles are found, each <…> token (mention, link, date) and code span stands as one private-use
# character: Slack reads them first and whole, so a star inside one neither opens nor closes bold.
_HOLE = 0xE000
_CODE = re.compile(r"`([^`\n]+)`")
# Slack formats *bold*, _italic_ and ~strike~ only at word breaks: the opening marker not after a letter or
# digit and followed by a non-space, the closing one after a non-space and not followed by a letter or digit
# (``Acme_Corp_Ltd`` shows its underscores). A zero-width space is a break, not a letter.
_STYLES = [
    (
        re.compile(
            rf"(?<![A-Za-z0-9]){re.escape(marker)}(?=\S)([^{re.escape(marker)}\n]*?\S){re.escape(marker)}(?![A-Za-z0-9])"
        ),
        tag,
    )
    for marker, tag in (("*", "b"), ("_", "i"), ("~", "s"))
]


def _styled(safe: str) -> str:
    for pattern, tag in _STYLES:
        safe = pattern.sub(rf"<{tag}>\1</{tag}>", safe)
    return safe


def _token_html(inner: str) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f'<span class="mention">@{html.escape(label or target[1:])}</span>'
    if target.lower().startswith(("https://", "http://", "mailto:")):
        return f'<a href="{html.escape(target)}">{_styled(html.escape(label or target, quote=False))}</a>'
    if target.startswith("!date^"):
        # A date whose format Slack cannot read shows its fallback as typed (how text keeps its stars).
        return html.escape(label)
    return html.escape(f"<{inner}>")


def mrkdwn_html(text: str) -> Markup:
    """Slack mrkdwn drawn roughly as Slack shows it: bold, italics, strike, code, links, mentions, dates,
    emoji; anything else is text."""
    holes: list[str] = []

    def hole(piece: str) -> str:
        holes.append(piece)
        return chr(_HOLE + len(holes) - 1)

    # Slack text is escaped (&amp; &lt; &gt;): tokens are found in it, then the rest is unescaped and
    # escaped for HTML, so nothing in it is markup.
    text = re.sub("[\ue000-\uf8ff]", "\ufffd", text)  # the holes' own characters are not the text's
    text = _SLACK_TOKEN.sub(lambda m: hole(_token_html(html.unescape(m.group(1)))), text)
    safe = html.escape(html.unescape(text), quote=False)
    safe = _CODE.sub(lambda m: hole(f"<code>{m.group(1)}</code>"), safe)
    for code, char in _EMOJI.items():
        safe = safe.replace(code, char)
    safe = _styled(safe)
    for _ in range(2):  # a code span can hold a token
        safe = re.sub("[\ue000-\uf8ff]", lambda m: holes[ord(m.group()) - _HOLE], safe)
    return Markup(safe.replace("\n", "<br>"))  # noqa: S704 — every piece above is escaped


def plain_text(text: str) -> str:
    """A ``plain_text`` object's text as Slack shows it: no formatting at all (the page escapes it)."""
    return html.unescape(text)


# The email's HTML part goes into an iframe's srcdoc (escaped by autoescape). sandbox="allow-same-origin"
# without allow-scripts: nothing in it can run, and the frame stays in the page's renderer, so a
# headless browser's screenshot includes it.
_PAGE = Environment(autoescape=True).from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Preempt preview: {{ alert.title }}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 16px;
       background: #f4f4f6; color: #1d1c1d; }
h1 { font-size: 20px; margin: 0 0 4px; } .sub { color: #616061; margin: 0 0 16px; }
.grid { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 12px; width: 440px; }
.card h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #616061; margin: 0 0 8px; }
.slack { font-size: 15px; line-height: 1.45; border-left: 4px solid #4a154b; padding-left: 10px; }
.slack .header { font-size: 18px; font-weight: 700; margin: 4px 0 8px; }
.slack .context { font-size: 12px; color: #616061; margin: 4px 0; }
.slack .section { margin: 8px 0; }
.slack .fields { display: grid; grid-template-columns: 1fr 1fr; gap: 6px 12px; margin: 8px 0; }
.slack .actions { display: flex; flex-wrap: wrap; gap: 6px; margin: 8px 0; }
.slack .button { border: 1px solid #bbb; border-radius: 4px; padding: 3px 10px; font-size: 13px;
                 font-weight: 600; background: #fff; }
.slack .button.primary { background: #007a5a; color: #fff; border-color: #007a5a; }
.slack code { background: #f6f6f6; border: 1px solid #e2e2e2; border-radius: 3px; padding: 0 3px;
              color: #c0185d; font-size: 12px; }
.mention { background: #e8f5fa; color: #1264a3; border-radius: 3px; padding: 0 2px; }
.fallback { font-size: 12px; color: #616061; margin-top: 8px; }
pre { white-space: pre-wrap; font-size: 12px; background: #fafafa; border: 1px solid #eee; padding: 8px; margin: 0; }
iframe { width: 100%; height: 520px; border: 1px solid #eee; background: #fff; }
.headers { font-size: 12px; margin-bottom: 6px; } .headers b { display: inline-block; width: 60px; }
</style></head><body>
<h1>{{ alert.title }}</h1>
<p class="sub">{{ sentence }} · alert <code>{{ alert.alert_id }}</code> · routes {{ routes }}</p>
<div class="grid">
{% for item in rendered %}
<div class="card" data-channel="{{ item.channel }}">
<h2>{{ item.receiver }} · {{ item.channel }} → {{ item.destination }}</h2>
{% if item.slack is not none %}
<div class="slack">
{% for block in item.slack.blocks %}
{% if block.type == "header" %}<div class="header">{{ plain(block.text.text) }}</div>
{% elif block.type == "context" %}<div class="context">\
{% for e in block.elements %}{{ mrkdwn(e.text) }} {% endfor %}</div>
{% elif block.type == "section" and block.fields %}<div class="fields">\
{% for f in block.fields %}<div>{{ mrkdwn(f.text) }}</div>{% endfor %}</div>
{% elif block.type == "section" %}<div class="section">{{ mrkdwn(block.text.text) }}</div>
{% elif block.type == "actions" %}<div class="actions">{% for b in block.elements %}\
<span class="button{% if b.style == 'primary' %} primary{% endif %}">{{ plain(b.text.text) }}</span>{% endfor %}</div>
{% endif %}
{% endfor %}
</div>
<div class="fallback">Notification text: {{ plain(item.slack.text) }}</div>
{% elif item.channel == "email" %}
<div class="headers">{% for k, v in item.headers.items() %}<div><b>{{ k }}</b> {{ v }}</div>{% endfor %}</div>
<iframe title="email HTML part" sandbox="allow-same-origin" srcdoc="{{ item.html }}"></iframe>
<h2>text/plain part</h2>
<pre>{{ item.text }}</pre>
{% else %}
<pre>{{ item.text }}</pre>
{% endif %}
</div>
{% endfor %}
</div>
</body></html>
"""
)


def html_page(alert: Alert, routes: Path, rendered: list[Rendered]) -> str:
    """The side-by-side page: Slack blocks drawn roughly as Slack does, email HTML in a sandboxed iframe."""
    return _PAGE.render(
        alert=alert,
        routes=str(routes),
        rendered=rendered,
        sentence=evidence_text(alert),
        mrkdwn=mrkdwn_html,
        plain=plain_text,
    )


@click.group("alerts")
def alerts_group() -> None:
    """Work with alerts (the preempt.alerts values)."""
    logs_to_stderr()


@alerts_group.command("preview")
@click.argument("source", metavar="ALERTS")
@click.option("--alert-id", default=None, help="the alert with this alert_id in a JSONL file (e.g. a backtest's)")
@click.option("--index", type=int, default=None, help="the N-th alert of a JSONL file, counting from 1")
@click.option(
    "--routes",
    "routes_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="routing file; default PREEMPT_ROUTES_PATH, else deploy/routes.example.yaml",
)
@click.option(
    "--receiver",
    "receivers",
    multiple=True,
    help="render for this receiver even if the alert does not route to it (repeatable); default: where it routes",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, readable=False, path_type=Path),
    default=None,
    help="write the side-by-side page here",
)
def preview(
    source: str,
    alert_id: str | None,
    index: int | None,
    routes_path: Path | None,
    receivers: tuple[str, ...],
    html_path: Path | None,
) -> None:
    """Show one alert exactly as each receiver it routes to would send it (Slack, email, console).

    ALERTS is an alert JSON file, - for stdin, or a JSONL of alerts (a backtest's --output) with
    --alert-id or --index. Nothing is sent. Examples:

    \b
      preempt alerts preview docs/examples/alert.json --routes deploy/routes.example.yaml
      preempt alerts preview alerts.jsonl --index 3 --html preview.html
    """
    if alert_id is not None and index is not None:
        raise PreviewError("give --alert-id or --index, not both")
    if html_path is not None and str(html_path) == "-":
        raise click.BadParameter(STDOUT_REFUSED, param_hint="--html")
    clobbered = clobbering({"--html": html_path}, {"ALERTS": Path(source), "--routes": routes_path})
    if clobbered is not None:
        raise click.UsageError(clobbered)
    if html_path is not None and not html_path.parent.exists():
        folder = html_path.parent
        raise PreviewError(f"{html_path}: the folder {folder} does not exist; create it first (mkdir -p {folder})")
    alert = load_alert(source, alert_id, index)
    config, chosen = load_routes(routes_path)
    rendered = render_all(alert, config, Settings(), receivers)
    click.echo(text_report(alert, chosen, rendered), nl=False)
    if html_path is not None:
        try:
            html_path.write_text(html_page(alert, chosen, rendered), encoding="utf-8")
        except OSError as exc:
            raise PreviewError(f"{html_path}: cannot write it ({exc.strerror or exc})") from None
        click.echo(f"wrote {html_path}")
