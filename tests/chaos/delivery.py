"""Delivery faults on one real notifier: Slack 429 → 503 → recovery (4), permanent errors (5), SMTP 4xx (6).

One ``preempt notifier`` serves the three scenarios, each on accounts and targets of its own, against
the integration tests' Slack-speaking HTTP server and aiosmtpd (STARTTLS, with a login, so the SMTP
password is really used and can be looked for in the logs by scenario 10).
"""

from __future__ import annotations

import itertools
import json
import ssl
import time
import urllib.request
from contextlib import ExitStack
from typing import Any

from alerts.testing.slack_server import FakeSlack, Reply
from alerts.testing.smtp_server import FakeSMTP, self_signed_certificate
from streams.runtime.testing import free_port
from tests.chaos.harness import Context, Row, duplicates, log_events, poll, read_topic, started, wait
from tests.integration.notifier_harness import make_alert, produce_alerts

RATE_CHANNEL = "C-RATE"
PERMANENT_SLACK = {  # target → the reply it always gives
    "C-404": Reply(status=404, error="not_found"),
    "C-NOT-FOUND": Reply.slack_error("channel_not_found"),
    "C-INVALID": Reply.slack_error("invalid_payload"),
}
GONE_WEBHOOK = "gone"  # webhook answering 410 (channel_is_archived)


def _routes(ctx: Context, slack: FakeSlack) -> str:
    webhook = slack.webhook_url(f"{GONE_WEBHOOK}/{ctx.secrets['webhook url path']}")
    return f"""
receivers:
  - name: default
    console_configs: [{{}}]
  - {{name: rate, slack_configs: [{{channel: {RATE_CHANNEL}}}]}}
  - {{name: p404, slack_configs: [{{channel: C-404}}]}}
  - {{name: pnf, slack_configs: [{{channel: C-NOT-FOUND}}]}}
  - {{name: pinv, slack_configs: [{{channel: C-INVALID}}]}}
  - {{name: p410, slack_configs: [{{webhook_url: "{webhook}"}}]}}
  - {{name: mail, email_configs: [{{to: "{{{{ account.owner.email }}}}"}}]}}
route:
  receiver: default
  group_wait: 0s
  group_interval: 1s
  routes:
    - {{matchers: ['account_id=~"rate-.*"'], receiver: rate}}
    - {{matchers: ['account_id="perm-404"'], receiver: p404}}
    - {{matchers: ['account_id="perm-nf"'], receiver: pnf}}
    - {{matchers: ['account_id="perm-inv"'], receiver: pinv}}
    - {{matchers: ['account_id="perm-410"'], receiver: p410}}
    - {{matchers: ['account_id=~"mail-.*"'], receiver: mail}}
"""


def run_delivery_faults(ctx: Context) -> list[Row]:
    """Scenarios 4, 5 and 6 on one notifier; returns their three rows."""
    rate = Row("4 Slack 429 (Retry-After) → 503 → recovery")
    permanent = Row("5 permanent delivery errors")
    smtp = Row("6 SMTP 421/451 then 250")
    rows = [rate, permanent, smtp]
    with ExitStack() as stack:
        slack = stack.enter_context(started(FakeSlack()))
        cert, key = self_signed_certificate(ctx.workdir)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        mail = stack.enter_context(started(FakeSMTP(tls_context=tls)))
        routes = ctx.workdir / "routes-delivery.yaml"
        routes.write_text(_routes(ctx, slack))
        settings = ctx.settings(
            "delivery",
            routes_path=routes,
            slack_api_url=slack.api_url,
            smtp_host=mail.host,
            smtp_port=mail.port,
            smtp_starttls=True,
            smtp_ca_file=cert,
            smtp_username="preempt",
            smtp_password=ctx.secrets["smtp password"],
            delivery_retry_initial_seconds=0.5,
            delivery_retry_max_seconds=4.0,
            notifier_web_port=free_port(),
        )
        for target, reply in PERMANENT_SLACK.items():
            slack.always(target, reply)
        slack.always(
            f"{GONE_WEBHOOK}/{ctx.secrets['webhook url path']}", Reply(status=410, error="channel_is_archived")
        )
        retry_after = 2.0 if ctx.quick else 5.0
        limited = 3 if ctx.quick else 6  # seconds of 429s: limited * retry_after
        slack.script(
            RATE_CHANNEL,
            *[Reply.rate_limited(retry_after)] * limited,
            *[Reply.server_error(503)] * 3,
        )
        mail.script_rcpt("421 4.7.0 try again later", times=2)
        mail.script_rcpt("451 4.3.0 mailbox busy", times=2)

        notifier = ctx.start(["preempt", "notifier"], settings, name="notifier-delivery")
        wait(notifier, "notifier ready", 120)
        producer = ctx.producer(settings)
        try:
            _rate_limited(ctx, rate, settings, producer, notifier, slack, retry_after, limited)
            _smtp_retries(smtp, settings, producer, notifier, mail)
            _permanent(permanent, settings, producer, notifier, slack, mail)
        finally:
            producer.close()
        notifier.stop()
    return [r.finish() for r in rows]


def _delivered_ids(notifier: Any, accounts: set[str]) -> list[str]:
    return [r["alert_id"] for r in log_events(notifier, "alert delivered") if r.get("account_id") in accounts]


