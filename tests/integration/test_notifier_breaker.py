"""A destination refusing every message is probed by one delivery at a time, not by every alert it holds.

Before, each held alert retried on its own, up to 16 at once per destination: 30 alerts held by a wrong SMTP
password made 210 connections with a failed login in the first minute (what gets an account locked), and a
revoked Slack token was called by every held alert. And an SMTP relay refusing to relay for the notifier
("554 5.7.1 Relay access denied" to every recipient) or refusing its sender dead-lettered every alert at once,
where they are the destination's failure (``alerts/retry.py``, ``alerts/channels/email.py``'s ``smtp_scope``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from alerts.retry import MAX_IN_FLIGHT_PER_DESTINATION
from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from alerts.testing.smtp_server import FakeSMTP, smtp_server  # noqa: F401
from schemas.alert import Alert
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import (
    OUTAGE_LINE,
    log_records,
    make_alert,
    metric_value,
    notifier_settings,
    produce_alerts,
    readyz,
    start_notifier,
    wait_for_records,
    write_routes,
)

ROUTES = """
receivers:
  - {name: owners, slack_configs: [{channel: "{{ account.owner.slack }}"}]}
  - {name: renewals-mail, email_configs: [{to: "{{ account.owner.email }}"}]}
route:
  receiver: owners
  group_wait: 0s
  routes:
    - {matchers: ['account_id=~"contoso-.*"'], receiver: renewals-mail}
