"""Scenario 7: the notifier SIGKILLed between Slack accepting a message and recording the delivery.

Slack (the test suite's Slack-speaking server) takes each killed message in and holds its answer
for a few seconds; the notifier is SIGKILLed while it waits, so Slack has the message and the
delivery log does not — the one window the log cannot cover. Repeated ``kills`` times, then a last
notifier finishes. Counted from Slack's side: every alert arrives, and the only duplicates are the
messages that were in flight at a kill.
"""

from __future__ import annotations

import signal

from alerts.testing.slack_server import FakeSlack, Reply
from streams.runtime.testing import free_port
from streams.runtime.topics import ensure_topics
from tests.chaos.harness import Context, Row, poll, started, wait
from tests.integration.notifier_harness import make_alert, produce_alerts

CHANNEL = "C-KILL"


def run_notifier_kills(ctx: Context, kills: int = 3) -> Row:
    """Scenario 7 (see the module docstring)."""
    row = Row(f"7 notifier SIGKILLed {kills}x between Slack's 200 and the record")
    count = 6 if ctx.quick else 12
    alerts = [make_alert(f"kill-{i:02d}") for i in range(count)]
    row.load = f"{count} alerts, {count} groups, 1 channel"
    row.expected = row.emitted = count
    with started(FakeSlack()) as slack:
        routes = ctx.workdir / "routes-kill.yaml"
        routes.write_text(
            f"receivers:\n  - {{name: s, slack_configs: [{{channel: {CHANNEL}}}]}}\n"
            "route: {receiver: s, group_wait: 0s, group_interval: 1s}\n"
        )
        settings = ctx.settings("notifier-kills", routes_path=routes, slack_api_url=slack.api_url)
        ensure_topics(settings)
        producer = ctx.producer(settings)
        try:
            produce_alerts(producer, settings.topic("alerts"), *alerts)
        finally:
            producer.close()

        def for_alert(account_id: str) -> int:
            return sum(1 for r in slack.delivered(CHANNEL) if account_id in str(r.body))

        in_flight: list[str] = []
        for i in range(kills):
            slack.script(CHANNEL, Reply.slow(20.0))  # Slack takes the message in, answers 20 s later
            seen = len(slack.for_target(CHANNEL))
            notifier = ctx.start(
                ["preempt", "notifier"], settings.model_copy(update={"notifier_web_port": free_port()}),
                name=f"kill-notifier-{i}",
            )  # fmt: skip
            wait(notifier, "notifier ready", 120)
            # The first request of this life is the slow one: kill while it waits for the answer.
            poll(lambda: len(slack.for_target(CHANNEL)) > seen, timeout_s=60, interval_s=0.05)  # noqa: B023
            notifier.kill(signal.SIGKILL)
            requests = slack.for_target(CHANNEL)
            if len(requests) > seen:
                body = str(requests[seen].body)
                in_flight += [a.account_id for a in alerts if a.account_id in body]
        final = ctx.start(
            ["preempt", "notifier"], settings.model_copy(update={"notifier_web_port": free_port()}),
            name="kill-notifier-final",
        )  # fmt: skip
        wait(final, "notifier ready", 120)
        poll(lambda: all(for_alert(a.account_id) >= 1 for a in alerts), timeout_s=120)
        poll(lambda: False, timeout_s=3.0)  # a late duplicate would arrive now
        final.stop()
        per_alert = {a.account_id: for_alert(a.account_id) for a in alerts}
    row.faults = f"SIGKILL {kills}x while Slack held its answer to a message it had taken"
    row.delivered = sum(1 for n in per_alert.values() if n >= 1)
    row.lost = count - row.delivered
    row.duplicated = sum(n - 1 for n in per_alert.values() if n > 1)
    outside = [a for a, n in per_alert.items() if n > 1 and in_flight.count(a) < n - 1]
    row.check(row.lost == 0, "every alert delivered")
    row.check(len(in_flight) == kills, "each kill landed with a message in flight")
    row.check(not outside, "duplicates only from the kill window")
    row.check(row.duplicated <= kills, "at most one duplicate per kill")
    row.notes.append(f"in flight at the kills: {', '.join(in_flight)}; {row.duplicated} duplicates")
    return row.finish()
