"""`preempt alerts preview --html` opened in Debian's headless Chromium: the page renders, shows every message."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageStat

from alerts.channels.email import EmailNotifier
from alerts.routing.config import EmailReceiver
from alerts.testing.factories import build_alert
from streams.runtime.settings import Settings
from tests.integration.deploy_tools import REPO, require_chromium

ROUTES = REPO / "deploy" / "routes.example.yaml"
PREEMPT = str(Path(sys.executable).with_name("preempt"))


def _chromium(chromium: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    return subprocess.run(
        [chromium, *flags, f"--user-data-dir={cwd / 'profile'}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        cwd=cwd,
    )


def _preview_page(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    alert = build_alert(
        rule_id="seat-utilisation-low",
        kind="threshold",
        title="Quartzline Learning: fewer than 35% of purchased seats are in use",
        severity="low",
        labels={"team": "cs"},
        account={"name": "Quartzline Learning", "timezone": "America/New_York"},
        evidence={
            "measure": "count",
            "value": 6.0,
            "threshold": 6.0,
            "summary": "6 of 20 seats in use (30%), below the 35% floor on 6 of the last 7 days",
        },
        playbook="**Quartzline Learning** uses under 35% of its seats.\n\n1. Jane Doe: ask the champion.",
    )
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(alert.model_dump_json(), encoding="utf-8")
    page = tmp_path / "preview.html"
    result = subprocess.run(
        [PREEMPT, "alerts", "preview", str(alert_file), "--routes", str(ROUTES), "--html", str(page)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {page}" in result.stdout
    return page, {"title": alert.title, "sentence": str(alert.evidence.model_dump()["summary"])}


def test_preview_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The preview page screenshots as a non-blank image and its DOM holds the title, the evidence and each channel."""
    chromium = require_chromium()
    page, expected = _preview_page(tmp_path)
    shot = tmp_path / "preview.png"
    result = _chromium(chromium, "--window-size=1400,1000", f"--screenshot={shot}", page.as_uri(), cwd=tmp_path)
    noise = "dbus"  # containers have no D-Bus; Chromium complains and carries on
    errors = "\n".join(line for line in result.stderr.splitlines() if noise not in line)
    assert shot.exists(), f"no screenshot (exit {result.returncode}): {errors[-2000:]}"
    with Image.open(shot) as image:
        assert image.size == (1400, 1000)
        grey = image.convert("L")
        stat = ImageStat.Stat(grey)
        # A blank (or error) page is one flat colour: variance ~0. The preview has text, cards and buttons.
        assert stat.var[0] > 200, f"screenshot looks blank (variance {stat.var[0]:.1f})"
        light, dark = grey.histogram()[200:], grey.histogram()[:80]
        assert sum(light) > 0.5 * grey.width * grey.height  # mostly page background and cards
        assert sum(dark) > 2000  # and a good amount of dark text
    dom = _chromium(chromium, "--dump-dom", page.as_uri(), cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert expected["title"] in html
    assert expected["sentence"] in html
    # deploy/routes.example.yaml sends this alert to the owner by Slack DM and email.
    assert 'data-channel="slack"' in html
    assert 'data-channel="email"' in html
    assert "Acknowledge" in html  # the Slack buttons are drawn
    assert "&lt;strong&gt;Quartzline Learning&lt;/strong&gt;" in html  # the email HTML part, in the iframe's srcdoc
    assert "**" not in html


def test_hostile_account_text_in_the_email_html_reads_as_typed_in_headless_chromium(tmp_path: Path) -> None:
    """The email's HTML part for an account named with markup, Slack tokens, an unclosed right-to-left override
    and a javascript: link, opened in Chromium: no element comes from the text, the reader sees the name as
    typed (without the override), and the javascript: link is not offered."""
    chromium = require_chromium()
    name = "<script>alert(1)</script><img src=x onerror=alert(1)> <!channel> *Acme* & Co \u202eevil"
    alert = build_alert(
        title=f"{name}: usage dropped",
        account={"name": name, "links": {"admin": "javascript:alert(1)", "crm": "https://crm.example.com/a"}},
        playbook="Call **them**: <b>now</b> & <!here>",
    )
    message = EmailNotifier(EmailReceiver(to=("a@example.com",)), Settings()).build((alert,), ["a@example.com"], "g")
    email_html = str(next(p for p in message.iter_parts() if p.get_content_type() == "text/html").get_content())
    # The part in a same-origin iframe; a script of the wrapper (not of the email) reports what a reader sees.
    wrapper = tmp_path / "email.html"
    wrapper.write_text(
        f'<!DOCTYPE html><html><body><iframe id="mail" srcdoc="{html.escape(email_html)}"></iframe>'
        '<pre id="seen"></pre><script>document.getElementById("mail").onload = () => {'
        'const d = document.getElementById("mail").contentDocument;'
        'document.getElementById("seen").textContent = JSON.stringify({scripts: d.scripts.length,'
        'images: d.images.length, links: [...d.links].map(a => a.getAttribute("href")), text: d.body.innerText});'
        "};</script></body></html>",
        encoding="utf-8",
    )
    dom = _chromium(chromium, "--virtual-time-budget=5000", "--dump-dom", wrapper.as_uri(), cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="seen">(.*?)</pre>', dom.stdout, re.S)
    assert found is not None, dom.stdout[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["scripts"] == 0
    assert seen["images"] == 0
    assert seen["links"] == ["https://crm.example.com/a"]
    shown = name.replace("\u202e", "")
    assert f"{shown}: usage dropped" in seen["text"]
    assert "Call them: <b>now</b> & <!here>" in seen["text"]
    assert "\u202e" not in seen["text"]
