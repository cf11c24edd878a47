"""`preempt alerts preview`: one alert, every receiver it routes to, rendered by the channels' own code."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.channels.base import Notification
from alerts.channels.console import ConsoleNotifier
from alerts.channels.slack import render_message
from alerts.cli.preview import EXAMPLE_ROUTES, mrkdwn_html
from alerts.routing.config import RoutingConfig
from alerts.testing.factories import build_alert, hostile_alert
from streams.cli.main import main

ROUTES = """\
receivers:
  - name: owner
    slack_configs:
      - webhook_url: https://hooks.example.com/services/T0/B0/x
    email_configs:
      - to: "{{ account.owner.email }}"
    console_configs:
      - {}
route:
  receiver: owner
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A routing file, one alert as JSON and a three-alert JSONL (like a backtest's --output)."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    one = tmp_path / "alert.json"
    one.write_text(build_alert(alert_id="a-1").model_dump_json(indent=2))
    many = tmp_path / "alerts.jsonl"
    many.write_text(
        "".join(build_alert(alert_id=f"b-{i}", title=f"Title {i}").model_dump_json() + "\n" for i in (1, 2, 3))
    )
    return {"routes": routes, "one": one, "many": many}


def _run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["alerts", "preview", *args], input=stdin)


def test_preview_shows_every_channel_of_the_receiver(files):
    """Slack Block Kit JSON, the email's headers, text and HTML, and the console text, per receiver."""
    result = _run(str(files["one"]), "--routes", str(files["routes"]))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "=== owner · slack → incoming webhook" in out
    assert "=== owner · email → jane@example.com" in out
    assert "=== owner · console → stdout" in out
    assert "Subject: [HIGH] Acme: API errors are spiking" in out
    assert "--- text/html" in out
    assert '"type": "header"' in out
    assert "hooks.example.com" not in out  # the webhook URL is a secret


def test_preview_is_the_channels_own_rendering(files):
    """The Slack JSON and console text shown are exactly what the channels build for the alert."""
    alert = build_alert(alert_id="a-1")
    files["one"].write_text(alert.model_dump_json())
    out = _run(str(files["one"]), "--routes", str(files["routes"])).output
    config = RoutingConfig.load(files["routes"]).receivers[0]
    expected_slack = json.dumps(render_message(config.slack_configs[0], (alert,)), indent=2, ensure_ascii=False)
    assert expected_slack in out
    console = ConsoleNotifier(config.console_configs[0]).format(Notification("owner", (alert,), "g"))
    assert console.rstrip("\n") in out


