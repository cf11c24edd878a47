"""How the watchdogs bound their samples of the end offsets (``UnreadableOffsets``)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from streams.runtime.stall_reports import UnreadableOffsets


def test_a_sample_that_fails_after_its_wait_ended_leaves_no_unretrieved_task_error() -> None:
    """A sample kept past its bound (leaders gone: aiokafka answers with an error after its request
    timeout) is dropped when the next one starts; its error must not reach the event loop's handler as
    'Task exception was never retrieved' (a traceback in the process's log in every such episode)."""
    reported: list[dict[str, Any]] = []

    async def run() -> int:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: reported.append(context))
        offsets = UnreadableOffsets("t", 10.0, lambda: 0.0)

        async def late_failure() -> int:
            await asyncio.sleep(0.05)
            raise ConnectionError("request timed out")

        async def answer() -> int:
            return 7

        with pytest.raises(TimeoutError):
            await offsets.sample(late_failure, 0.01)
        await asyncio.sleep(0.1)  # the kept sample fails meanwhile
        got = await offsets.sample(answer, 1.0)
        gc.collect()
        await asyncio.sleep(0)
        return got

    assert asyncio.run(run()) == 7
    assert [c.get("message") for c in reported] == []
