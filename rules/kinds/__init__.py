"""One evaluator module per rule kind, listed in one explicit registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rules.kinds.absence import AbsenceEvaluator
from rules.kinds.any import AnyEvaluator
from rules.kinds.base import Evaluator
from rules.kinds.composite import CompositeEvaluator
from rules.kinds.drop import DropEvaluator
from rules.kinds.inactivity import InactivityEvaluator
from rules.kinds.ratio import RatioEvaluator
from rules.kinds.risk import RiskEvaluator
from rules.kinds.score import ScoreEvaluator
from rules.kinds.sequence import SequenceEvaluator
from rules.kinds.spike import SpikeEvaluator
from rules.kinds.threshold import ThresholdEvaluator
from rules.models import RuleBase

REGISTRY: dict[str, Callable[[Any], Evaluator[Any]]] = {
    "threshold": ThresholdEvaluator,
    "ratio": RatioEvaluator,
    "spike": SpikeEvaluator,
    "drop": DropEvaluator,
    "inactivity": InactivityEvaluator,
    "absence": AbsenceEvaluator,
    "sequence": SequenceEvaluator,
    "any": AnyEvaluator,
    "score": ScoreEvaluator,
    "composite": CompositeEvaluator,
    "risk": RiskEvaluator,
}
"""kind → evaluator class; each class takes its own rule model."""


def build_evaluator(rule: RuleBase) -> Evaluator[Any]:
    """The evaluator for one validated rule."""
    return REGISTRY[rule.kind](rule)
