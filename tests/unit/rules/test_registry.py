"""The kind registry: one evaluator per kind, each built from its own rule model."""

from __future__ import annotations

import orjson

from rules.kinds import REGISTRY, build_evaluator
from rules.models import KINDS
from rules.state import STATE_VERSION


def test_registry_has_exactly_the_documented_kinds():
    """Every kind in the language has an evaluator and there is none without a kind."""
    assert sorted(REGISTRY) == sorted(KINDS)


def test_each_kind_builds_an_evaluator_with_a_fresh_json_state(make_rule):
    """Each evaluator carries its rule and starts from an empty, JSON-ready state."""
    for kind in KINDS:
        overrides = {"all_of": ["x", "y"]} if kind == "composite" else {}
        evaluator = build_evaluator(make_rule(kind, **overrides))
        assert evaluator.rule.kind == kind
        state = evaluator.new_state()
        assert evaluator.read_state(orjson.loads(orjson.dumps(state)), STATE_VERSION) == state
        assert evaluator.next_deadline(state) is None
