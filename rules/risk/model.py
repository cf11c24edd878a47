"""The risk model file (plain JSON, made by ``preempt train``) and its pure, dependency-free scoring.

A model is a logistic regression over standardized features, with Platt calibration::

    z_i = clip((x_i − mean_i) / scale_i, ±CLIP)      (x_i unknown → mean_i, i.e. z_i = 0)
    s   = intercept + Σ coef_i · z_i
    p   = 1 / (1 + exp(−(a · s + b)))                 calibrated churn probability

Each term ``coef_i · z_i`` is feature i's contribution, so the top positive ones say *why* an
account is at risk. Training (``streams.prescient.training``) uses :func:`standardize` too, so the
stream scores exactly what the model was fitted on. No numpy, no scikit-learn here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rules.risk.features import FeatureSpec
from schemas.error_text import first_problem, unreadable
from schemas.errors import PreemptError

MODEL_FORMAT = "preempt-risk-model"
MODEL_VERSION = 2
"""The version new model files get: 2 = features of the account record too (feature spec version 3)."""
MODEL_VERSIONS = (1, 2)
"""Versions this Preempt scores: a version 1 file (events only, spec version 1 or 2) scores as before."""
CLIP = 6.0


class RiskModelError(PreemptError):
    """A model file that cannot be read or is not a Preempt risk model of a supported version."""


class _Strict(BaseModel):
    # NaN and infinity (json.dump writes them; pydantic's JSON parser reads them) would score every
    # account "nan" and fire for all of them: a model holding one is not a model.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Calibration(_Strict):
    """Platt scaling of the raw score: ``p = sigmoid(a · s + b)``."""

    method: str = Field("platt", pattern="^platt$")
    a: float
    b: float


class TrainingInfo(_Strict):
    """Where the model came from: data span, sizes, options, fit quality."""

    trained_at: str
    events_from: str
    events_to: str
    accounts: int
    churned_accounts: int
    samples: int
    positive_samples: int
    horizon_days: float
    min_lead_days: float = 0.0
    negative_horizon_days: float | None = None
    as_of_every_days: float
    regularization_c: float
    regularization_chosen_by: str = "cross-validated log loss"
    """How C was set: ``cross-validated log loss`` (the default) or ``given`` (``--regularization``)."""
    cross_validated_auc: float | None = None
    library: str = ""


class RiskModelFile(_Strict):
    """The JSON document of a model file."""

    format: str = Field(MODEL_FORMAT, pattern=f"^{MODEL_FORMAT}$")
    version: int
    feature_spec: dict[str, Any]
    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    calibration: Calibration
    training: TrainingInfo

    @model_validator(mode="after")
    def _consistent(self) -> RiskModelFile:
        if self.version not in MODEL_VERSIONS:
            raise ValueError(
                f"model version {self.version}; this Preempt reads versions "
                f"{', '.join(map(str, MODEL_VERSIONS))}: retrain it with this Preempt's preempt train"
            )
        spec_version = self.feature_spec.get("version")
        if (self.version >= 2) != (isinstance(spec_version, int) and spec_version >= 3):
            raise ValueError(
                f"model version {self.version} with feature spec version {spec_version!r}: account features "
                "(spec version 3) come with model version 2; retrain it with preempt train"
            )
        sizes = {len(self.features), len(self.mean), len(self.scale), len(self.coef)}
        if len(sizes) != 1:
            raise ValueError("features, mean, scale and coef must have the same length")
        if any(s <= 0 for s in self.scale):
            raise ValueError("every scale must be positive")
        # the largest score any account can get (standardized values are clipped to ±CLIP): beyond floats, two
        # contributions of +inf and -inf would score an account NaN, which never alerts
        largest = abs(self.intercept) + sum(abs(c) for c in self.coef) * CLIP
        if not math.isfinite(abs(self.calibration.a) * largest + abs(self.calibration.b)):
            raise ValueError("coefficients so large that scores overflow")
        return self


@dataclass(frozen=True, slots=True)
class Score:
    """A calibrated risk and each feature's contribution to it."""

    risk: float
    contributions: list[float]


@dataclass(frozen=True, slots=True)
class RiskModel:
    """A loaded model: its feature spec and the arithmetic to score a feature vector."""

    spec: FeatureSpec
    doc: RiskModelFile

    @classmethod
    def from_doc(cls, doc: RiskModelFile) -> RiskModel:
        """Check that the spec yields exactly the model's feature list."""
        try:
            spec = FeatureSpec.from_json(doc.feature_spec)
        except KeyError as exc:  # a field a term or numeric property needs (its name alone read as the message)
            raise RiskModelError(
                f"feature_spec: {exc.args[0]!r} is missing (edited by hand?); make the model again with this "
                "Preempt's preempt train"
            ) from None
        except (TypeError, ValueError) as exc:
            raise RiskModelError(
                f"feature_spec: {exc}; make the model again with this Preempt's preempt train"
            ) from None
        matching = spec.matching_names(doc.features)  # a model of before 2026-12 names booleans ok=False
        if matching is None:
            raise RiskModelError("features do not match what feature_spec produces (edited by hand?)")
        return cls(matching, doc)

    def score(self, vector: Sequence[float | None]) -> Score:
        """The calibrated churn risk of one feature vector."""
        doc = self.doc
        z = standardize(vector, doc.mean, doc.scale)
        contributions = [c * v for c, v in zip(doc.coef, z, strict=True)]
        raw = doc.intercept + sum(contributions)
        return Score(_sigmoid(doc.calibration.a * raw + doc.calibration.b), contributions)


def standardize(vector: Sequence[float | None], mean: Sequence[float], scale: Sequence[float]) -> list[float]:
    """``clip((x − mean) / scale)``; an unknown value sits at the mean (0). Training uses it too."""
    out: list[float] = []
    for x, m, s in zip(vector, mean, scale, strict=True):
        if x is None:
            out.append(0.0)
            continue
        value = (x - m) / s
        out.append(CLIP if value > CLIP else -CLIP if value < -CLIP else value)
    return out


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def load_risk_model(path: Path) -> RiskModel:
    """Read and check a model file; ``RiskModelError`` with a sentence otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RiskModelError(f"cannot read {path}: {unreadable(exc)}") from None
    try:
        head = orjson.loads(raw)
    except orjson.JSONDecodeError:
        head = None
    if isinstance(head, dict) and head.get("format") == MODEL_FORMAT and head.get("version") not in MODEL_VERSIONS:
        raise RiskModelError(
            f"{path}: model version {head.get('version')!r} is not one this Preempt reads "
            f"({', '.join(map(str, MODEL_VERSIONS))}); retrain it with this Preempt's preempt train"
        )
    try:
        doc = RiskModelFile.model_validate(head) if isinstance(head, dict) else RiskModelFile.model_validate_json(raw)
    except ValidationError as exc:
        raise RiskModelError(
            f"{path} is not a Preempt risk model ({first_problem(exc.errors())}); make one with preempt train"
        ) from None
    return RiskModel.from_doc(doc)
