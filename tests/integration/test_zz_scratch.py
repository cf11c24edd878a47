"""scratch"""
from __future__ import annotations
import json, time
from pathlib import Path
from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from alerts.testing.smtp_server import FakeSMTP, smtp_server  # noqa: F401
from tests.integration.conftest import consume_records
from tests.integration.notifier_harness import make_alert, notifier_settings, produce_alerts, start_notifier, wait_for_records, write_routes, log_records

ROUTES = """
receivers:
  - name: default
    console_configs: [{}]
  - name: hook
    slack_configs: [{webhook_url: "WEBHOOK"}]
  - name: per-owner
    slack_configs: [{channel: C-OWNER-DIGEST}]
    email_configs: [{to: "{{ account.owner.email }}"}]
  - name: comp
    slack_configs: [{channel: C-COMP}]
  - name: slow
    slack_configs: [{channel: C-SLOW}]
  - name: datafail
    email_configs: [{to: "x@example.com"}]
route:
  receiver: default
  group_wait: 0s
  routes:
    - {matchers: ['account_id=~"hook-.*"'], receiver: hook}
    - {matchers: ['labels.digest="owner"'], receiver: per-owner, group_by: [account.owner.email], group_wait: 3s}
    - {matchers: ['account_id="compco"'], receiver: comp, group_wait: 3s}
    - {matchers: ['account_id="slowco"'], receiver: slow}
    - {matchers: ['account_id="datafail"'], receiver: datafail}
inhibit_rules:
  - {source_matchers: ['kind="composite"'], target_matchers: ['kind!="composite"'], equal: [account_id]}
"""

def test_scratch(settings_factory, topics, kafka_bootstrap, producer, process_factory, slack_server, smtp_server, tmp_path):
    routes = write_routes(tmp_path, ROUTES.replace("WEBHOOK", slack_server.webhook_url("hook1")))
    settings = notifier_settings(settings_factory, routes, slack_api_url=slack_server.api_url, smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    slack_server.script("hook1", Reply.rate_limited(3.0))
    slack_server.script("C-SLOW", Reply.slow(12))
    smtp_server.script_data("554 5.6.0 message content rejected", times=None)
    n = start_notifier(process_factory, settings)
    t0 = time.monotonic()
    h1, h2 = make_alert("hook-a", title="Höök ✓ <!channel> & co"), make_alert("hook-b", evidence={"measure": "count", "value": 1e6, "threshold": 3, "note": "é" * 9000})
    owners = [make_alert(f"own-{i}", labels={"digest": "owner"}, account={"name": f"Own {i}", "owner": {"email": "same@example.com", "name": "Sam"}}) for i in range(3)]
    comp_part = make_alert("compco", kind="threshold")
    comp = make_alert("compco", kind="composite", severity="critical", title="Compco: at risk")
    slow = make_alert("slowco")
    df = make_alert("datafail")
    produce_alerts(producer, topics.alerts, h1, h2, *owners, comp_part, comp, slow, df)
    delivered = wait_for_records(n, "alert delivered", 7, timeout_s=60)
    print("delivered", sorted(r["account_id"] for r in delivered))
    wait_for_records(n, "alert dead-lettered", 1, timeout_s=30)
    hooks = slack_server.for_target("hook1")
    print("hook", [(r.reply.status, round(r.time - hooks[0].time, 2)) for r in hooks])
    print("owner digest", len(slack_server.for_target("C-OWNER-DIGEST")), json.dumps(slack_server.for_target("C-OWNER-DIGEST")[0].body["blocks"][0]))
    print("emails", [(m.message["To"], m.message["Subject"]) for m in smtp_server.messages])
    print("comp", [[b.get("text", {}).get("text") for b in r.body["blocks"][:1]] for r in slack_server.for_target("C-COMP")])
    print("slow", [(r.reply.delay, r.delivered) for r in slack_server.for_target("C-SLOW")])
    print("suppressed", [(r["account_id"], r["reason"]) for r in log_records(n, "alert suppressed")])
    dead = consume_records(kafka_bootstrap, topics.alerts_dlq, expected=1, timeout_s=30)
    print("dead", [dict((k, v.decode()) for k, v in r.headers) for r in dead])
    time.sleep(15)
    print("slow after", [(r.reply.delay, r.delivered) for r in slack_server.for_target("C-SLOW")])
    assert False
