"""Retries and dead letters end to end: Slack 429/5xx/permanent errors, SMTP 4xx/5xx."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from alerts.held_log import HELD_SUMMARY
from alerts.intake import PAUSED, RESUMED
from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from alerts.testing.smtp_server import FakeSMTP, smtp_blackhole, smtp_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.notifier_harness import (
    log_records,
    make_alert,
    metric_sample,
    metric_value,
    notifier_settings,
    produce_alerts,
    start_notifier,
    wait_for_records,
    wait_readyz,
    write_routes,
)

ROUTES = """
receivers:
  - name: default
    console_configs: [{}]
  - {name: limited, slack_configs: [{channel: C-429}]}
  - {name: flaky, slack_configs: [{channel: C-500}]}
  - {name: gone, slack_configs: [{channel: C-GONE}]}
  - {name: mail, email_configs: [{to: "{{ account.owner.email }}"}]}
route:
  receiver: default
  group_wait: 0s
  routes:
    - {matchers: ['account_id="limited"'], receiver: limited}
    - {matchers: ['account_id="flaky"'], receiver: flaky}
    - {matchers: ['account_id="gone"'], receiver: gone}
    - {matchers: ['account_id=~"mail-.*"'], receiver: mail}
"""


def _headers(record: object) -> dict[str, str]:
    return {k: v.decode() for k, v in getattr(record, "headers", [])}


def test_retryable_failures_are_retried_and_permanent_ones_dead_lettered(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    kafka_bootstrap: str,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """429 waits for Retry-After, 500s and SMTP 451 are retried until delivered; channel_not_found
    and SMTP 550 go to the dead-letter topic after one attempt, without secrets."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
    )
    slack_server.script("C-429", Reply.rate_limited(2.0))
    slack_server.script("C-500", Reply.server_error(), Reply.server_error(503))
    slack_server.always("C-GONE", Reply.slack_error("channel_not_found"))
    smtp_server.script_rcpt("451 4.3.0 mailbox busy, try later", times=2)
    notifier = start_notifier(process_factory, settings)

    limited, flaky, gone, mail = (make_alert(a) for a in ("limited", "flaky", "gone", "mail-retry"))
    produce_alerts(producer, topics.alerts, limited, flaky, gone, mail)

    delivered = wait_for_records(notifier, "alert delivered", 3)
    wait_for_records(notifier, "alert dead-lettered", 1)
    assert {r["alert_id"] for r in delivered} == {limited.alert_id, flaky.alert_id, mail.alert_id}

    first, second = slack_server.for_target("C-429")
    assert first.reply.status == 429
    assert second.delivered
    assert second.time - first.time >= 2.0
    assert [r.reply.status for r in slack_server.for_target("C-500")] == [500, 503, 200]
    assert len(slack_server.for_target("C-GONE")) == 1
    # each delivery line names its alert (DESIGN.md §9: rule_id, account_id, alert_id bound where known)
    retries = log_records(notifier, "delivery retry scheduled")
    ids = {(r.get("alert_id"), r.get("rule_id"), r.get("account_id")) for r in retries}
    assert {(a.alert_id, a.rule_id, a.account_id) for a in (limited, flaky, mail)} <= ids, retries
    [failed] = log_records(notifier, "delivery failed permanently")
    assert (failed.get("alert_id"), failed.get("rule_id"), failed.get("account_id")) == (
        gone.alert_id,
        gone.rule_id,
        gone.account_id,
    )
    assert [a.reply[:3] for a in smtp_server.attempts if a.stage == "RCPT"][:2] == ["451", "451"]
    assert len(smtp_server.wait_for(1)) == 1

    smtp_server.script_rcpt("550 5.7.1 recipient rejected", times=None)
    rejected = make_alert("mail-reject")
    produce_alerts(producer, topics.alerts, rejected)
    wait_for_records(notifier, "alert dead-lettered", 2)

    dead = consume_records(kafka_bootstrap, topics.alerts_dlq, expected=2, timeout_s=30)
    assert len(dead) == 2
    headers = [_headers(r) for r in dead]
    assert {(h["receiver_type"], h["reason"]) for h in headers} == {("slack", "permanent"), ("email", "permanent")}
    assert any("channel_not_found" in h["error"] for h in headers)
    assert {r.key for r in dead} == {b"gone", b"mail-reject"}
    assert not any("xoxb-test-token" in str(h) for h in headers)
    assert not any(b"xoxb-test-token" in r.value for r in dead)
    assert len(smtp_server.messages) == 1
    assert sum(a.reply.startswith("550") for a in smtp_server.attempts) == 1  # dead-lettered, not retried


