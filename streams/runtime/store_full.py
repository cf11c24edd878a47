"""A full disk under the table store stops the process: one CRITICAL line, then exit status 1.

A full disk is the process's failure, not one record's: nothing is dead-lettered for it. Before,
the rules worker stopped on it as on a bug ("rules batch output failed"), with three Faust
tracebacks; at start (a restart on a disk still full) only a traceback said why; and a write of
the accounts table, which Faust reads outside the batch path, failed with a WARNING ("Error in
recovery") while the worker went on without those account records.

Why stop rather than pause until space is back: RocksDB refuses every write once a write-ahead-log
append failed (the database stays read-only until it is reopened), the worker's cache then holds
states that never reached the store (the worker writes nothing more after a failed batch), and
Faust's own stop writes again (its store flush, the changelog offsets) and logs a traceback per
refusal. So the process says once what is full and what to do, and exits at once, as after a
SIGKILL: offsets are committed only for records whose output was written, so the restart
(Kubernetes restarts the container) reads the rest again and nothing is lost.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from streams.runtime.logs import get_logger
from streams.runtime.metrics import DATA_DIR_FREE_BYTES, DATA_DIR_SIZE_BYTES

log = get_logger(__name__)

EXIT_STATUS = 1

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# RocksDB's IOError says it in its message only (rocksdict raises a plain ``Exception``).
_FULL_MESSAGES = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) says the disk or the quota is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if any(message in str(current) for message in _FULL_MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


class StopOnFullDisk:
    """The store-write failure handler of a worker or notifier (``faust_compat.watch_store_writes``).

    Called with every exception a table-store write raises; returns at once unless it is a full
    disk. Then, once per process, it logs the one CRITICAL line and ends the process with
    ``exit_process`` (``os._exit``: no cleanup, see the module docstring; tests pass a recorder).
    """

    def __init__(self, process: str, data_dir: Path, exit_process: Callable[[int], None] = os._exit) -> None:
        self.process = process
        self.data_dir = data_dir
        self.exit_process = exit_process
        self._lock = threading.Lock()
        self._stopping = False

    def __call__(self, exc: BaseException) -> None:
        if not is_disk_full(exc):
            return
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        # The log stream can be on the full disk too (stderr redirected to a file there): the exit matters more.
        with contextlib.suppress(OSError, ValueError):
            log.critical(
                "state store disk full; stopping",
                process=self.process,
                data_dir=str(self.data_dir),
                error=str(exc),
                remedy=(
                    "free space on the volume of PREEMPT_DATA_DIR or give it a larger one; the restart reads "
                    "again every record not committed (nothing is lost, nothing dead-lettered)"
                ),
            )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: the exit matters more
                stream.flush()
        self.exit_process(EXIT_STATUS)


def expose_data_dir_space(app: str, data_dir: Path) -> None:
    """``preempt_data_dir_free_bytes`` / ``_size_bytes`` of ``app``, read from ``data_dir``'s volume at each
    scrape (NaN while it cannot be read): the alert that the disk fills comes before the stop."""

    def space(free: bool) -> float:
        try:
            stat = os.statvfs(data_dir)
        except OSError:
            return math.nan
        return float((stat.f_bavail if free else stat.f_blocks) * stat.f_frsize)

    DATA_DIR_FREE_BYTES.labels(app=app).set_function(lambda: space(free=True))
    DATA_DIR_SIZE_BYTES.labels(app=app).set_function(lambda: space(free=False))
