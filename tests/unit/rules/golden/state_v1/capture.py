"""Capture account states in the stored encoding of the code it runs with, for the golden tests.

Run once per stored encoding, against the commit that wrote it (the blobs here were captured with
commit 48c6a61, the last one writing version 1)::

    PYTHONPATH=<checkout of 48c6a61> python tests/unit/rules/golden/state_v1/capture.py OUT_DIR

It simulates the week the backtest parity uses (200 accounts, seed 7, from 2026-10-05), replays it
through the engine as the backtest does (one global watermark, newest event − 5 s), and at the end
of day 4 keeps the serialized state of a few accounts with rich state. It then continues those
accounts with day 5's events and on to day 7 + 30 days (so every deadline fires), and keeps, per
account: the events
offered after the cut with the watermark each was offered at, the findings in emission order, and
the final serialized state. ``test_state_golden.py`` decodes the mid-week state with today's code,
continues it the same way and expects the same findings and the same final state.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from rules.engine import RuleEngine
from rules.loader import load_rules
from streams.simulate.files import event_line
from streams.simulate.generator import Simulation, SimulationConfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[4]
SETS = {"every_kind": REPO / "tests/unit/rules/golden/good/every_kind.yaml", "default": REPO / "rules/packs/default"}
LATENESS = 5.0
START = datetime(2026, 10, 5, tzinfo=UTC).timestamp()
DAY = 86400.0
CUT = START + 4 * DAY
STOP = CUT + DAY
FINAL = START + 37 * DAY
ACCOUNTS_PER_SET = 3


def capture(out: Path) -> None:
    """Write every set's cases under ``out``."""
    simulation = Simulation(SimulationConfig(seed=7, accounts=200, start_ms=int(START * 1000), days=7))
    events = list(simulation.events())
    manifest: dict[str, object] = {"final_watermark": FINAL, "sets": {}}
    for name, source in SETS.items():
        rules_dir = out / name / "rules"
        if source.is_dir():
            shutil.copytree(source, rules_dir, dirs_exist_ok=True)
        else:
            rules_dir.mkdir(parents=True, exist_ok=True)
            text = source.read_text().replace("../risk-model.json", "risk-model.json")
            (rules_dir / source.name).write_text(text)
            shutil.copy(source.parent.parent / "risk-model.json", rules_dir / "risk-model.json")
        # 48c6a61's engine took the allowed lateness (and did not use it); later ones do not
        takes_lateness = "allowed_lateness" in inspect.signature(RuleEngine).parameters
        engine = RuleEngine(load_rules(rules_dir), **({"allowed_lateness": LATENESS} if takes_lateness else {}))
        states: dict[str, object] = {}
        newest = -math.inf
        rest = []
        for event in events:
            newest = max(newest, event.ts)
            if event.ts >= STOP:
                break
            if event.ts >= CUT:
                rest.append((event, newest - LATENESS))
                continue
            state = states.setdefault(event.account_id, engine.new_state())
            engine.on_event(state, event, newest - LATENESS)  # type: ignore[arg-type]
        mid = {account: engine.dumps(state) for account, state in states.items()}  # type: ignore[arg-type]
        findings: dict[str, list[bytes]] = {account: [] for account in states}
        offered: dict[str, list[bytes]] = {account: [] for account in states}
        for event, watermark in rest:
            if event.account_id not in states:
                continue
            _, fired = engine.on_event(states[event.account_id], event, watermark)  # type: ignore[arg-type]
            findings[event.account_id] += [orjson.dumps(dataclasses.asdict(f)) for f in fired]
            offered[event.account_id].append(orjson.dumps([watermark, orjson.loads(event_line(event))]))
        for account, state in states.items():
            fired = engine.advance(state, FINAL)  # type: ignore[arg-type]
            findings[account] += [orjson.dumps(dataclasses.asdict(f)) for f in fired]
        chosen: list[str] = []
        covered: set[str] = set()
        for account in sorted(states, key=lambda a: (-len(findings[a]), -len(mid[a]), a)):
            rules = {orjson.loads(f)["rule_id"] for f in findings[account]}
            if len(chosen) < ACCOUNTS_PER_SET and (not chosen or rules - covered):
                chosen.append(account)
                covered |= rules
        for account in chosen:
            base = out / name / account
            base.with_suffix(".mid.json").write_bytes(mid[account])
            base.with_suffix(".final.json").write_bytes(engine.dumps(states[account]))  # type: ignore[arg-type]
            base.with_suffix(".events.jsonl").write_bytes(b"".join(line + b"\n" for line in offered[account]))
            base.with_suffix(".findings.jsonl").write_bytes(b"".join(line + b"\n" for line in findings[account]))
        manifest["sets"][name] = {"accounts": chosen, "rules_fired": sorted(covered)}  # type: ignore[index]
        print(f"{name}: {chosen} fire {sorted(covered)}")
    (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    capture(Path(sys.argv[1]))
