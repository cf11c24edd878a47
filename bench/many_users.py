"""Per-event cost and state size of ONE account as its number of distinct users grows.

Run:  .venv/bin/python -m bench.many_users [--users 1000 5000 20000 100000] [--days 3] [--risk-model MODEL.json]

One account, the default pack, every user an admin (so ``champion-gone-quiet``, a ``group_by: user``
rule, sees them all) logging in once a day for ``--days`` days. Per user count it prints one JSON line:
the engine's CPU time per event (``engine.on_event`` with the watermark 5 s behind, as the worker),
the encoded state's size after the last day (what the worker writes to the changelog per touched
account and batch) and the time to encode it once. A state over ``PREEMPT_MAX_STATE_BYTES`` (900 KiB)
is what the worker quarantines. Timings are of this machine; compare runs, not absolute figures.

``--risk-model`` adds a ``kind: risk`` rule on that model (a file ``preempt train`` wrote) to the pack, and
the line then also gives the risk rule's own share of the state (``risk_state_bytes``). Its features keep
``rules.risk.features.KEEP_DAYS`` (70) days: run ``--days 71`` to see the state at its largest.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import orjson

from rules.engine import RuleEngine
from rules.kinds.risk import RiskState
from rules.loader import RuleSet, load_rules, parse_rule
from schemas.event import Event

DEFAULT_PACK = Path(__file__).resolve().parent.parent / "rules" / "packs" / "default"
MONDAY = 1_763_337_600.0  # 2025-11-17T00:00:00Z
LATENESS = 5.0


def with_risk_rule(rules: RuleSet, model: Path) -> RuleSet:
    """``rules`` and a ``risk`` rule scoring with the model file ``model``."""
    risk = parse_rule(
        {
            "id": "bench-churn-risk",
            "kind": "risk",
            "title": "churn risk",
            "severity": "high",
            "priority": 1,
            "model": str(model),
            "threshold": 0.5,
            "warmup": "7d",
        }
    )
    return RuleSet((*rules.rules, risk), {**rules.sources})


def measure(users: int, days: int, pack: Path = DEFAULT_PACK, risk_model: Path | None = None) -> dict[str, float]:
    """One account's per-event cost and final state size with ``users`` users over ``days`` days."""
    rules = load_rules(pack)
    if risk_model is not None:
        rules = with_risk_rule(rules, risk_model)
    engine = RuleEngine(rules)
    state = engine.new_state()
    spent = 0.0
    for day in range(days):
        events = [
            Event(
                event_id=f"{day:04d}{user:028x}",
                event="Login",
                account_id="acct-big",
                ts=MONDAY + day * 86_400 + user * (80_000 / users),
                user_id=f"user-{user:025d}",
                properties={"role": "admin"},
            )
            for user in range(users)
        ]
        started = time.perf_counter()
        for event in events:
            engine.on_event(state, event, event.ts - LATENESS)
        spent += time.perf_counter() - started
    started = time.perf_counter()
    data = engine.dumps(state)
    encode = time.perf_counter() - started
    out: dict[str, float] = {
        "users": users,
        "events": users * days,
        "us_per_event": round(spent / (users * days) * 1e6, 1),
        "state_bytes": len(data),
        "encode_ms": round(encode * 1e3, 2),
    }
    if risk_model is not None:
        risk = state.rules["bench-churn-risk"]
        assert isinstance(risk, RiskState)
        out["risk_state_bytes"] = len(orjson.dumps(risk.features))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1_000, 5_000, 20_000, 100_000])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--risk-model", type=Path, default=None, help="add a risk rule on this model file")
    args = parser.parse_args()
    for users in args.users:
        print(json.dumps(measure(users, args.days, risk_model=args.risk_model)), flush=True)


if __name__ == "__main__":
    main()
