"""Poison for a LIVE notifier: no single alert stops it; each failure is dead-lettered (or falls back,
counted) and every good alert after it is delivered (issue 10, failure policy)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.notifier_harness import (
    make_alert,
    metric_value,
    notifier_settings,
    produce_alerts,
    start_notifier,
    wait_for_records,
    write_routes,
)

GIANT_BYTES = 1_040_000  # under the producer's and the broker's default limit of 1 MiB, with key and headers


def _routes() -> str:
    # Quiet hours that are not now (in UTC, the fallback zone) and apply to every severity: each
    # alert's timezone is looked at, none is deferred.
    hour = time.gmtime().tm_hour
    start, end = (hour + 8) % 24, (hour + 9) % 24
    return f"""
receivers:
  - name: owner
    slack_configs: [{{channel: "{{{{ account.owner.slack }}}}"}}]
  - name: broken-template
    slack_configs: [{{channel: C-TEMPLATE, title: "{{{{ alert.evidence.value / 0 }}}}"}}]
route:
  receiver: owner
  group_wait: 0s
  routes:
    - {{matchers: ['account_id=~"tmpl-.*"'], receiver: broken-template}}
quiet_hours:
  start: "{start:02d}:00"
  end: "{end:02d}:00"
  timezone: UTC
  bypass_severities: []
"""


def _owner(slack: str | None) -> dict[str, object]:
    owner: dict[str, object] = {"name": "Dana", "email": "dana@example.com"}
    if slack is not None:
        owner["slack"] = slack
    return owner


def test_poison_alerts_are_dead_lettered_or_fall_back_and_the_notifier_carries_on(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    kafka_bootstrap: str,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """An invalid timezone with quiet hours, a failing template, an unknown and an empty templated
    recipient, and two records that are not alerts (one at Kafka's size limit): the notifier stays up,
    the undeliverable ones are in preempt.alerts.dlq with their reason, the rest are delivered, and
    every good alert after them is."""
    settings = notifier_settings(
        settings_factory, write_routes(tmp_path, _routes()), slack_api_url=slack_server.api_url
    )
    slack_server.always("C-NOBODY", Reply.slack_error("channel_not_found"))
    notifier = start_notifier(process_factory, settings)

    bad_tz = make_alert("bad-tz", account={"name": "Bad TZ", "timezone": "Mars/Olympus_Mons", "owner": _owner("C-OK")})
    template = make_alert("tmpl-1", account={"name": "Template", "owner": _owner("C-OK")})
    unknown = make_alert("unknown-recipient", account={"name": "Unknown", "owner": _owner("C-NOBODY")})
    empty = make_alert("no-recipient", account={"name": "Nobody", "owner": _owner(None)})
    goods = [make_alert(f"good-{i}", account={"name": f"Good {i}", "owner": _owner("C-OK")}) for i in range(4)]
    produce_alerts(producer, topics.alerts, bad_tz, goods[0], template, goods[1], unknown, goods[2])
    producer.send(topics.alerts, key=b"garbage", value=b'{"alert_id": 42, "not": "an alert"}')
    # Not an alert, and as large as Kafka's default limit allows: its dead letter is cut to fit.
    producer.send(topics.alerts, key=b"giant", value=b"{" * GIANT_BYTES)
    # Two alerts of one account without an id: before, the second was a "duplicate" of the first, never sent.
    for rule_id in ("renewal-at-risk", "seat-drop"):
        unnamed = json.loads(make_alert("stark-industries", rule_id=rule_id).model_dump_json()) | {"alert_id": ""}
        producer.send(topics.alerts, key=b"stark-industries", value=json.dumps(unnamed).encode())
    produce_alerts(producer, topics.alerts, empty, goods[3])

    delivered = wait_for_records(notifier, "alert delivered", 6, timeout_s=90)
    wait_for_records(notifier, "alert dead-lettered", 2, timeout_s=60)
    assert {r["alert_id"] for r in delivered} == {a.alert_id for a in [bad_tz, template, *goods]}
    assert [r.delivered for r in slack_server.for_target("C-TEMPLATE")] == [True]  # the built-in title instead

    dead = consume_records(kafka_bootstrap, topics.alerts_dlq, expected=6, timeout_s=30, idle_s=1.0)
    by_key = {r.key: {k: v.decode() for k, v in r.headers} for r in dead}
    assert set(by_key) == {b"unknown-recipient", b"no-recipient", b"garbage", b"giant", b"stark-industries"}
    unnamed_letters = [{k: v.decode() for k, v in r.headers} for r in dead if r.key == b"stark-industries"]
    assert [(h["reason"], h["error"].split(":")[0]) for h in unnamed_letters] == [("invalid_alert", "alert_id")] * 2
    assert by_key[b"giant"]["reason"] == "invalid_alert"
    assert by_key[b"giant"]["truncated"].startswith(f"value cut from {GIANT_BYTES} to ")
    assert "truncated" not in by_key[b"garbage"]
    assert (by_key[b"unknown-recipient"]["reason"], by_key[b"no-recipient"]["reason"]) == ("permanent", "no_recipient")
    assert "channel_not_found" in by_key[b"unknown-recipient"]["error"]
    assert "rendered empty" in by_key[b"no-recipient"]["error"]
    assert by_key[b"garbage"]["reason"] == "invalid_alert"

    assert notifier.proc.poll() is None, "the notifier stopped"
    assert metric_value(settings, "preempt_notifier_fallbacks_total", reason="invalid_timezone") >= 1
    assert metric_value(settings, "preempt_notifier_fallbacks_total", reason="template_error") >= 1
    assert (
        metric_value(
            settings, "preempt_notifications_dead_lettered_total", receiver_type="none", reason="invalid_alert"
        )
        == 4
    )
    assert metric_value(settings, "preempt_alerts_suppressed_total", reason="quiet_hours") == 0
