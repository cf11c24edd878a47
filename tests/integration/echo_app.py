"""A minimal Faust app for the foundation round-trip test: every record on ECHO_IN goes to ECHO_OUT
with its value upper-cased and a per-key count from a changelog-backed table."""

from __future__ import annotations

import os
from typing import Any

import faust

app = faust.App(
    os.environ["ECHO_APP_ID"],
    broker=os.environ["ECHO_BROKER"],
    store="memory://",
    topic_partitions=2,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    # the test's temporary folder, not the working one (Faust writes <id>-data/ there)
    datadir=os.environ["ECHO_DATADIR"],
)
source = app.topic(os.environ["ECHO_IN"], key_serializer="raw", value_serializer="raw", partitions=2)
sink = app.topic(os.environ["ECHO_OUT"], key_serializer="raw", value_serializer="raw", partitions=2)
counts = app.Table("echo-counts", default=int, partitions=2)


@app.agent(source)
async def echo(stream: Any) -> None:
    async for record in stream.events():
        counts[record.key] += 1
        await sink.send(key=record.key, value=record.value.upper() + b"#" + str(counts[record.key]).encode())
        print("echoed", record.key, flush=True)