BILLING_ROUTES = """
receivers:
  - name: billing
    email_configs:
      - to: ["billing-ops@example.com", "{{ account.owner.email }}"]
route:
  receiver: billing
  group_wait: 0s
"""


def test_a_recipient_refused_among_accepted_ones_is_dead_lettered_not_dropped(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    kafka_bootstrap: str,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The owner's mailbox answers 550 while billing-ops takes the email: billing-ops gets it once (no
    re-send), and the alert goes to the dead-letter topic as recipients_refused with the SMTP code."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, BILLING_ROUTES),
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
    )
    smtp_server.script_rcpt("250 OK", times=1)
    smtp_server.script_rcpt("550 5.1.1 no such mailbox", times=1)
    notifier = start_notifier(process_factory, settings)

    alert = make_alert("hooli")
    produce_alerts(producer, topics.alerts, alert)

    (delivered,) = wait_for_records(notifier, "alert delivered", 1)
    assert delivered["alert_id"] == alert.alert_id
    (dead,) = consume_records(kafka_bootstrap, topics.alerts_dlq, expected=1, timeout_s=30)
    headers = _headers(dead)
    assert (headers["receiver_type"], headers["reason"]) == ("email", "recipients_refused")
    assert "550" in headers["error"]
    assert "1 of 2" in headers["error"]
    assert dead.key == b"hooli"
    assert [m.rcpt_tos for m in smtp_server.wait_for(1)] == [("billing-ops@example.com",)]
    assert sum(a.stage == "DATA" for a in smtp_server.attempts) == 1
    # Every dead letter counts where PreemptNotificationsFailing looks (this one was not paged on before).
    assert metric_value(settings, "preempt_notifications_total", receiver_type="email", outcome="dead_lettered") == 1


FINANCE_ROUTES = """
receivers:
  - name: finance
    email_configs:
      - to: ["ar@example.com", "{{ account.owner.email }}", "cfo@example.com"]
route:
  receiver: finance
  group_wait: 0s
"""


def test_a_recipient_refused_for_now_among_accepted_ones_gets_the_email_on_a_retry_of_its_own(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    kafka_bootstrap: str,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The owner's mailbox answers 451 (greylisted) while the two others take the email: the retry sends it
    to the owner alone (the others get it once), and nothing is dead-lettered. Before, the alert was
    dead-lettered at once as recipients_refused and the owner never got it."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, FINANCE_ROUTES),
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
    )
    smtp_server.script_rcpt("250 OK", times=1)
    smtp_server.script_rcpt("451 4.7.1 greylisted, come back later", times=1)
    notifier = start_notifier(process_factory, settings)

    alert = make_alert("wonka-industries", rule_id="invoice-overdue")
    produce_alerts(producer, topics.alerts, alert)

    (delivered,) = wait_for_records(notifier, "alert delivered", 1)
    assert delivered["alert_id"] == alert.alert_id
    assert delivered["attempts"] == 2
    mails = smtp_server.wait_for(2)
    assert [m.rcpt_tos for m in mails] == [
        ("ar@example.com", "cfo@example.com"),
        ("csm-wonka-industries@example.com",),
    ]
    assert mails[0].message["Message-ID"] == mails[1].message["Message-ID"]
    assert consume_records(kafka_bootstrap, topics.alerts_dlq, expected=1, timeout_s=5) == []


SPLIT_ROUTES = """
receivers:
  - {name: chat, slack_configs: [{channel: "{{ account.owner.slack }}"}]}
  - {name: mail, email_configs: [{to: "{{ account.owner.email }}"}]}
route:
  receiver: chat
  group_wait: 0s
  routes:
    - {matchers: ['account_id=~"mail-.*"'], receiver: mail}
"""


