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
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import (  # the manager thread's class: see _BreakingManager
    BrokenProcessPool,
    _ExecutorManagerThread,
    _threads_wakeups,
)
from traceback import format_exception
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


class _BreakingManager(_ExecutorManagerThread):
    """The pool's manager thread, which breaks the pool when it fails (as when a process dies) instead of dying.

    With ``max_tasks_per_child`` this thread starts the process replacing one that exited after its body. When
    that start fails (the fork server gone: ``ConnectionRefusedError``/``EOFError``; fork refused for memory or the
    pids limit: ``OSError``), Python 3.11 lets the exception end the thread: bodies submitted after it were never
    parsed nor failed, their handlers waited for ever and their slots were never given back (then every large
    body 429). Here the bodies waiting get ``BrokenProcessPool`` (``ParseLanes.run``: 503, the lane started afresh).
    """

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - every failure of the thread breaks the pool, its cause attached
            self.terminate_broken("".join(format_exception(exc)))


class _OneBodyPerProcess(ProcessPoolExecutor):
    """``ProcessPoolExecutor`` run by ``_BreakingManager`` (what ``_start_executor_manager_thread`` does in 3.11)."""

    def _start_executor_manager_thread(self) -> None:
        if self._executor_manager_thread is None:  # type: ignore[has-type]
            self._executor_manager_thread = _BreakingManager(self)
            self._executor_manager_thread.start()
            _threads_wakeups[self._executor_manager_thread] = self._executor_manager_thread_wakeup  # type: ignore[attr-defined]


class ParseLanes:
    """The two lanes that parse request bodies; built by ``create_ingest_app``, shut down at its cleanup.

    ``large_in_processes`` (``PREEMPT_INGEST_PARSE_LARGE_BODIES_IN_PROCESSES``): the large lane forks a process
    per body (see the module docstring), else it is a thread pool like the ordinary lane's one thread.
    """

    def __init__(self, large_slots: int, *, large_in_processes: bool = True) -> None:
        self._ordinary = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-parse")
        self._large_slots = large_slots
        self._large_in_processes = large_in_processes
        self._large = self._large_lane()
        self._lane_failures = 0  # breaks of the process lane since a large body was last parsed

    def _large_lane(self) -> Executor:
        if not self._large_in_processes:
            return ThreadPoolExecutor(max_workers=self._large_slots, thread_name_prefix="ingest-parse-large")
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOADED))
        # One body per process: the memory its parse took goes back to the system when it exits.
        return _OneBodyPerProcess(max_workers=self._large_slots, mp_context=context, max_tasks_per_child=1)

    async def start(self) -> None:
        """At the app's start: start the fork server and one parse process, off the loop.

        Done by the first large body instead, ``submit`` held the event loop while the fork server started and
        imported ``PRELOADED`` (~1 s on a loaded box: /healthz waited that long once). When processes cannot be
        started here (no ``/dev/shm`` for their semaphores, a seccomp profile refusing ``fork``, a full disk
        for the fork server's socket), the large lane falls back to threads, with a WARNING: large bodies are
        still taken — the event loop may wait during one, as before processes — rather than all refused 503.
        """
        if not self._large_in_processes:
            return
        try:
            await asyncio.to_thread(lambda: self._large.submit(os.getpid).result())
        except Exception as exc:  # noqa: BLE001 - any failure to start processes: logged, threads instead
            log.warning(
                "ingest: cannot start the processes that parse large batches; parsing them in threads "
                "(the event loop may wait during one; set PREEMPT_INGEST_PARSE_LARGE_BODIES_IN_PROCESSES=false "
                "to say so and not try)",
                error=f"{type(exc).__name__}: {exc}",
            )
            broken, self._large_in_processes = self._large, False
            self._large = self._large_lane()
            with contextlib.suppress(Exception):  # nothing ran in it: nothing to wait for
                broken.shutdown(wait=False, cancel_futures=True)

    async def run(self, parse: Callable[[], T], *, slot: LargeBodySlot | None) -> T:
        """``parse()`` (pure: no logs, no metrics) in the lane for the body's size; its result or its exception.

        Called by the handlers once a request is admitted; ``slot``: the large-body slot the request holds,
        then also held by the parse until it is done, whether or not the handler still waits for it. In the
        process lane ``parse`` must pickle (a ``functools.partial`` of a module-level function); a process that
        dies raises ``ParseUnavailable`` and the lane is started afresh for the next body.
        """
        loop = asyncio.get_running_loop()
        executor = self._ordinary if slot is None else self._large
        try:
            future = executor.submit(parse)
        except Exception as exc:
            # A process lane that cannot start the body's process (fork refused, the fork server gone) raises here.
            if not isinstance(executor, ProcessPoolExecutor):
                raise
            if isinstance(exc, BrokenProcessPool):  # broken by an earlier body's process, or its replacement's start
                self._broken(executor, "ingest: the processes parsing large bodies failed; answered 503", exc)
            else:
                self._broken(executor, "ingest: no process could be started to parse a large body; answered 503", exc)
            raise ParseUnavailable("the body could not be parsed (no parse process could start); retry later") from None
        if slot is not None:
            slot.hold()
            future.add_done_callback(lambda _done: _on_loop(loop, slot.let_go))
        try:
            result = await asyncio.wrap_future(future, loop=loop)
        except BrokenProcessPool as exc:
            self._broken(executor, "ingest: the process parsing a large body died; answered 503", exc)
            raise ParseUnavailable("the body could not be parsed (its parse process died); retry later") from None
        except Exception:
            if executor is self._large:
                self._lane_failures = 0  # the parse ran (and found the body bad): the lane works
            raise
        if executor is self._large:
            self._lane_failures = 0
        return result

    def _broken(self, executor: Executor, message: str, exc: Exception) -> None:
        """Start the large lane afresh for the next body (once, if several bodies saw ``executor`` break); after
        ``LANE_FAILURES_TO_THREADS`` breaks in a row with no body parsed between them (a fork server that stays
        dead, a pids limit reached for good), parse large bodies in threads instead, with a WARNING: taken, with
        the event loop waiting during the worst ones, rather than every one answered 503 until a redeploy."""
        log.error(message, error=f"{type(exc).__name__}: {exc}")
        if self._large is not executor:
            return
        self._lane_failures += 1
        if self._lane_failures >= LANE_FAILURES_TO_THREADS:
            log.warning(
                "ingest: the processes that parse large batches failed again and again; parsing them in threads "
                "from now on (the event loop may wait during one; restart ingest to try processes again)",
                failures=self._lane_failures,
            )
            self._large_in_processes = False
        self._large = self._large_lane()
        executor.shutdown(wait=False, cancel_futures=True)

    async def shutdown(self) -> None:
        """At cleanup, once every request is answered: drop parses not started, let a running one end.

        The process lane is waited for (in a thread): shut down without waiting, Python 3.11's executor with
        ``max_tasks_per_child`` fails in its manager thread (``len(None)``) when a process ends afterwards.
        """
        self._ordinary.shutdown(wait=False, cancel_futures=True)
        if self._large_in_processes:
            await asyncio.to_thread(self._large.shutdown, wait=True, cancel_futures=True)
        else:
            self._large.shutdown(wait=False, cancel_futures=True)


def _on_loop(loop: asyncio.AbstractEventLoop, call: Callable[[], None]) -> None:
    """``call`` on ``loop``'s thread (a future's done callback runs in the thread that finished or cancelled it)."""
    # A closed loop (RuntimeError): the process is stopping, and no request will ask for a slot again.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(call)


PARSE_LANES = web.AppKey("parse_lanes", ParseLanes)
