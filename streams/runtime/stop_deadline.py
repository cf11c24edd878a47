"""A graceful stop that cannot finish ends the process anyway, with one ERROR line saying so.

Faust's stop waits for every agent to finish the record it holds, with no time limit. An agent that
cannot finish one — its dead letter waits for a topic someone deleted, its output for a broker that
refuses it — kept a SIGTERMed worker or notifier running for minutes (docs/operations.md,
PreemptPartitionStalled), until Kubernetes' SIGKILL came without a word in the log; outside
Kubernetes, for ever. :func:`arm` starts a timer as the stop begins: a stop still running after
``PREEMPT_STOP_TIMEOUT_SECONDS`` is logged (ERROR ``graceful stop did not finish``) and the process
exits with status 1. Nothing is lost: what was not committed is read again by the next process.
The timer is a daemon thread, so it fires even when the event loop itself is blocked.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable

from streams.runtime.logs import get_logger

log = get_logger(__name__)

EXIT_STATUS = 1
"""The status of a process whose graceful stop did not finish (the stop failed: not 0)."""

_armed: dict[str, threading.Timer] = {}
_lock = threading.Lock()


def _give_up(process: str, seconds: float, exit_process: Callable[[int], None]) -> None:
    log.error(
        "graceful stop did not finish; exiting without it",
        process=process,
        seconds=seconds,
        consequence="offsets not committed are read again by the next process; nothing is lost",
        hint="the log lines before this say what the stop waited for (e.g. a deleted dead-letter topic)",
    )
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: the exit matters more
            stream.flush()
    exit_process(EXIT_STATUS)


def arm(process: str, seconds: float, exit_process: Callable[[int], None] = os._exit) -> bool:
    """Start the deadline of ``process``'s stop (once per process name); whether this call started it.

    ``exit_process`` is ``os._exit`` (no cleanup: the stop that would run it is what hangs); tests
    pass a recorder."""
    with _lock:
        if process in _armed:
            return False
        timer = threading.Timer(seconds, _give_up, args=(process, seconds, exit_process))
        timer.daemon = True
        timer.name = f"stop-deadline-{process}"
        _armed[process] = timer
    timer.start()
    return True


def disarm(process: str) -> None:
    """Cancel ``process``'s deadline (its stop finished, or a test is done with it)."""
    with _lock:
        timer = _armed.pop(process, None)
    if timer is not None:
        timer.cancel()
