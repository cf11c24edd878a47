"""Stored account state of the code before typed rule state (version 1) is read by today's engine.

The blobs under ``golden/state_v1`` were written by commit 48c6a61 (``capture.py`` says how): a
restarted worker decodes them, continues with the same events at the same watermarks and must
fire exactly the findings, and end in exactly the state, that the old code did.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from rules.engine import RuleEngine
from rules.kinds import build_evaluator
from rules.kinds.absence import AbsenceState
from rules.kinds.any import AnyState
from rules.kinds.composite import CompositeState
from rules.kinds.drop import DropKey, DropState
from rules.kinds.inactivity import InactivityState
from rules.kinds.ratio import RatioKey, RatioState
from rules.kinds.risk import RiskState
from rules.kinds.score import ScoreKey, ScoreState
from rules.kinds.sequence import SequenceRuns, SequenceState
from rules.kinds.sliding import SlidingKey, SlidingState
from rules.loader import load_rules
from rules.state import STATE_VERSION
from schemas.decoder import decode_event
from schemas.event import MAX_EVENT_BYTES, Event

GOLDEN = Path(__file__).parent / "golden" / "state_v1"
MANIFEST = orjson.loads((GOLDEN / "manifest.json").read_bytes())
CASES = [(name, account) for name, case in MANIFEST["sets"].items() for account in case["accounts"]]


def _engine(name: str) -> RuleEngine:
    return RuleEngine(load_rules(GOLDEN / name / "rules"))


def _offered(path: Path) -> list[tuple[float, Event]]:
    out = []
    for line in path.read_bytes().splitlines():
        watermark, wire = orjson.loads(line)
        event = decode_event(orjson.dumps(wire), max_bytes=MAX_EVENT_BYTES, max_future_skew=0.0, now=math.inf)
        assert isinstance(event, Event), event
        out.append((watermark, event))
    return out


@pytest.mark.parametrize(("name", "account"), CASES)
def test_version_1_state_continues_with_the_old_codes_findings_and_state(name: str, account: str) -> None:
    """A version 1 state, continued by today's engine, fires the old code's findings and ends in its state."""
    engine = _engine(name)
    base = GOLDEN / name / account
    stored = base.with_suffix(".mid.json").read_bytes()
    assert orjson.loads(stored)["v"] == 1
    state = engine.loads(stored)
    findings = []
    for watermark, event in _offered(base.with_suffix(".events.jsonl")):
        findings += engine.on_event(state, event, watermark)[1]
    findings += engine.advance(state, MANIFEST["final_watermark"])
    expected = base.with_suffix(".findings.jsonl").read_bytes().splitlines()
    # Ids, episodes, times and evidence as the old code wrote them; evidence names its events since.
    assert [orjson.dumps(_without_event_names(dataclasses.asdict(f))) for f in findings] == expected
    _without_same_instant_expects(state)  # information the old code did not keep (rules.kinds.absence)
    assert engine.dumps(state) == engine.dumps(engine.loads(base.with_suffix(".final.json").read_bytes()))


# What evidence carries since the old code, for the sentence a rule without a summary gets: the names of
# the events (absence, inactivity, sequence; threshold, ratio, spike and drop also their window).
_ADDED_SINCE = {
    "absence": ("expected", "expected_filtered", "start"),
    "inactivity": ("events", "events_filtered"),
    "sequence": ("steps",),
    **dict.fromkeys(("threshold", "spike", "drop"), ("events", "events_filtered", "window_seconds")),
    "ratio": ("events", "events_filtered", "window_seconds", "denominator_events"),
}


def _without_event_names(finding: dict[str, Any]) -> dict[str, Any]:
    """A finding without the evidence its kind carries since the old code (for the sentence)."""
    for key in _ADDED_SINCE.get(finding["kind"], ()):
        assert key in finding["evidence"], key
        del finding["evidence"][key]
    return finding


def _without_same_instant_expects(state: Any) -> None:
    """Forget what absence rules remember of expects that found nothing pending (kept since the old code)."""
    for rule_state in state.rules.values():
        if isinstance(rule_state, AbsenceState):
            rule_state.expected.clear()


def _without_empty_bounds(doc: Any) -> Any:
    """A version 1 rule state without an ``"n": null`` (the old code wrote it or left it out; both read the same)."""
    return {key: value for key, value in doc.items() if not (key == "n" and value is None)}


@pytest.mark.parametrize(("name", "account"), CASES)
def test_version_1_is_written_as_the_old_code_stored_it(name: str, account: str) -> None:
    """With ``state_version=1`` the engine writes what the old code stored, so old workers read it (rolling upgrade)."""
    stored = GOLDEN.joinpath(name, f"{account}.mid.json").read_bytes()
    engine = RuleEngine(load_rules(GOLDEN / name / "rules"), state_version=1)
    written = orjson.loads(engine.dumps(engine.loads(stored)))
    old = orjson.loads(stored)
    for doc in (written, old):
        doc["r"] = {rule_id: [fp, _without_empty_bounds(rs)] for rule_id, (fp, rs) in doc["r"].items()}
    assert written == old


@pytest.mark.parametrize(("name", "account"), CASES)
def test_version_1_state_keeps_every_rules_state(name: str, account: str) -> None:
    """Every rule's stored state is read (none restarts from fresh) and survives a version 2 round trip."""
    engine = _engine(name)
    stored = orjson.loads(GOLDEN.joinpath(name, f"{account}.mid.json").read_bytes())
    state = engine.loads(GOLDEN.joinpath(name, f"{account}.mid.json").read_bytes())
    fresh = engine.new_state().rules
    assert list(state.rules) == list(stored["r"])
    rich = [rule_id for rule_id, (_, doc) in stored["r"].items() if any(doc.get(k) for k in ("k", "f", "x"))]
    assert rich, "the captured account has rule state to read"
    assert all(state.rules[rule_id] != fresh[rule_id] for rule_id in rich)
    assert (state.account_id, len(state.seen), len(state.buffer)) == (stored["a"], len(stored["s"]), len(stored["b"]))
    encoded = engine.dumps(state)
    assert orjson.loads(encoded)["v"] == STATE_VERSION == 2
    again = engine.loads(encoded)
    assert again.rules == state.rules
    assert engine.dumps(again) == encoded


