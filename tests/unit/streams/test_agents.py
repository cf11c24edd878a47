"""The events agent's buffer survives Faust's flow-control resume."""

from __future__ import annotations

import asyncio

import faust

from streams.agents import keep_events_across_flow_resume


def test_flow_resume_no_longer_clears_the_agents_queue() -> None:
    """After the hook, ``flow_control.resume()`` leaves queued records in the stream's channel queue."""

    async def scenario() -> tuple[int, int]:
        app = faust.App("test-flow-resume", broker="memory://", web_enabled=False)
        other = app.topic("other").clone(is_iterator=True)
        stream = app.stream(app.topic("events").clone(is_iterator=True))
        for q in (stream.channel.queue, other.queue):
            q.put_nowait("record")
        keep_events_across_flow_resume(app, stream)
        app.flow_control.resume()
        return stream.channel.queue.qsize(), other.queue.qsize()

    kept, cleared = asyncio.run(scenario())
    assert (kept, cleared) == (1, 0)
