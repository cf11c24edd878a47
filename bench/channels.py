"""Benchmark of the notifier channels alone: Slack (bot token, chat.postMessage) against the local fake
Slack server and email against a local aiosmtpd, sequential sends, per-send latency.

    .venv/bin/python -m bench.channels [--n 500]

Slack is paced at one message per second per channel, so the Slack run spreads messages over
``n`` distinct channels (one message each) to measure the client, Block Kit and HTTP path itself.
No broker needed. Figures depend on the machine; rerun rather than trust old numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from alerts.channels.base import Notification
from alerts.channels.email import EmailNotifier
from alerts.channels.slack import ChannelRateLimiter, SlackNotifier
from alerts.routing.config import EmailReceiver, SlackReceiver
from alerts.testing.factories import build_alert
from alerts.testing.slack_server import FakeSlack
from alerts.testing.smtp_server import FakeSMTP
from streams.runtime.settings import Settings


async def _measure(n: int, send: Callable[[int], Awaitable[object]]) -> tuple[float, list[float]]:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        await send(i)
        latencies.append(time.perf_counter() - t0)
    return time.perf_counter() - start, latencies


def _report(name: str, n: int, elapsed: float, latencies: list[float]) -> None:
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<28} {n / elapsed:8.1f} msg/s   p50 {q[49] * 1000:6.2f} ms   p99 {q[98] * 1000:6.2f} ms"
        f"   max {max(latencies) * 1000:6.2f} ms"
    )


async def main(n: int) -> None:
    """Run both channels and print throughput and latency percentiles."""
    slack, smtp = FakeSlack(), FakeSMTP()
    slack.start()
    smtp.start()
    try:
        settings = Settings(slack_bot_token="xoxb-bench", slack_api_url=slack.api_url)  # noqa: S106 — fake token
        notifier = SlackNotifier(SlackReceiver(channel="{{ alert.labels.channel }}"), settings, ChannelRateLimiter())
        alerts = [build_alert(labels={"channel": f"C{i:05d}"}) for i in range(n)]

        async def post(i: int) -> object:
            return await notifier.send(Notification(receiver="bench", alerts=(alerts[i],), group_key=str(i)))

        await post(0)  # warm-up: session, connection
        alerts = [build_alert(labels={"channel": f"D{i:05d}"}) for i in range(n)]
        elapsed, lat = await _measure(n, post)
        _report("slack chat.postMessage", n, elapsed, lat)
        digest = tuple(build_alert() for _ in range(10))

        async def post_digest(i: int) -> object:
            one = tuple(a.model_copy(update={"labels": {"channel": f"G{i:05d}"}}) for a in digest)
            return await notifier.send(Notification(receiver="bench", alerts=one, group_key=str(i)))

        elapsed, lat = await _measure(n, post_digest)
        _report("slack digest of 10", n, elapsed, lat)
        await notifier.aclose()

        mail = EmailNotifier(
            EmailReceiver(to=("{{ account.owner.email }}",)),
            Settings(smtp_host=smtp.host, smtp_port=smtp.port),
        )
        m = max(n // 5, 20)
        elapsed, lat = await _measure(
            m, lambda i: mail.send(Notification(receiver="bench", alerts=(alerts[i],), group_key=str(i)))
        )
        _report("email (new SMTP session each)", m, elapsed, lat)
    finally:
        slack.stop()
        smtp.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="messages per Slack run")
    asyncio.run(main(parser.parse_args().n))