def test_alert_from_stdin_and_from_a_backtest_jsonl(files):
    """An alert comes from stdin (-), or out of a JSONL by --alert-id or --index (counting from 1)."""
    stdin = _run("-", "--routes", str(files["routes"]), stdin=files["one"].read_text())
    assert stdin.exit_code == 0
    assert "alert a-1" in stdin.output
    by_id = _run(str(files["many"]), "--alert-id", "b-2", "--routes", str(files["routes"]))
    assert by_id.exit_code == 0
    assert "alert b-2" in by_id.output
    assert "Title 2" in by_id.output
    by_index = _run(str(files["many"]), "--index", "3", "--routes", str(files["routes"]))
    assert by_index.exit_code == 0
    assert "alert b-3" in by_index.output
    one_by_index = _run(str(files["one"]), "--index", "1", "--routes", str(files["routes"]))
    assert one_by_index.exit_code == 0  # an indented alert is one record, not lines of one
    assert "alert a-1" in one_by_index.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["missing.json"],
            "Error: missing.json: no such file; give an alert JSON file, a backtest JSONL or - for stdin",
        ),
        (["{many}", "--alert-id", "nope"], "no alert with alert_id nope among its 3 alerts"),
        (["{many}", "--index", "4"], "--index 4 is out of range; it holds 3 alerts (1–3)"),
        (["{many}"], "3 alerts; choose one with --alert-id ID or --index N (1–3)"),
        (["{bad}"], "line 2: not JSON"),
        (["{notalert}"], "not an alert (alert_id: required (and 6 more problems))"),
        (["{one}", "--routes", "nowhere.yaml"], "nowhere.yaml: no such routing file"),
        (
            ["{one}", "--html", "/no/such/folder/out.html"],
            "the folder /no/such/folder does not exist; create it first (mkdir -p /no/such/folder)",
        ),
        (["{many}", "--index", "1", "--alert-id", "b-1"], "give --alert-id or --index, not both"),
        (["{folder}"], "Error: {folder}: is a folder; give an alert JSON file, a backtest JSONL or - for stdin"),
        (["{gzipped}", "--index", "1"], "Error: {gzipped}: not UTF-8 text (byte 0x8b at position 1); a compressed"),
        (["{array}", "--index", "1"], "Error: {array} is one JSON document spread over several lines, not JSON lines"),
    ],
)
def test_errors_are_one_clear_line(files, tmp_path, args, message):
    """Bad input gives one line on stderr naming the problem and exit 1, never a traceback."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(files["one"].read_text().replace("\n", " ") + "\n{not json\n")
    notalert = tmp_path / "notalert.json"
    notalert.write_text('{"title": "x"}')
    gzipped = tmp_path / "alerts.jsonl.gz"
    gzipped.write_bytes(gzip.compress(files["many"].read_bytes()))
    values = {"many": files["many"], "bad": bad, "notalert": notalert, "one": files["one"], "folder": tmp_path}
    values["gzipped"] = gzipped
    values["array"] = tmp_path / "alerts.json"  # a JSON export of alerts: an indented array
    values["array"].write_text(json.dumps([json.loads(files["one"].read_text())] * 2, indent=2))
    argv = [a.format(**values) for a in args]
    message = message.format(**values)
    if "--routes" not in argv:
        argv += ["--routes", str(files["routes"])]
    result = _run(*argv)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error:")]) == 1


def test_default_routes_are_the_example_file(files, monkeypatch):
    """Without --routes or PREEMPT_ROUTES_PATH the preview uses deploy/routes.example.yaml."""
    monkeypatch.delenv("PREEMPT_ROUTES_PATH", raising=False)
    result = _run(str(files["one"]))
    assert result.exit_code == 0, result.output
    assert f"through {EXAMPLE_ROUTES}" in result.output
    assert "=== support · slack → channel #support-escalations" in result.output


def test_html_page_is_written_and_escapes_alert_text(files, tmp_path):
    """--html writes the side-by-side page; hostile alert text is shown, never interpreted."""
    files["one"].write_text(hostile_alert(length=300, alert_id="h-1").model_dump_json())
    page = tmp_path / "out.html"
    result = _run(str(files["one"]), "--routes", str(files["routes"]), "--html", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert html.count('class="card"') == 3
    assert "<!channel>" not in html
    assert "<script" not in html.lower()
    assert 'srcdoc="&lt;!DOCTYPE html&gt;' in html


def test_html_page_shows_the_notification_text_and_buttons_as_slack_does(files, tmp_path):
    """The page shows the notification text and the button labels as Slack draws them, "Tom & Jerry <EU>",
    escaped once for HTML; it showed Slack's entities, "Tom &amp; Jerry &lt;EU&gt;", to the person reading."""
    links = {"crm": "https://crm.example.com/a", "<b>": "https://b.example.com/"}
    alert = build_alert(
        alert_id="t-1", title="Tom & Jerry <EU>: usage dropped", account={"name": "Tom & Jerry <EU>", "links": links}
    )
    files["one"].write_text(alert.model_dump_json())
    page = tmp_path / "out.html"
    assert _run(str(files["one"]), "--routes", str(files["routes"]), "--html", str(page)).exit_code == 0
    html = page.read_text()
    assert "Notification text: [HIGH] usage dropped (Tom &amp; Jerry &lt;EU&gt;): " in html
    assert ">Open &lt;b&gt;</span>" in html
    slack_card = html.split('data-channel="slack"', 1)[1].split('class="card"', 1)[0]
    assert "&amp;amp;" not in slack_card
    assert "&amp;lt;" not in slack_card


def test_mrkdwn_drawing():
    """Slack mrkdwn is drawn as Slack shows it: bold, code, mentions, links; anything else is text."""
    html = str(mrkdwn_html("*Owner*\n<@U0JANE01> (Jane) `rule` <https://x.example|CRM> &lt;b&gt; <javascript:x|y>"))
    assert "<b>Owner</b><br>" in html
    assert '<span class="mention">@U0JANE01</span>' in html
    assert "<code>rule</code>" in html
    assert '<a href="https://x.example">CRM</a>' in html
    assert "&lt;b&gt;" in html
    assert "&lt;javascript:x|y&gt;" in html


