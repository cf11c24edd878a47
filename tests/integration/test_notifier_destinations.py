"""Slack webhooks that take requests and never answer hold back their own deliveries only.

Before, attempts in flight were bounded per channel type (16 for all of Slack): the attempts hanging on a
few webhooks (each up to Slack's 10 s timeout, one started per second per webhook by the pacing) took
every Slack slot, and the messages of every other Slack receiver waited for one to time out (measured: up
to 7.9 s behind four hanging webhooks). Now the bound is per destination, plus one for the process."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import (
    log_records,
    make_alert,
    notifier_settings,
    produce_alerts,
    start_notifier,
    write_routes,
)

HANGING = 6
MAX_DELAY_S = 3.0  # a healthy webhook answers in milliseconds; a slot freed by a hanging one takes up to 10 s


def _routes(slack: FakeSlack) -> str:
    receivers = [
        f"  - {{name: ops-{n}, slack_configs: [{{webhook_url: '{slack.webhook_url(f'ops-{n}')}'}}]}}"
        for n in range(HANGING)
    ]
    routes = [f"    - {{matchers: ['account_id=~\"globex-{n}-.*\"'], receiver: ops-{n}}}" for n in range(HANGING)]
    return "\n".join(
        [
            "receivers:",
            f"  - {{name: team-b, slack_configs: [{{webhook_url: '{slack.webhook_url('team-b')}'}}]}}",
            *receivers,
            "route:",
            "  receiver: team-b",
            "  group_wait: 0s",
            "  routes:",
            *routes,
            "",
        ]
    )


def test_webhooks_that_never_answer_do_not_delay_another_webhook_receiver(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Six webhooks hang with a backlog of alerts each; alerts routed to a healthy webhook are each
    delivered within seconds of being produced, while the hanging ones are still being retried."""
    for n in range(HANGING):
        slack_server.always(f"ops-{n}", Reply.hang())
    settings = notifier_settings(settings_factory, write_routes(tmp_path, _routes(slack_server)), slack_bot_token=None)
    notifier = start_notifier(process_factory, settings)

    backlog = [make_alert(f"globex-{n}-{m}", rule_id="usage-cliff") for n in range(HANGING) for m in range(15)]
    produce_alerts(producer, topics.alerts, *backlog)
    deadline = time.monotonic() + 30
    while len(slack_server.requests) < 6 * HANGING and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3.0)  # the hanging attempts pile up (one more per webhook each second)

    delays = []
    for m in range(6):
        alert = make_alert(f"initech-{m}", rule_id="admin-churned")
        sent = time.monotonic()
        produce_alerts(producer, topics.alerts, alert)
        got = slack_server.wait_for(m + 1, target="team-b", timeout_s=30)
        delays.append(got[-1].time - sent)
        time.sleep(1.2)
    assert max(delays) < MAX_DELAY_S, delays
    delivered = {r["target"] for r in log_records(notifier, "alert delivered")}
    assert delivered == {"team-b/slack"}  # the hanging ones are still being retried
