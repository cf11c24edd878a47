"""The rules worker's garbage-collector settings (docs/pipeline.md, "Cost per event").

A poll's records (up to 5,000 events, a few container objects each) stay alive until the poll's
accounts are advanced. With CPython's defaults the young generation (700 net allocations) filled
and was collected ~400 times per 84,000 events, each time promoting the events alive at that
moment, and the older generations followed: in the bench replay the worker ran a full collection
every ~2 polls, each walking every object of the process (Faust's and aiokafka's, the broker's
metadata, the modules': ~190,000 objects) for ~100 ms of CPU, about a quarter of the worker's CPU.
The in-process ceiling, whose events die as soon as they are applied, collected almost never.

Two settings, applied once per process when the tables are first recovered (the worker is built
and connected by then):

* everything alive is moved to the permanent generation (``gc.freeze``), after one full
  collection so that no garbage is frozen: full collections then walk only what the worker
  created since (the state cache, the polls in flight). Objects frozen stay out of every later
  collection, so a reference cycle among them that becomes garbage later (for instance Faust
  objects of the first assignment replaced at a rebalance) is not reclaimed: a one-time, bounded
  cost;
* the young generation's threshold is ``PREEMPT_WORKER_GC_THRESHOLD`` (default 50,000
  allocations, above what a 5,000-record poll holds at once), so a poll's objects are freed by
  reference counting before any collection sees them. 0 keeps Python's thresholds (and skips the freeze).
"""

from __future__ import annotations

import gc

from streams.runtime.logs import get_logger

log = get_logger(__name__)

_tuned = False


def tune_gc(young_threshold: int) -> bool:
    """Freeze what is alive and raise the young generation's threshold, once per process.

    Returns True when this call applied the settings (False: already applied, or turned off by
    ``young_threshold`` 0).
    """
    global _tuned
    if _tuned or young_threshold <= 0:
        return False
    _tuned = True
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)
    log.info("garbage collector tuned", frozen_objects=gc.get_freeze_count(), young_threshold=young_threshold)
    return True
