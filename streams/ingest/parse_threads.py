"""Where ingest parses request bodies: in worker threads, so the event loop keeps answering meanwhile.

Reading, validating and mapping a body is pure CPU work (``payload.parse_body``,
``tracking.parse_tracking``): an 8 MiB batch of tiny values took 3-5 s. Run on the event loop, it
held every other request for that long — ``/healthz`` and ``/readyz`` (a kubelet probe with a 1-3 s
timeout restarted a healthy pod), ``/metrics``, other senders' small POSTs. In a thread it gives the
loop the interpreter lock back every switch interval (5 ms), so the loop waits at most for one C call
of the parse (orjson reading the whole body: ~0.1 s for 8 MiB).

Two lanes, each first in, first out: ordinary bodies (up to ``PREEMPT_INGEST_MAX_BODY_BYTES``) in one
thread, so they are parsed one at a time, in the order they were read, as on the loop before (and
the memory a parse costs, ~9 times the body, is held by one at a time); bodies over it in as many
threads as ``PREEMPT_INGEST_LARGE_BODIES_IN_FLIGHT`` allows at once, so a small batch never waits
behind a large one. Everything else a request does (slots, Kafka, metrics, dead letters, the answer)
stays on the loop, in the same order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiohttp import web

T = TypeVar("T")


class ParseThreads:
    """The threads that parse request bodies; built by ``create_ingest_app``, shut down at its cleanup."""

    def __init__(self, large_slots: int) -> None:
        self._ordinary = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-parse")
        self._large = ThreadPoolExecutor(max_workers=large_slots, thread_name_prefix="ingest-parse-large")

    async def run(self, parse: Callable[[], T], *, large: bool) -> T:
        """``parse()`` (pure: no logs, no metrics) in the lane for the body's size; its result or its exception.

        Called by the handlers once a request is admitted (``large``: it holds a ``LargeBodies`` slot).
        """
        executor = self._large if large else self._ordinary
        return await asyncio.get_running_loop().run_in_executor(executor, parse)

    def shutdown(self) -> None:
        """At cleanup, once every request is answered: drop parses not started, let a running one end."""
        for executor in (self._ordinary, self._large):
            executor.shutdown(wait=False, cancel_futures=True)


PARSE_THREADS = web.AppKey("parse_threads", ParseThreads)
