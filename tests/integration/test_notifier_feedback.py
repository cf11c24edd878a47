"""Slack buttons end to end: signed actions accepted, forged or stale ones refused, Snooze silences."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from alerts.feedback import slack_signature
from alerts.testing.slack_server import FakeSlack, slack_server  # noqa: F401
from schemas.alert import Alert
from schemas.feedback import Feedback
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.notifier_harness import (
    make_alert,
    metric_value,
    notifier_settings,
    post,
    produce_alerts,
    start_notifier,
    wait_for_records,
    write_routes,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ROUTES = """
receivers:
  - name: csm
    slack_configs: [{channel: C-FB}]
route:
  receiver: csm
  group_by: ["..."]
  group_wait: 0s
"""


def _action_body(alert: Alert, action_id: str, ref: str) -> bytes:
    channel, ts = ref.split(":", 1)
    payload = {
        "type": "block_actions",
        "user": {"id": "U123", "username": "dana"},
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "actions": [
            {
                "action_id": action_id,
                "value": json.dumps(
                    {"alert_id": alert.alert_id, "rule_id": alert.rule_id, "account_id": alert.account_id}
                ),
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def _headers(body: bytes, timestamp: float, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(timestamp))
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, body),
    }


def test_signed_actions_feedback_and_snooze(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    kafka_bootstrap: str,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A forged or stale action gets 401; a signed Snooze is published to the feedback topic, updates
    the Slack message, and suppresses the next alert of that rule for that account (not other rules)."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        slack_signing_secret=SECRET,
    )
    notifier = start_notifier(process_factory, settings)
    first = make_alert("acme")
    produce_alerts(producer, topics.alerts, first)
    (delivered,) = wait_for_records(notifier, "alert delivered", 1)
    url = f"http://127.0.0.1:{settings.notifier_web_port}/slack/actions"

    body = _action_body(first, "preempt_snooze_7d", delivered["ref"])
    now = time.time()
    assert post(url, body, _headers(body, now, secret="not-the-secret")) == 401
    assert post(url, body, _headers(body, now - 600)) == 401
    assert post(url, body + b"&tampered=1", _headers(body, now)) == 401
    assert post(url, body, _headers(body, now)) == 200
    not_helpful = _action_body(first, "preempt_not_helpful", delivered["ref"])
    assert post(url, not_helpful, _headers(not_helpful, now)) == 200

    records = consume_records(kafka_bootstrap, topics.feedback, expected=2, timeout_s=30)
    feedback = [Feedback.model_validate_json(r.value) for r in records]
    assert [(f.action, f.alert_id, f.user) for f in feedback] == [
        ("snooze", first.alert_id, "U123"),
        ("not_helpful", first.alert_id, "U123"),
    ]
    assert feedback[0].snooze_until is not None
    updates = [r for r in slack_server.wait_for(3, target="C-FB") if r.method == "chat.update"]
    assert "Snoozed until" in str(updates[0].body)
    wait_for_records(notifier, "snooze recorded", 1)

    snoozed = make_alert("acme")
    other_rule = make_alert("acme", rule_id="usage-drop", title="acme: usage dropped")
    produce_alerts(producer, topics.alerts, snoozed, other_rule)
    delivered_all = wait_for_records(notifier, "alert delivered", 2)
    (suppressed,) = wait_for_records(notifier, "alert suppressed", 1)

    assert suppressed["alert_id"] == snoozed.alert_id
    assert suppressed["reason"] == "silenced"
    assert delivered_all[1]["alert_id"] == other_rule.alert_id
    assert metric_value(settings, "preempt_feedback_total", rule="error-spike", action="snooze") == 1
    assert metric_value(settings, "preempt_feedback_total", rule="error-spike", action="not_helpful") == 1
    # Both presses re-rendered their message, and say so on /metrics (bounded: the count follows Slack's answer).
    deadline = time.monotonic() + 15
    while metric_value(settings, "preempt_slack_message_updates_total", outcome="updated") < 2:
        assert time.monotonic() < deadline, "the two message updates were never counted"
        time.sleep(0.2)
    assert metric_value(settings, "preempt_slack_message_updates_total", outcome="updated") == 2
    for outcome in ("skipped", "failed"):
        assert metric_value(settings, "preempt_slack_message_updates_total", outcome=outcome) == 0


DIGEST_ROUTES = """
receivers:
  - name: csm
    slack_configs: [{channel: C-DIGEST}]
