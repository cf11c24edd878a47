"""Publisher SDK throughput: events/s from ``Publisher.track`` to the local broker, acks=all.

Run:  .venv/bin/python -m bench.publisher [--events 100000] [--accounts 100] [--linger-ms 5] [--threads 1]

Uses a throw-away topic prefix (its topics are deleted at the end). The figure covers local
validation, encoding, kafka-python batching and the final flush (every event acknowledged).
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

from kafka import KafkaAdminClient

from streams.runtime.kafka_clients import kafka_python_config
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from streams.sdk.publisher import Publisher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args()
    settings = Settings(broker=f"kafka://{args.bootstrap}", topic_prefix=f"bench{uuid.uuid4().hex[:8]}")
    publisher = Publisher.from_settings(settings, linger_ms=args.linger_ms)
    per_thread = args.events // args.threads

    def work(offset: int) -> None:
        for i in range(per_thread):
            n = offset + i
            publisher.track(
                f"acct-{n % args.accounts}",
                "Report Exported",
                user_id=f"u-{n % 997}",
                properties={"format": "csv", "rows": n % 5000},
                context={"app": "web"},
            )

    threads = [threading.Thread(target=work, args=(t * per_thread,)) for t in range(args.threads)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent_at = time.perf_counter()
    publisher.close()
    done = time.perf_counter()
    total = per_thread * args.threads
    print(
        f"{total} events, {args.accounts} accounts, linger_ms={args.linger_ms}, threads={args.threads}: "
        f"{total / (done - start):,.0f} events/s acknowledged "
        f"(track loop {total / (sent_at - start):,.0f}/s, final flush {done - sent_at:.2f}s)"
    )
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **kafka_python_config(settings))
    try:
        names = TopicNames.from_settings(settings)
        admin.delete_topics(
            [names.events, names.events_dlq, names.accounts, names.alerts, names.alerts_dlq, names.feedback]
        )
    finally:
        admin.close()


if __name__ == "__main__":
    main()