def test_an_smtp_server_that_never_answers_does_not_hold_back_slack(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    smtp_blackhole: tuple[str, int],  # noqa: F811
    tmp_path: Path,
) -> None:
    """24 emails to a relay that takes connections and never answers (each attempt lasts the 15 s SMTP
    timeout) do not delay Slack: an alert for Slack produced after them is posted within seconds, not
    after the hung email attempts in front of it have timed out."""
    host, port = smtp_blackhole
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, SPLIT_ROUTES),
        slack_api_url=slack_server.api_url,
        smtp_host=host,
        smtp_port=port,
    )
    start_notifier(process_factory, settings)
    produce_alerts(producer, topics.alerts, *(make_alert(f"mail-{n}") for n in range(24)))
    time.sleep(2.0)  # the notifier has read them: the email attempts have started, and hang

    produced = time.monotonic()
    produce_alerts(producer, topics.alerts, make_alert("chat-1"))
    (posted,) = slack_server.wait_for(1, timeout_s=30)
    assert posted.time - produced < 8.0


def _one_channel_notifier(
    channel: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    slack: FakeSlack,
    tmp_path: Path,
    **overrides: Any,
) -> tuple[Settings, ManagedProcess]:
    """A notifier (started) sending every alert at once to one Slack ``channel`` of ``slack``."""
    routes = (
        f"receivers:\n  - {{name: team, slack_configs: [{{channel: {channel}}}]}}\n"
        "route:\n  receiver: team\n  group_wait: 0s\n"
    )
    settings = notifier_settings(
        settings_factory, write_routes(tmp_path, routes), slack_api_url=slack.api_url, **overrides
    )
    return settings, start_notifier(process_factory, settings)