route:
  receiver: csm
  group_wait: 1s
"""


def test_a_button_on_a_digest_posted_by_another_notifier_updates_that_alert_only(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """With two notifier replicas behind Slack's one Request URL, a press reaches a replica that did not
    post the message: it updates the message from the blocks Slack sends along — the pressed alert's
    buttons give way to "Acknowledged by", the digest's other alerts keep theirs."""
    routes = write_routes(tmp_path, DIGEST_ROUTES)
    common = {"slack_api_url": slack_server.api_url, "slack_signing_secret": SECRET}
    poster = start_notifier(process_factory, notifier_settings(settings_factory, routes, **common), name="poster")
    alerts = [make_alert("acme", title=f"acme: problem {i}") for i in range(3)]
    produce_alerts(producer, topics.alerts, *alerts)
    (delivered, *_) = wait_for_records(poster, "alert delivered", 3)
    (posted,) = slack_server.wait_for(1, target="C-DIGEST")
    other_settings = notifier_settings(settings_factory, routes, **common)
    start_notifier(process_factory, other_settings, name="other-replica")

    channel, ts = delivered["ref"].split(":", 1)
    payload = json.loads(
        urllib.parse.parse_qs(_action_body(alerts[1], "preempt_ack", delivered["ref"]).decode())["payload"][0]
    )
    payload["message"] = {"ts": ts, "text": posted.body["text"], "blocks": posted.body["blocks"]}
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    url = f"http://127.0.0.1:{other_settings.notifier_web_port}/slack/actions"
    assert post(url, body, _headers(body, time.time())) == 200

    (update,) = [r for r in slack_server.wait_for(2, target=channel) if r.method == "chat.update"]
    assert update.body["ts"] == ts
    buttons = {
        json.loads(e["value"])["alert_id"]
        for b in update.body["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "preempt_ack"
    }
    assert buttons == {alerts[0].alert_id, alerts[2].alert_id}
    assert "Acknowledged by <@U123>" in json.dumps(update.body)  # a mention: Slack shows the person's name


def test_a_button_on_a_webhook_message_updates_it_through_the_response_url(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """An incoming webhook cannot edit what it posted: a press on its message (which Slack sends with the
    message's blocks and a response_url) replaces the message through the response_url, the pressed
    alert's buttons giving way to "Acknowledged by"."""
    routes = write_routes(
        tmp_path,
        f"""
receivers:
  - name: csm
    slack_configs: [{{webhook_url: "{slack_server.webhook_url("cs-team")}"}}]
route:
  receiver: csm
  group_by: ["..."]
  group_wait: 0s
""",
    )
    settings = notifier_settings(
        settings_factory, routes, slack_api_url=slack_server.api_url, slack_signing_secret=SECRET, slack_bot_token=None
    )
    notifier = start_notifier(process_factory, settings)
    alert = make_alert("globex")
    produce_alerts(producer, topics.alerts, alert)
    wait_for_records(notifier, "alert delivered", 1)
    (posted,) = slack_server.wait_for(1, target="cs-team")

    payload = json.loads(
        urllib.parse.parse_qs(_action_body(alert, "preempt_ack", "C-HOOK:1.000200").decode())["payload"][0]
    )
    payload["message"] = {"ts": "1.000200", "text": posted.body["text"], "blocks": posted.body["blocks"]}
    payload["response_url"] = slack_server.response_url("press-1")
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    url = f"http://127.0.0.1:{settings.notifier_web_port}/slack/actions"
    assert post(url, body, _headers(body, time.time())) == 200

    (replaced,) = slack_server.wait_for(1, target="press-1")
    assert replaced.method == "response_url"
    assert replaced.body["replace_original"] is True
    assert "Acknowledged by <@U123>" in json.dumps(replaced.body["blocks"])
    assert not [
        e
        for b in replaced.body["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "preempt_ack"
    ]
    assert [r.method for r in slack_server.requests if r.kind == "api"] == []  # no chat.update: no bot token
