"""``preempt notifier`` with Faust's record skip made to happen (``python -m tests.integration.skipping_notifier``).

faust-streaming 0.15 was seen to acknowledge a record without handing it to the agent (about one record in
80,000, soon after an assignment); it cannot be made to happen on demand. This reproduces what it does:
the record named by ``SKIP_ALERT_RECORD`` (``topic:partition:offset``) is dropped from what the consumer's
``getmany`` yields to Faust's drain loop, once. The drain loop then sees the next offset jump past it and
marks the offset done itself (``Consumer._add_gap``), exactly as after the real skip, so Faust commits
past the record and no agent is ever given it. Everything else is the real notifier on the real broker.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from faust.transport.consumer import Consumer


def drop_one_record(topic: str, partition: int, offset: int) -> None:
    """Make every Faust consumer of this process skip ``topic:partition:offset`` once, with a line on stdout."""
    original = Consumer.getmany
    dropped: list[bool] = []

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109 - Faust's signature
        async for tp, message in original(self, timeout):
            if not dropped and (tp.topic, tp.partition, message.offset) == (topic, partition, offset):
                dropped.append(True)
                line = {"event": "test: record dropped before the agent", "partition": partition, "offset": offset}
                print(json.dumps(line), flush=True)
                continue
            yield tp, message

    Consumer.getmany = getmany  # type: ignore[method-assign]


if __name__ == "__main__":
    topic, partition, offset = os.environ["SKIP_ALERT_RECORD"].rsplit(":", 2)
    drop_one_record(topic, int(partition), int(offset))
    from streams.cli.main import main

    sys.argv = ["preempt", "notifier"]
    sys.exit(main())
