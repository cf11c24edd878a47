"""``preempt notifier`` with Faust's record skip made to happen (``python -m tests.integration.skipping_notifier``).

faust-streaming 0.15 was seen to acknowledge a record without handing it to the agent (about one record in
80,000, soon after an assignment); it cannot be made to happen on demand. ``faust_compat.drop_one_record``
reproduces what it does: the record named by ``SKIP_ALERT_RECORD`` (``topic:partition:offset``) is dropped
once from what the consumer's ``getmany`` yields to Faust's drain loop, which then marks the offset done
itself, exactly as after the real skip. Everything else is the real notifier on the real broker.
"""

from __future__ import annotations

import json
import os
import sys

from streams.runtime.faust_compat import drop_one_record


def _said_dropped(partition: int, offset: int) -> None:
    line = {"event": "test: record dropped before the agent", "partition": partition, "offset": offset}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    topic, partition, offset = os.environ["SKIP_ALERT_RECORD"].rsplit(":", 2)
    drop_one_record(topic, int(partition), int(offset), lambda: _said_dropped(int(partition), int(offset)))
    from streams.cli.main import main

    sys.argv = ["preempt", "notifier"]
    sys.exit(main())