"""
RETRY_LINE = "delivery retry scheduled"


def _email_settings(
    settings_factory: Callable[..., Settings], smtp: FakeSMTP, tmp_path: Path, **extra: Any
) -> Settings:
    return notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        delivery_failing_seconds=3.0,
        **extra,
    )


def _owned(account_id: str, slack: str) -> Alert:
    return make_alert(
        account_id,
        account={
            "name": account_id.title(),
            "tier": "enterprise",
            "owner": {"name": "Dana", "email": f"csm-{account_id}@example.com", "slack": slack},
        },
    )


def _probe_only(notifier: ManagedProcess, retries: int) -> list[dict[str, Any]]:
    """Wait for ``retries`` retries and check that they are all one delivery's (the probe's): the other held
    deliveries do not try the destination."""
    found = wait_for_records(notifier, RETRY_LINE, retries, timeout_s=60)
    assert {r["group_key"] for r in found} == {found[0]["group_key"]}, Counter(r["group_key"] for r in found)
    return found


def test_a_wrong_smtp_password_is_tried_by_one_held_alert_at_a_time_and_every_alert_goes_out_once_fixed(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """30 alerts held by a rotated SMTP password: after the first attempts (at most the server's 16 slots), only
    the probe logs in, at its backoff; nothing is dead-lettered, /readyz says deliveries failing, the breaker
    gauge says 1. Once the password works, the 30 alerts go out, each once, and the gauge is back to 0."""
    settings = _email_settings(
        settings_factory,
        smtp_server,
        tmp_path,
        smtp_username="preempt",
        smtp_password="old-password",
        smtp_allow_plaintext_auth=True,
    )
    smtp_server.password = "rotated-password"
    notifier = start_notifier(process_factory, settings)
    produce_alerts(producer, topics.alerts, *[make_alert(f"contoso-{n}", rule_id="champion-left") for n in range(30)])

    [error] = wait_for_records(notifier, OUTAGE_LINE, 1)
    assert error["destination"] == f"SMTP server {smtp_server.host}:{smtp_server.port}"
    _probe_only(notifier, 8)
    failed = smtp_server.failed_login_sessions
    retries = len(log_records(notifier, RETRY_LINE))  # read after: only grows
    assert failed <= MAX_IN_FLIGHT_PER_DESTINATION + retries + 1, (failed, retries)  # + the probe in flight
    assert len(wait_for_records(notifier, OUTAGE_LINE, 1)) == 1
    assert metric_value(settings, "preempt_notifier_breakers_open", receiver_type="email") == 1
    status, body = readyz(settings)
    assert status == 503
    assert "renewals-mail/email" in body
    assert metric_value(settings, "preempt_notifications_total", receiver_type="email", outcome="dead_lettered") == 0
    assert smtp_server.messages == []

    smtp_server.password = "old-password"  # the relay is put right
    smtp_server.wait_for(30, timeout_s=60)
    [closed] = wait_for_records(notifier, "delivery breaker closed: the held deliveries go out", 1)
    assert closed["released"] == 29
    wait_for_records(notifier, "alert delivered", 30)
    assert sorted(m.rcpt_tos for m in smtp_server.messages) == sorted(
        (f"csm-contoso-{n}@example.com",) for n in range(30)
    )
    assert metric_value(settings, "preempt_notifier_breakers_open", receiver_type="email") == 0
    assert metric_value(settings, "preempt_notifications_total", receiver_type="email", outcome="dead_lettered") == 0


def test_a_revoked_slack_token_is_called_by_one_held_alert_at_a_time(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The bot token is revoked and 10 alerts go to 10 owners' channels: each channel is tried once (the loop
    cannot know before that it shares the token), then only the probe calls Slack; once the token works, each
    owner gets their alert once."""
    channels = [f"C-OWNER-{n}" for n in range(10)]
    for channel in channels:
        slack_server.always(channel, Reply.slack_error("token_revoked"))
    settings = notifier_settings(settings_factory, write_routes(tmp_path, ROUTES), slack_api_url=slack_server.api_url)
    notifier = start_notifier(process_factory, settings)
    produce_alerts(producer, topics.alerts, *[_owned(f"northwind-{n}", channel) for n, channel in enumerate(channels)])

    [error] = wait_for_records(notifier, OUTAGE_LINE, 1)
    assert error["destination"] == "Slack Web API (PREEMPT_SLACK_BOT_TOKEN)"
    _probe_only(notifier, 6)
    calls = len(slack_server.requests)
    retries = len(log_records(notifier, RETRY_LINE))
    assert calls <= len(channels) + retries + 1, (calls, retries)
    assert metric_value(settings, "preempt_notifier_breakers_open", receiver_type="slack") == 1
    assert metric_value(settings, "preempt_notifications_total", receiver_type="slack", outcome="dead_lettered") == 0

    for channel in channels:
        slack_server.always(channel, Reply.ok())
    slack_server.wait_for(10, timeout_s=60)
    wait_for_records(notifier, "alert delivered", 10)
    assert sorted(r.target for r in slack_server.delivered()) == sorted(channels)
    assert metric_value(settings, "preempt_notifier_breakers_open", receiver_type="slack") == 0


def test_a_relay_refusing_to_relay_holds_the_alerts_instead_of_dead_lettering_them(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """ "554 5.7.1 Relay access denied" to every recipient is the relay refusing this notifier (no login, a host
    it does not relay for), not five bad addresses: the alerts are held (one ERROR saying to fix the relay, one
    probe), and delivered once each when the relay is fixed."""
    settings = _email_settings(settings_factory, smtp_server, tmp_path)
    smtp_server.script_rcpt("554 5.7.1 <csm@example.com>: Relay access denied", times=None)
    notifier = start_notifier(process_factory, settings)
    produce_alerts(producer, topics.alerts, *[make_alert(f"contoso-{n}") for n in range(5)])

    [error] = wait_for_records(notifier, OUTAGE_LINE, 1)
    assert "Relay access denied" in error["error"]
    assert "relay" in error["fix"]
    _probe_only(notifier, 4)
    assert log_records(notifier, "alert dead-lettered") == []

    smtp_server.script_rcpt("250 OK", times=None)  # the relay now relays for the notifier
    smtp_server.wait_for(5, timeout_s=60)
    wait_for_records(notifier, "alert delivered", 5)
    assert sorted(m.rcpt_tos for m in smtp_server.messages) == sorted(
        (f"csm-contoso-{n}@example.com",) for n in range(5)
    )
    assert log_records(notifier, "alert dead-lettered") == []


def test_a_refused_sender_holds_the_alerts_and_a_refused_recipient_is_still_dead_lettered(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    smtp_server: FakeSMTP,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The relay refuses the sender at MAIL (every email has it): held, one ERROR naming the sender and
    PREEMPT_SMTP_FROM, delivered once the sender is accepted. A recipient refused for good (550 5.1.1) is that
    alert's: dead-lettered ``permanent`` with the reply, and no breaker opens."""
    settings = _email_settings(settings_factory, smtp_server, tmp_path, smtp_from="Preempt <alerts@example.com>")
    smtp_server.script_mail("553 5.7.1 <alerts@example.com>: Sender address rejected: not owned by user")
    notifier = start_notifier(process_factory, settings)
    produce_alerts(producer, topics.alerts, *[make_alert(f"contoso-{n}") for n in range(3)])

    [error] = wait_for_records(notifier, OUTAGE_LINE, 1)
    # (the log redacts the address itself)
    assert error["destination"].startswith(f"SMTP server {smtp_server.host}:{smtp_server.port}, sender ")
    assert "PREEMPT_SMTP_FROM" in error["fix"]
    _probe_only(notifier, 3)
    assert log_records(notifier, "alert dead-lettered") == []

    smtp_server.script_mail(None)
    smtp_server.wait_for(3, timeout_s=60)
    wait_for_records(notifier, "alert delivered", 3)
    assert metric_value(settings, "preempt_notifier_breakers_open", receiver_type="email") == 0

    smtp_server.script_rcpt("550 5.1.1 <csm-contoso-x@example.com>: Recipient address rejected: User unknown")
    produce_alerts(producer, topics.alerts, make_alert("contoso-x"))
    [dead] = wait_for_records(notifier, "alert dead-lettered", 1)
    assert dead["reason"] == "permanent"
    assert "550" in dead["detail"]
    assert "User unknown" in dead["detail"]
    assert metric_value(settings, "preempt_notifier_breakers_open", receiver_type="email") == 0
    assert len(smtp_server.messages) == 3


def test_a_delivery_to_another_channel_of_the_fixed_token_releases_the_held_alerts_at_once(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The bot token is revoked: channel C-OLD's two alerts open the token's breaker (one probes, one is held),
    with a probe backoff of a minute or more. The token is fixed and an alert for channel C-NEW (never seen
    failing) goes through first: that proves the token, so the breaker closes and C-OLD's alerts go out within
    seconds, not at the probe's next backoff (before: the held alert waited for it)."""
    slack_server.always("C-OLD", Reply.slack_error("token_revoked"))
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        delivery_retry_initial_seconds=120.0,
        delivery_retry_max_seconds=300.0,
    )
    notifier = start_notifier(process_factory, settings)
    produce_alerts(producer, topics.alerts, _owned("northwind-1", "C-OLD"), _owned("northwind-2", "C-OLD"))
    wait_for_records(notifier, OUTAGE_LINE, 1)
    wait_for_records(notifier, RETRY_LINE, 1)  # the probe waits 60-120 s
    assert metric_value(settings, "preempt_notifier_breakers_open", receiver_type="slack") == 1

    slack_server.always("C-OLD", Reply.ok())  # the token is fixed
    produce_alerts(producer, topics.alerts, _owned("northwind-3", "C-NEW"))
    [closed] = wait_for_records(notifier, "delivery breaker closed: the held deliveries go out", 1, timeout_s=30)
    assert closed["destination"] == "Slack Web API (PREEMPT_SLACK_BOT_TOKEN)"
    slack_server.wait_for(3, timeout_s=20)  # the probe's retry is a minute away at least
    assert sorted(r.target for r in slack_server.delivered()) == ["C-NEW", "C-OLD", "C-OLD"]
    assert metric_value(settings, "preempt_notifier_breakers_open", receiver_type="slack") == 0