def _rate_limited(
    ctx: Context, row: Row, settings: Any, producer: Any, notifier: Any, slack: FakeSlack, retry_after: float, n429: int
) -> None:
    count = 6 if ctx.quick else 12
    alerts = [make_alert(f"rate-{i}") for i in range(count)]
    accounts = {a.account_id for a in alerts}
    row.load = f"{count} alerts, {count} groups, 1 channel"
    row.faults = f"{n429}x 429 Retry-After {retry_after:g}s ({n429 * retry_after:g}s), 3x 503"
    row.expected = row.emitted = count
    produce_alerts(producer, settings.topic("alerts"), *alerts)
    poll(lambda: len(set(_delivered_ids(notifier, accounts))) >= count, timeout_s=120 + n429 * retry_after)
    time.sleep(2.0)  # a duplicate would follow right behind
    got = _delivered_ids(notifier, accounts)
    row.delivered = len(set(got))
    row.lost = count - len(set(got) & {a.alert_id for a in alerts})
    row.duplicated = duplicates(got)
    posts = [r for r in slack.for_target(RATE_CHANNEL) if r.method == "chat.postMessage"]
    early = 0
    for before, after in itertools.pairwise(posts):
        if before.reply.status == 429 and after.time - before.time < retry_after - 0.05:
            early += 1
    gaps = [b.time - a.time for a, b in itertools.pairwise(posts)]
    row.check(row.lost == 0, "every alert delivered")
    row.check(row.duplicated == 0 and len([p for p in posts if p.delivered]) == count, "each delivered once")
    row.check(early == 0, "no request before Retry-After expired")
    row.check(min(gaps, default=1.0) >= 0.95, "≤ 1 message/s per channel")
    row.notes.append(f"{len(posts)} requests, {early} early, min gap {min(gaps, default=0):.2f}s")


def _smtp_retries(row: Row, settings: Any, producer: Any, notifier: Any, mail: FakeSMTP) -> None:
    alert = make_alert("mail-retry")
    row.load = "1 alert, email with STARTTLS + login"
    row.faults = "RCPT 421, 421, 451, 451, then 250"
    row.expected = row.emitted = 1
    produce_alerts(producer, settings.topic("alerts"), alert)
    poll(lambda: len(_delivered_ids(notifier, {"mail-retry"})) >= 1, timeout_s=90)
    time.sleep(2.0)
    got = _delivered_ids(notifier, {"mail-retry"})
    row.delivered = len(set(got))
    row.lost = 1 - len(set(got))
    row.duplicated = duplicates(got) + max(0, len(mail.messages) - 1)
    rcpt = [a for a in mail.attempts if a.stage == "RCPT"]
    gaps = [b.time - a.time for a, b in itertools.pairwise(rcpt)]
    row.check(row.lost == 0 and len(mail.messages) == 1, "delivered once")
    row.check([a.reply[:3] for a in rcpt[:5]] == ["421", "421", "451", "451", "250"], "retried until 250")
    row.check(len(gaps) >= 4 and gaps[3] > gaps[0], "backoff grows between attempts")
    row.check(all(m.tls for m in mail.messages), "sent over STARTTLS")
    row.notes.append("gaps " + ", ".join(f"{g:.1f}s" for g in gaps[:4]))


def _permanent(row: Row, settings: Any, producer: Any, notifier: Any, slack: FakeSlack, mail: FakeSMTP) -> None:
    mail.script_rcpt("550 5.1.1 no such user", times=1)
    alerts = [make_alert(a) for a in ("perm-404", "perm-nf", "perm-inv", "perm-410", "mail-perm")]
    row.load = f"{len(alerts)} alerts, 5 targets"
    row.faults = "Slack 404, channel_not_found, invalid_payload, webhook 410, SMTP 550"
    row.expected = row.emitted = len(alerts)
    started_at = time.monotonic()
    produce_alerts(producer, settings.topic("alerts"), *alerts)
    ids = {a.alert_id for a in alerts}

    def dead() -> list[dict[str, Any]]:
        return [r for r in log_events(notifier, "alert dead-lettered") if r.get("alert_id") in ids]

    poll(lambda: len(dead()) >= len(alerts), timeout_s=60)
    took = time.monotonic() - started_at
    dlq = [r for r in read_topic(settings, settings.topic("alerts.dlq")) if _alert_id(r.value) in ids]
    row.delivered = f"0 (+{len(dlq)} DLQ)"
    row.lost = len(ids - {_alert_id(r.value) for r in dlq})
    row.duplicated = duplicates([_alert_id(r.value) for r in dlq])
    requests = {t: len(slack.for_target(t)) for t in PERMANENT_SLACK}
    reasons = {{k: v.decode() for k, v in r.headers}.get("reason") for r in dlq}
    row.check(row.lost == 0, "every alert dead-lettered")
    row.check(all(n == 1 for n in requests.values()), "no retries (one request per Slack target)")
    row.check(sum(a.reply.startswith("550") for a in mail.attempts) == 1, "no SMTP retry after 550")
    row.check(reasons == {"permanent"}, "reason=permanent")
    row.check(took < 15, "dead-lettered within seconds")
    row.check(_metric(settings, "preempt_notifications_dead_lettered_total") >= len(alerts), "counted in a metric")
    row.notes.append(f"all dead-lettered {took:.1f}s after produce")


def _alert_id(value: bytes) -> str:
    return str(json.loads(value).get("alert_id"))


def _metric(settings: Any, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.notifier_web_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(name + "{"))
