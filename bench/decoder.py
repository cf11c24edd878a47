"""Decoder cost per event, next to pydantic and bare orjson, in one run on the same inputs.

Run:  .venv/bin/python -m bench.decoder [--events 2000] [--rounds 25]

Inputs: ``--events`` distinct, typical ~300-byte canonical events (unique ids, timestamps spread
over a day, a few properties and a context object). Each contender decodes the whole set once
per round; the figure is the best round's time divided by the number of events (the best round
is the one least disturbed by other work on a shared machine). The contenders:

* ``orjson.loads``                          — parsing only, the floor
* ``schemas.decoder.decode_event``          — parsing + the full contract, returns ``Event``
* ``UsageEvent.model_validate_json``        — pydantic, returns the model (no ``Event``)
* ``model_validate_json(...).to_event()``   — pydantic to the same output as the decoder
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from schemas.decoder import decode_event
from schemas.event import UsageEvent, format_ts

NOW = 1_795_420_800.0


def make_events(n: int, seed: int = 7) -> list[bytes]:
    """``n`` typical canonical events, encoded."""
    rng = random.Random(seed)
    names = ["Report Exported", "Dashboard Viewed", "Login", "API Request Failed", "Invoice Paid"]
    out = []
    for i in range(n):
        payload: dict[str, Any] = {
            "event_id": f"{rng.getrandbits(128):032x}",
            "event": rng.choice(names),
            "account_id": f"acct-{rng.randrange(500):04d}",
            "user_id": f"u-{rng.randrange(10_000)}",
            "timestamp": format_ts(NOW - rng.uniform(0, 86_400)),
            "properties": {"format": rng.choice(["csv", "pdf", "xlsx"]), "rows": rng.randrange(5000), "page": i % 40},
            "context": {"app": "web", "library": {"name": "preempt-python", "version": "0.1.0"}},
        }
        out.append(orjson.dumps(payload))
    return out


def best_per_event(fn: Callable[[bytes], object], events: list[bytes], rounds: int) -> tuple[float, float]:
    """(best, median) µs per event over ``rounds`` passes through ``events``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in events:
            fn(raw)
        times.append((time.perf_counter() - start) / len(events) * 1e6)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    events = make_events(args.events)
    assert all(not hasattr(decode_event(r, max_bytes=32768, max_future_skew=300, now=NOW), "reason") for r in events)
    contenders: dict[str, Callable[[bytes], object]] = {
        "orjson.loads": orjson.loads,
        "decode_event": lambda raw: decode_event(raw, max_bytes=32768, max_future_skew=300.0, now=NOW),
        "UsageEvent.model_validate_json": UsageEvent.model_validate_json,
        "model_validate_json().to_event()": lambda raw: UsageEvent.model_validate_json(raw).to_event(),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    gc.disable()
    # Interleave the contenders so that machine load hits them alike.
    for _ in range(3):
        for name, fn in contenders.items():
            results[name].append(best_per_event(fn, events, max(1, args.rounds // 3)))
    gc.enable()
    mean_size = sum(map(len, events)) / len(events)
    print(f"{len(events)} events, mean {mean_size:.0f} bytes; µs per event (best round / median round)")
    decoder_best = min(b for b, _ in results["decode_event"])
    for name, runs in results.items():
        best = min(b for b, _ in runs)
        median = statistics.median(m for _, m in runs)
        print(f"  {name:34} {best:6.2f}  / {median:6.2f}   ×{best / decoder_best:4.2f} of decode_event")


if __name__ == "__main__":
    main()