def test_receiver_option_renders_for_named_receivers(files, monkeypatch):
    """--receiver renders for that receiver even when the alert does not route there; an unknown one is an error."""
    monkeypatch.delenv("PREEMPT_ROUTES_PATH", raising=False)
    result = _run(str(files["one"]), "--receiver", "billing", "--receiver", "cs-leads")
    assert result.exit_code == 0, result.output
    headings = [line for line in result.output.splitlines() if line.startswith("=== ")]
    assert headings == [
        "=== billing · email → billing-ops@example.com, jane@example.com",
        "=== cs-leads · slack → channel #cs-leads",
    ]
    unknown = _run(str(files["one"]), "--receiver", "nobody")
    assert unknown.exit_code == 1
    assert (
        "Error: no receiver nobody in the routing file; it has csm-owner, support, billing, cs-leads" in unknown.output
    )


def test_slack_channel_that_renders_empty_says_nothing_would_be_sent(tmp_path):
    """An owner without a Slack id makes ``{{ account.owner.slack }}`` render empty: the preview says the
    message would not be sent (the notifier dead-letters it), as it does for an email without recipients."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "receivers:\n  - name: owner\n    slack_configs:\n      - channel: '{{ account.owner.slack }}'\n"
        "route:\n  receiver: owner\n"
    )
    alert = tmp_path / "alert.json"
    alert.write_text(build_alert(account={"name": "Umbrella", "owner": {"name": "Nobody"}}).model_dump_json())
    result = _run(str(alert), "--routes", str(routes))
    assert result.exit_code == 0, result.output
    assert (
        "=== owner · slack → no channel: the channel template rendered empty (the message would not be sent)"
        in result.output
    )
    with_id = tmp_path / "with-id.json"
    with_id.write_text(build_alert(account={"owner": {"slack": "U0DANA01"}}).model_dump_json())
    assert "=== owner · slack → channel U0DANA01" in _run(str(with_id), "--routes", str(routes)).output


def test_alert_file_with_a_byte_order_mark_is_read(files):
    """An alert file saved with a UTF-8 byte-order mark (as Windows editors do) previews like any other."""
    files["one"].write_bytes(b"\xef\xbb\xbf" + files["one"].read_bytes())
    result = _run(str(files["one"]), "--routes", str(files["routes"]))
    assert result.exit_code == 0, result.output
    assert "=== owner · console → stdout" in result.output
    stdin = _run("-", "--routes", str(files["routes"]), stdin="\ufeff" + files["many"].read_text().splitlines()[0])
    assert stdin.exit_code == 0, stdin.output


def test_log_lines_go_to_stderr_not_into_the_preview(files):
    """A warning while rendering (an account timezone that is not an IANA zone) is written on stderr,
    so stdout holds only the preview (scripts and redirects get clean output)."""
    files["one"].write_text(build_alert(account={"name": "Acme", "timezone": "Jupiter/Preview_Only"}).model_dump_json())
    result = _run(str(files["one"]), "--routes", str(files["routes"]))
    assert result.exit_code == 0, result.output
    assert "invalid_timezone" not in result.stdout
    assert "invalid_timezone" in result.stderr


def test_each_receiver_is_rendered_once(files, tmp_path):
    """A receiver named twice with --receiver, or reached twice through continue, is previewed once,
    as the notifier sends once per receiver."""
    routes = tmp_path / "twice.yaml"
    routes.write_text(
        "receivers:\n  - name: owner\n    console_configs: [{}]\n  - name: leads\n    console_configs: [{}]\n"
        "route:\n  receiver: owner\n  routes:\n"
        "    - {matchers: ['account_id=\"acme\"'], receiver: owner, continue: true}\n"
        "    - {matchers: ['account_id=\"acme\"'], receiver: leads, continue: true}\n"
        "    - {receiver: owner}\n"
    )
    routed = _run(str(files["one"]), "--routes", str(routes))
    assert [line for line in routed.output.splitlines() if line.startswith("===")] == [
        "=== owner · console → stdout",
        "=== leads · console → stdout",
    ]
    named = _run(str(files["one"]), "--routes", str(routes), "--receiver", "leads", "--receiver", "leads")
    assert [line for line in named.output.splitlines() if line.startswith("===")] == ["=== leads · console → stdout"]
