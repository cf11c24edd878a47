"""Where ingest parses request bodies: off the event loop, so it keeps answering meanwhile.

Reading, validating and mapping a body is pure CPU work (``payload.parse_body``,
``tracking.parse_tracking``): an 8 MiB batch of tiny values took 3-5 s. Run on the event loop, it
held every other request for that long — ``/healthz`` and ``/readyz`` (a kubelet probe with a 1-3 s
timeout restarted a healthy pod), ``/metrics``, other senders' small POSTs.

Two lanes, each first in, first out: ordinary bodies (up to ``PREEMPT_INGEST_MAX_BODY_BYTES``) in one
thread, so they are parsed one at a time, in the order they were read, as on the loop before (and
the memory a parse costs, ~9 times the body, is held by one at a time); a thread gives the loop the
interpreter lock back every switch interval, except during one C call (orjson reading a 1 MiB body:
tens of ms). Bodies over it are parsed in processes, as many at once as
``PREEMPT_INGEST_LARGE_BODIES_IN_FLIGHT`` allows, so a small batch never waits behind a large one: in a
thread, orjson's one call on an 8 MiB batch of millions of tiny values (and ``json.loads`` on one
holding a ``NaN`` or a huge integer) held the lock — and the loop — for 1.4-3.9 s (py-spy: the parse
thread "active+gil" in ``loads_exact``/``json.loads``, the loop waiting). Each body gets a process of
its own, forked from a fork server that has the parse modules loaded (``PRELOADED``), so the memory
its parse took goes back to the system when it exits (in a thread it stayed with the process). The
body goes to it and the records come back pickled. ``PREEMPT_INGEST_PARSE_LARGE_BODIES_IN_PROCESSES=false``
puts the large lane back in threads. Everything else a request does (slots, Kafka, metrics, dead
letters, the answer) stays on the loop, in the same order.

A parse cannot be stopped: a handler cancelled while its body is parsed (its client went away under
aiohttp's ``handler_cancellation``; every handler at a stop) leaves the parse running. So a large body's
slot (``LargeBodySlot``) is held by both the handler and, once submitted, its parse; it is free again only
when both let go. Before, the cancelled handler gave it back at once, and a flood of aborted large uploads
had more bodies read and parsed at once than ``PREEMPT_INGEST_LARGE_BODIES_IN_FLIGHT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from aiohttp import web

from streams.runtime.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")
# Imported once by the fork server, so a forked parse process starts with them loaded (~10 ms, not ~0.5 s).
PRELOADED = ("streams.ingest.tracking", "streams.ingest.payload")


LANE_FAILURES_TO_THREADS = 3
"""Breaks of the process lane in a row (no body parsed between them) after which large bodies are parsed in threads."""


class LargeBodySlot:
    """One taken large-body slot (``gate.LargeBodies.take``): given back once every holder let go.

    The request's handler holds it from the moment it is taken until it is answered (or cancelled);
    ``ParseLanes.run`` adds the parse of its body until it is done (or the parse, not started,
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


class ParseUnavailable(RuntimeError):  # noqa: N818 - reads as the condition it reports
    """The process parsing a large body died (e.g. killed for memory): the request is answered 503, retried."""


class _NoParseProcess(Exception):  # noqa: N818 - reads as the condition it reports
    """A large body's process could not be started, or died: ``ParseLanes.run`` answers the request 503."""

    def __init__(self, message: str, answer: str, cause: BaseException) -> None:
        super().__init__(message)
        self.message = message
        self.answer = answer
        self.cause = f"{type(cause).__name__}: {cause}"


def _process_context() -> multiprocessing.context.BaseContext:
    """Where a large body's process comes from: forked from a fork server that has ``PRELOADED`` imported."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOADED))
    return context


def _in_a_process_of_its_own(context: multiprocessing.context.BaseContext, parse: Callable[[], T]) -> T:
    """``parse()`` in a new process (from ``context``), in a pool of its own that ends with it; run in a lane thread.

    A pool of one process for one body, rather than one pool for all with ``max_tasks_per_child=1``: a process that
    dies (killed for memory) breaks only its own pool, so only its own body is answered 503 (a shared pool failed
    every body in flight with it); nothing replaces processes in the pool's own thread (in 3.11, a failure there
    ended that thread and left every later body waiting for ever); and a fork server that died is started again by
    ``multiprocessing`` at the next body's start, in this thread, not on the event loop.
    """
    pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
    try:
        try:
            future = pool.submit(parse)
        except Exception as exc:  # noqa: BLE001 - fork refused, the fork server gone, no /dev/shm: all mean no process
            raise _NoParseProcess(
                "ingest: no process could be started to parse a large body; answered 503",
                "the body could not be parsed (no parse process could start); retry later",
                exc,
            ) from None
        try:
            return future.result()
        except BrokenProcessPool as exc:
            raise _NoParseProcess(
                "ingest: the process parsing a large body died; answered 503",
                "the body could not be parsed (its parse process died); retry later",
                exc,
            ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class ParseLanes:
    """The two lanes that parse request bodies; built by ``create_ingest_app``, shut down at its cleanup.

    ``large_in_processes`` (``PREEMPT_INGEST_PARSE_LARGE_BODIES_IN_PROCESSES``): each large body is parsed in a
    process of its own (see the module docstring and ``_in_a_process_of_its_own``), started and waited for by one of
    the large lane's threads; else in that thread, like the ordinary lane's one thread.
    """

    def __init__(self, large_slots: int, *, large_in_processes: bool = True) -> None:
        self._ordinary = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-parse")
        self._large = ThreadPoolExecutor(max_workers=large_slots, thread_name_prefix="ingest-parse-large")
        self._context = _process_context()
        self._large_in_processes = large_in_processes
        self._lane_failures = 0  # large bodies in a row whose process could not start or died

    async def start(self) -> None:
        """At the app's start: start the fork server and one parse process, off the loop.

        When processes cannot be started here (no ``/dev/shm`` for their semaphores, a seccomp profile refusing
        ``fork``, a full disk for the fork server's socket), the large lane falls back to threads, with a WARNING:
        large bodies are still taken — the event loop may wait during one, as before processes — rather than all
        refused 503.
        """
        if not self._large_in_processes:
            return
        try:
            await asyncio.to_thread(_in_a_process_of_its_own, self._context, os.getpid)
        except _NoParseProcess as exc:
            log.warning(
                "ingest: cannot start the processes that parse large batches; parsing them in threads "
                "(the event loop may wait during one; set PREEMPT_INGEST_PARSE_LARGE_BODIES_IN_PROCESSES=false "
                "to say so and not try)",
                error=exc.cause,
            )
            self._large_in_processes = False

    async def run(self, parse: Callable[[], T], *, slot: LargeBodySlot | None) -> T:
        """``parse()`` (pure: no logs, no metrics) in the lane for the body's size; its result or its exception.

        Called by the handlers once a request is admitted; ``slot``: the large-body slot the request holds,
        then also held by the parse until it is done, whether or not the handler still waits for it. In the
        process lane ``parse`` must pickle (a ``functools.partial`` of a module-level function); a process that
        cannot start or dies raises ``ParseUnavailable``, and the next body gets a new one.
        """
        loop = asyncio.get_running_loop()
        if slot is None:
            future = self._ordinary.submit(parse)
        elif self._large_in_processes:
            future = self._large.submit(_in_a_process_of_its_own, self._context, parse)
        else:
            future = self._large.submit(parse)
        if slot is not None:
            slot.hold()
            future.add_done_callback(lambda _done: _on_loop(loop, slot.let_go))
        try:
            result = await asyncio.wrap_future(future, loop=loop)
        except _NoParseProcess as exc:
            self._failed(exc)
            raise ParseUnavailable(exc.answer) from None
        except Exception:
            if slot is not None:
                self._lane_failures = 0  # the parse ran (and found the body bad): processes start
            raise
        if slot is not None:
            self._lane_failures = 0
        return result

    def _failed(self, exc: _NoParseProcess) -> None:
        """Log a body whose process could not start or died; after ``LANE_FAILURES_TO_THREADS`` in a row with no
        large body parsed between them (a fork server that cannot start, a pids limit reached for good), parse
        large bodies in threads instead, with a WARNING: taken, with the event loop waiting during the worst ones,
        rather than every one answered 503 until a redeploy."""
        log.error(exc.message, error=exc.cause)
        if not self._large_in_processes:
            return
        self._lane_failures += 1
        if self._lane_failures >= LANE_FAILURES_TO_THREADS:
            log.warning(
                "ingest: the processes that parse large batches failed again and again; parsing them in threads "
                "from now on (the event loop may wait during one; restart ingest to try processes again)",
                failures=self._lane_failures,
            )
            self._large_in_processes = False

    async def shutdown(self) -> None:
        """At cleanup, once every request is answered: drop parses not started, let running ones end (in a thread)."""
        self._ordinary.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._large.shutdown, wait=True, cancel_futures=True)


def _on_loop(loop: asyncio.AbstractEventLoop, call: Callable[[], None]) -> None:
    """``call`` on ``loop``'s thread (a future's done callback runs in the thread that finished or cancelled it)."""
    # A closed loop (RuntimeError): the process is stopping, and no request will ask for a slot again.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(call)


PARSE_LANES = web.AppKey("parse_lanes", ParseLanes)
