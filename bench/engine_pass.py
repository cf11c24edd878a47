"""One process of ``bench.engine_ab``: time the rule engine of ONE checkout over a file of events.

Run by ``bench.engine_ab`` as a script (never imported) with ``PYTHONPATH`` set to the checkout
whose engine is measured, so ``rules``/``schemas`` below are that checkout's:

    python bench/engine_pass.py EVENTS.json --passes 2 [--lateness 5]

It works with the engine API before issue 11 (``RuleEngine(rules, allowed_lateness)``) and after
(``RuleEngine(rules)``). The timed loop is the same for both, and the same as ``bench.engine``'s
except for the clock: the watermark is computed inline (highest event time − lateness, which is
what ``rules.clock.EventTimeClock`` returns in a backtest), because the older checkout has no
clock class. Names, ids and string property values are shared objects, as in the simulator's
events that ``bench.engine`` generates in-process (JSON decoding would make each its own copy,
which slows every dict lookup on them a little). Prints one JSON object: per pass, wall and CPU
(thread) seconds and the findings.
``--passes 0`` loads everything and times nothing (the baseline of a valgrind instruction count).
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from rules.engine import RuleEngine
from rules.loader import load_rules
from schemas.event import Event


def _shared(text: Any) -> Any:
    """One string object per distinct name, id and property value, as the simulator's events
    (which ``bench.engine`` times) share them: a dict lookup then matches on identity."""
    return sys.intern(text) if isinstance(text, str) else text


def _values(fields: dict[str, Any]) -> dict[str, Any]:
    return {_shared(key): _shared(value) for key, value in fields.items()}


def _engine(ruleset: Any, lateness: float) -> Any:
    if "allowed_lateness" in inspect.signature(RuleEngine).parameters:  # the engine before issue 11
        return RuleEngine(ruleset, allowed_lateness=lateness)  # type: ignore[call-arg,unused-ignore]
    return RuleEngine(ruleset)


def _one_pass(engine: Any, events: list[Event], lateness: float) -> tuple[float, float, int]:
    states: dict[str, Any] = {}
    newest = -math.inf
    findings = 0
    on_event, advance, new_state = engine.on_event, engine.advance, engine.new_state
    gc.collect()
    started, cpu_started = time.perf_counter(), time.thread_time()
    for event in events:
        if event.ts > newest:
            newest = event.ts
        state = states.get(event.account_id)
        if state is None:
            state = states[event.account_id] = new_state()
        findings += len(on_event(state, event, newest - lateness)[1])
    for account_id in states:
        findings += len(advance(states[account_id], newest - lateness))
    return time.perf_counter() - started, time.thread_time() - cpu_started, findings


def main() -> None:
    """Load, time, print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("events", type=Path)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--lateness", type=float, default=5.0)
    parser.add_argument("--pin", type=int, default=None, help="CPU to pin this process to")
    args = parser.parse_args()
    if args.pin is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.pin})
    root = Path.cwd()
    ruleset = load_rules(root / "rules" / "packs" / "default")
    events = [
        Event(
            event_id=i,
            event=_shared(n),
            account_id=_shared(a),
            ts=ts,
            user_id=_shared(u),
            properties=_values(p),
            context=_values(c),
        )
        for i, n, a, ts, u, p, c in orjson.loads(args.events.read_bytes())
    ]
    passes = []
    for _ in range(args.passes):
        wall, cpu, findings = _one_pass(_engine(ruleset, args.lateness), events, args.lateness)
        passes.append({"wall_s": wall, "cpu_s": cpu, "findings": findings})
    import rules.engine

    print(json.dumps({"engine": rules.engine.__file__, "events": len(events), "passes": passes}))


if __name__ == "__main__":
    main()
