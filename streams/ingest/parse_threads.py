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

A thread cannot be stopped: a handler cancelled while its body is parsed (its client went away under
aiohttp's ``handler_cancellation``; every handler at a stop) leaves the parse running. So a large body's
slot (``LargeBodySlot``) is held by both the handler and, once submitted, its parse; it is free again only
when both let go. Before, the cancelled handler gave it back at once, and a flood of aborted large uploads
had more bodies read and parsed at once than ``PREEMPT_INGEST_LARGE_BODIES_IN_FLIGHT``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiohttp import web

T = TypeVar("T")


class LargeBodySlot:
    """One taken large-body slot (``gate.LargeBodies.take``): given back once every holder let go.

    The request's handler holds it from the moment it is taken until it is answered (or cancelled);
    ``ParseThreads.run`` adds the parse of its body until that thread is done (or the parse, not started,
    is cancelled). Only the event loop's thread touches it.
    """

    def __init__(self, give_back: Callable[[], None]) -> None:
        self._give_back = give_back
        self._holders = 1

    def hold(self) -> None:
        """One more holder (the parse thread)."""
        self._holders += 1

    def let_go(self) -> None:
        """One holder is done; the last one gives the slot back."""
        self._holders -= 1
        if self._holders == 0:
            self._give_back()


class ParseThreads:
    """The threads that parse request bodies; built by ``create_ingest_app``, shut down at its cleanup."""

    def __init__(self, large_slots: int) -> None:
        self._ordinary = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-parse")
        self._large = ThreadPoolExecutor(max_workers=large_slots, thread_name_prefix="ingest-parse-large")

    async def run(self, parse: Callable[[], T], *, slot: LargeBodySlot | None) -> T:
        """``parse()`` (pure: no logs, no metrics) in the lane for the body's size; its result or its exception.

        Called by the handlers once a request is admitted; ``slot``: the large-body slot the request holds,
        then also held by the parse until its thread is done, whether or not the handler still waits for it.
        """
        loop = asyncio.get_running_loop()
        future = (self._ordinary if slot is None else self._large).submit(parse)
        if slot is not None:
            slot.hold()
            future.add_done_callback(lambda _done: _on_loop(loop, slot.let_go))
        return await asyncio.wrap_future(future, loop=loop)

    def shutdown(self) -> None:
        """At cleanup, once every request is answered: drop parses not started, let a running one end."""
        for executor in (self._ordinary, self._large):
            executor.shutdown(wait=False, cancel_futures=True)


def _on_loop(loop: asyncio.AbstractEventLoop, call: Callable[[], None]) -> None:
    """``call`` on ``loop``'s thread (a future's done callback runs in the thread that finished or cancelled it)."""
    # A closed loop (RuntimeError): the process is stopping, and no request will ask for a slot again.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(call)


PARSE_THREADS = web.AppKey("parse_threads", ParseThreads)
