"""A tiny hand-made risk model for tests: risk = sigmoid(days since the last event − 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rules.loader import parse_rule
from rules.models import RiskRule
from rules.risk.features import FeatureSpec, NumericProp, Term
from rules.risk.model import MODEL_FORMAT, MODEL_VERSION

SPEC = FeatureSpec(
    terms=(Term("Login"), Term("Login", "role", "admin"), Term("Error")),
    numerics=(NumericProp("NPS", "score"),),
)
GOLDEN = Path(__file__).parent / "golden" / "risk-model.json"


def model_doc(coef: dict[str, float] | None = None, intercept: float = -5.0) -> dict[str, Any]:
    """A model file's JSON: standardization is the identity, only the named coefficients are set."""
    names = SPEC.names
    weights = {"days_since_last_event": 1.0} if coef is None else coef
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "feature_spec": SPEC.to_json(),
        "features": names,
        "mean": [0.0] * len(names),
        "scale": [1.0] * len(names),
        "coef": [weights.get(name, 0.0) for name in names],
        "intercept": intercept,
        "calibration": {"method": "platt", "a": 1.0, "b": 0.0},
        "training": {
            "trained_at": "2026-11-01T00:00:00.000Z",
            "events_from": "2026-08-01T00:00:00.000Z",
            "events_to": "2026-11-01T00:00:00.000Z",
            "accounts": 10,
            "churned_accounts": 2,
            "samples": 100,
            "positive_samples": 10,
            "horizon_days": 60.0,
            "as_of_every_days": 7.0,
            "regularization_c": 0.1,
        },
    }


def write_model(path: Path, coef: dict[str, float] | None = None, intercept: float = -5.0) -> Path:
    """Write :func:`model_doc` to ``path``."""
    path.write_bytes(orjson.dumps(model_doc(coef, intercept), option=orjson.OPT_INDENT_2))
    return path


def risk_rule(model: Path, **overrides: object) -> RiskRule:
    """A ``risk`` rule on the model file at ``model`` (threshold 0.5, warm-up 1d), with ``overrides``."""
    data = {
        "id": "risk",
        "kind": "risk",
        "title": "risk",
        "severity": "high",
        "priority": 1,
        "model": str(model),
        "threshold": 0.5,
        "warmup": "1d",
    }
    data.update(overrides)
    rule = parse_rule(data)
    assert isinstance(rule, RiskRule)
    return rule
