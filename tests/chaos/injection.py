"""Scenario 8: template and mention injection in every alert field, through a real notifier.

Alerts whose every free-text field tries a Slack broadcast (``<!channel>``, ``<!here>``), a user
mention, a disguised link, HTML/script, and Jinja syntax (``{{ 1337*3 }}``, a reach for the
settings) go to Slack and email. Pass: both arrive, and nothing of it is live — no mention or link
markup in Slack's payload, no tag from the input in the HTML, no template evaluated, no secret.
"""

from __future__ import annotations

import json

from alerts.testing.factories import HOSTILE, hostile_alert
from alerts.testing.slack_server import FakeSlack
from alerts.testing.smtp_server import FakeSMTP
from streams.runtime.testing import free_port
from streams.runtime.topics import ensure_topics
from tests.chaos.harness import Context, Row, duplicates, log_events, poll, started, wait
from tests.integration.notifier_harness import produce_alerts

INJECTED = HOSTILE + " <script>alert(1)</script> <img src=x onerror=alert(2)> {{ 1337*3 }} {{ settings }} {% raw %}"
LIVE_IN_SLACK = ("<!channel>", "<!here>", "<!everyone>", "<@U0BADBAD>", "<https://evil.example", "4011")
LIVE_IN_EMAIL = ("<script", "<img src=x", "4011")


def run_injection(ctx: Context) -> Row:
    """Scenario 8 (see the module docstring)."""
    row = Row("8 template and mention injection")
    count = 3
    row.load = f"{count} hostile alerts → Slack + email"
    row.faults = "broadcasts, mentions, links, HTML, Jinja in every text field"
    row.expected = row.emitted = count
    with started(FakeSlack()) as slack, started(FakeSMTP()) as mail:
        routes = ctx.workdir / "routes-injection.yaml"
        routes.write_text(
            "receivers:\n  - name: both\n    slack_configs: [{channel: C-INJ}]\n"
            '    email_configs: [{to: "{{ account.owner.email }}"}]\n'
            "route: {receiver: both, group_by: [account_id], group_wait: 0s}\n"
        )
        settings = ctx.settings(
            "injection", routes_path=routes, slack_api_url=slack.api_url, smtp_host=mail.host, smtp_port=mail.port,
            notifier_web_port=free_port(),
        )  # fmt: skip
        ensure_topics(settings)
        alerts = [
            hostile_alert(length=1500, account_id=f"inj-{i}", title=f"{INJECTED} #{i}", playbook=INJECTED)
            for i in range(count)
        ]
        notifier = ctx.start(["preempt", "notifier"], settings, name="injection-notifier")
        wait(notifier, "notifier ready", 120)
        producer = ctx.producer(settings)
        try:
            produce_alerts(producer, settings.topic("alerts"), *alerts)
        finally:
            producer.close()
        ids = {a.alert_id for a in alerts}

        def delivered() -> list[str]:
            return [r["alert_id"] for r in log_events(notifier, "alert delivered") if r["alert_id"] in ids]

        poll(lambda: len(delivered()) >= 2 * count, timeout_s=90)
        notifier.stop()
        got = delivered()
        slack_text = json.dumps([r.body for r in slack.delivered("C-INJ")])
        html = [
            p.get_content()
            for m in mail.messages
            for p in m.message.iter_parts()
            if p.get_content_type() == "text/html"
        ]
        text = [
            p.get_content()
            for m in mail.messages
            for p in m.message.iter_parts()
            if p.get_content_type() == "text/plain"
        ]
    row.delivered = len(set(got))
    row.lost = count - len(set(got))
    row.duplicated = duplicates(got) - count  # each alert has two targets (Slack, email)
    live_slack = [s for s in LIVE_IN_SLACK if s in slack_text]
    live_email = [s for s in LIVE_IN_EMAIL if any(s in h for h in html)]
    evaluated = [s for s in ("4011",) if any(s in t for t in text)]
    secrets = [name for name, value in ctx.secrets.items() if value in slack_text + "".join(html + text)]
    row.check(row.lost == 0 and len(slack.delivered("C-INJ")) == count and len(mail.messages) == count, "delivered")
    row.check(not live_slack, f"inert in Slack (live: {live_slack})")
    row.check(not live_email, f"inert in the email HTML (live: {live_email})")
    row.check(not evaluated, "no template evaluated")
    row.check(not secrets, "no secret rendered")
    row.check("1337*3" in slack_text, "the Jinja text shown literally")
    row.check("&lt;!channel&gt;" in slack_text, "the hostile text shown in Slack, escaped")
    row.check(any("&lt;script&gt;" in h for h in html), "the hostile text shown in the email, escaped")
    return row.finish()