def test_the_notifiers_own_pacing_of_a_busy_channel_is_not_counted_as_retries(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Ten alerts in ten groups to one healthy channel go out one a second: ten requests, ten ``sent``, no
    ``retried`` — nothing was tried twice. Before, each message held back for the channel's next slot counted
    as a retry (9 for 6 here), so a burst to one channel looked like a flaky Slack and, sustained, fired
    PreemptNotificationRetriesHigh (retries over half of the attempts) with every message delivered first time.

    The INFO summaries of the holds count them all, each message's wait once: the first at once (held=1), the rest
    when its 10 s end, though the burst is over by then. Before, the burst's INFO log was one 'held: 1'; the other
    holds waited for the next.

    The line is longer than the give-up window (3 s here: the tenth message goes out about 9.5 s after the first), and
    is delivered in full: waiting for a slot is not failing (before, 3 of 6 were delivered, the others dead-lettered
    gave_up); while its oldest waits longer than the window /readyz says so, and is ready again once it is out."""
    settings, notifier = _one_channel_notifier(
        "C-BUSY", settings_factory, process_factory, slack_server, tmp_path, delivery_give_up_seconds=3.0
    )
    produce_alerts(producer, topics.alerts, *(make_alert(f"busy-{i}") for i in range(10)))
    body = wait_readyz(settings, lambda s, b: "deliveries waiting for a pacing slot:" in b.get("reason", ""), 30)
    assert "(longer than the give-up window, 3 s)" in body["reason"]
    slack_server.wait_for(10, target="C-BUSY", timeout_s=60)
    wait_for_records(notifier, "alert delivered", 10, timeout_s=30)
    wait_readyz(settings, lambda s, b: s == 200)

    assert len(slack_server.for_target("C-BUSY")) == 10
    assert metric_value(settings, "preempt_notifications_total", receiver_type="slack", outcome="sent") == 10
    assert metric_value(settings, "preempt_notifications_total", receiver_type="slack", outcome="retried") == 0
    assert metric_value(settings, "preempt_notifications_total", receiver_type="slack", outcome="dead_lettered") == 0
    assert metric_sample(settings, "preempt_notifier_deliveries_paced") == 0  # exported; the line is gone
    summaries = wait_for_records(notifier, HELD_SUMMARY, 2, timeout_s=20)
    assert summaries[0]["held"] == 1
    assert sum(s["held"] for s in summaries) == 9  # every message but the first waited for its slot, counted once


def test_a_line_that_outgrows_the_pending_limit_waits_in_kafka_and_is_delivered_in_full(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Twelve alerts to one Slack channel (one message a second) with PREEMPT_NOTIFIER_MAX_PENDING_DELIVERIES=4: the
    notifier never holds more than four deliveries, says so (WARNING, gauge, /readyz 503 naming the limit), leaves the
    rest in preempt.alerts, and delivers all twelve once each — nothing is dropped and no partition is called
    stalled. Before, every alert read joined the line in memory, however long it grew."""
    settings, notifier = _one_channel_notifier(
        "C-LINE", settings_factory, process_factory, slack_server, tmp_path, notifier_max_pending_deliveries=4
    )
    produce_alerts(producer, topics.alerts, *(make_alert(f"line-{i}") for i in range(12)))
    body = wait_readyz(settings, lambda s, b: "not taking new alerts:" in b.get("reason", ""), 30)
    assert "PREEMPT_NOTIFIER_MAX_PENDING_DELIVERIES=4" in body["reason"]
    peak, paused_seen = 0.0, 0.0
    deadline = time.monotonic() + 60
    while len(slack_server.for_target("C-LINE")) < 12 and time.monotonic() < deadline:
        peak = max(peak, metric_value(settings, "preempt_notifier_deliveries_pending"))
        paused_seen = max(paused_seen, metric_value(settings, "preempt_notifier_intake_paused"))
        time.sleep(0.1)
    assert 1 <= peak <= 4
    assert paused_seen == 1
    wait_for_records(notifier, "alert delivered", 12, timeout_s=30)
    wait_readyz(settings, lambda s, b: s == 200)

    posted = slack_server.for_target("C-LINE")
    assert len(posted) == 12
    assert metric_value(settings, "preempt_notifications_total", receiver_type="slack", outcome="sent") == 12
    assert metric_value(settings, "preempt_notifier_intake_pauses_total") >= 1
    assert metric_value(settings, "preempt_notifier_intake_paused") == 0
    assert metric_value(settings, "preempt_notifier_deliveries_pending") == 0
    assert metric_value(settings, "preempt_partition_stalls_total", topic=topics.alerts) == 0
    assert metric_value(settings, "preempt_notifier_skipped_alerts_total", outcome="repaired") == 0
    assert metric_value(settings, "preempt_notifier_skipped_alerts_total", outcome="lost") == 0
    (first_pause, *_) = wait_for_records(notifier, PAUSED, 1, timeout_s=5)
    assert first_pause["limit"] == 4
    assert wait_for_records(notifier, RESUMED, 1, timeout_s=5)


def test_a_long_intake_pause_stops_fetching_the_alerts_only(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """Limit 3, every alert in a group of its own that waits 10 minutes: the intake pauses for good. 20,000 more
    alerts (far more than Faust's agent buffer takes, 4,096) wait in Kafka; the notifier goes on reading
    preempt.feedback (an invalid record is reported at once) and stays in its group. Left fetched (tried), the
    alerts filled the agent's buffer, and a full buffer blocks Faust's fetcher for every topic: the feedback was
    not read within 20 s, and after broker_max_poll_interval the consumer would leave its group."""
    routes = (
        "receivers:\n  - {name: team, console_configs: [{}]}\n"
        "route:\n  receiver: team\n  group_wait: 10m\n  group_by: [alert_id]\n"
    )
    settings = notifier_settings(settings_factory, write_routes(tmp_path, routes), notifier_max_pending_deliveries=3)
    notifier = start_notifier(process_factory, settings)
    produce_alerts(producer, topics.alerts, *(make_alert(f"wait-{i}") for i in range(20_000)))
    wait_readyz(settings, lambda s, b: "not taking new alerts: 3 deliveries pending" in b.get("reason", ""), 30)
    time.sleep(5)  # what Faust fetched before the pause reaches the agent's buffer
    producer.send(topics.feedback, key=b"wait-0", value=b"not a feedback record")
    producer.flush()
    (ignored,) = wait_for_records(notifier, "invalid feedback record ignored", 1, timeout_s=20)
    assert metric_value(settings, "preempt_notifier_deliveries_pending") == 3
    assert metric_value(settings, "preempt_notifier_intake_paused") == 1
    assert metric_value(settings, "preempt_notifier_intake_pauses_total") == 1
    assert "pending deliveries handed over on rebalance" not in notifier.log_text()
    assert len(log_records(notifier, "notifier ready")) == 1  # no rebalance
    # Faust skipped no alert: none of a poll's records was dropped as its partition was paused
    assert metric_value(settings, "preempt_notifier_skipped_alerts_total", outcome="repaired") == 0
    assert ignored["offset"] == 0