FEATURES = {"d": "digest", "f": 1.0, "l": 2.0, "u": 2.0, "days": [[0, 1, {}, ["u1"], {}]]}
TABLED = {**FEATURES, "d": "digest+t", "days": [[0, 1, {}, [0], {}]], "ut": {"u1": 0}, "uc": 2}
"""The risk features read: their user ids in a table, days listing numbers (rules.risk.features.upgrade)."""
VERSION_1: list[tuple[str, dict[str, Any], dict[str, Any], Any]] = [
    (
        "threshold",
        {},
        {"k": {"u1": {"b": [[10, 2]], "s": [[1.0, "e1"]]}}},
        SlidingState({"u1": SlidingKey([[10, 2]], [[1.0, "e1"]])}),
    ),
    ("spike", {}, {"k": {"": {"b": [[3, 1]], "s": []}}}, SlidingState({"": SlidingKey([[3, 1]], [])})),
    (
        "ratio",
        {},
        {"k": {"": {"n": [[5, 1]], "d": [[5, 3]], "s": [[1.0, "e1"]], "t": [1, 3]}}},
        RatioState({"": RatioKey([[5, 1]], [[5, 3]], [[1.0, "e1"]], 1, 3)}),
    ),
    (
        "ratio",
        {},
        {"k": {"": {"n": [[5, 1], [6, 2]], "d": [[5, 4]], "s": []}}},  # before running totals: summed
        RatioState({"": RatioKey([[5, 1], [6, 2]], [[5, 4]], [], 3, 4)}),
    ),
    (
        "drop",
        {},
        {"k": {"": {"w": 7, "v": 3, "h": [4.0, 5.0], "c": 2, "e": "e9"}}, "n": 100.0},
        DropState(100.0, {"": DropKey(7, 3, [4.0, 5.0], 2, "e9")}),
    ),
    (
        "drop",
        {"measure": "distinct:user_id"},
        {"k": {"": {"w": 8, "v": ["u1"], "h": [2.0], "c": 1}}, "n": 50.0},
        DropState(50.0, {"": DropKey(8, ["u1"], [2.0], 1, None)}),
    ),
    (
        "inactivity",
        {},
        {"k": {"": [1.0, "e1"]}, "n": 3601.0},
        InactivityState(3601.0, {"": (1.0, "e1")}),
    ),
    ("inactivity", {}, {"k": {}}, InactivityState()),
    ("absence", {}, {"k": {"": [2.0, "e2"]}, "n": 3602.0}, AbsenceState(3602.0, {"": (2.0, "e2")})),
    (
        "sequence",
        {},
        {"k": {"u": {"p": [1.0], "i": [["e1"]]}}},
        SequenceState({"u": SequenceRuns([1.0], [["e1"]])}),
    ),
    ("any", {}, {}, AnyState()),
    (
        "score",
        {},
        {"k": {"": {"b": {"activity": [[3, 2]]}, "l": {}, "h": [[9.0, 50.0]], "e": 1.0, "t": 9.0, "f": 9.0}}, "n": 9.0},
        ScoreState(9.0, {"": ScoreKey(1.0, 9.0, 9.0, {"activity": [[3, 2]]}, {}, [[9.0, 50.0]])}),
    ),
    (
        "score",
        {},
        {"k": {"": {"b": {}, "l": {"nps": 3.0}, "h": [], "e": 1.0, "t": None}}},  # before the warm-up: no "f"
        ScoreState(None, {"": ScoreKey(1.0, None, None, {}, {"nps": 3.0}, [])}),
    ),
    ("composite", {"all_of": ["x", "y"]}, {"f": {"x": 5.0}}, CompositeState({"x": 5.0})),
    ("risk", {}, {"x": FEATURES, "n": 86400.0, "a": False, "p": 0.7}, RiskState(86400.0, TABLED, False, 0.7)),
]


@pytest.mark.parametrize(("kind", "overrides", "doc", "expected"), VERSION_1)
def test_each_kinds_version_1_keys_map_to_its_fields(make_rule, kind, overrides, doc, expected) -> None:
    """Each one-letter key of a kind's version 1 state lands in the field that holds the same thing."""
    evaluator = build_evaluator(make_rule(kind, **overrides))
    state = evaluator.read_state(orjson.loads(orjson.dumps(doc)), 1)
    assert state == expected
    assert evaluator.read_state(orjson.loads(orjson.dumps(state)), STATE_VERSION) == state
    if not (kind == "ratio" and "t" not in doc["k"][""]):  # the old code added the totals on its next event
        assert _without_empty_bounds(orjson.loads(orjson.dumps(state.to_version_1()))) == doc
