"""``preempt train``'s core: history + outcomes → a ``risk`` model file (plain JSON).

Imports numpy and scikit-learn (the optional ``train`` extra); only ``streams.cli.train``
imports this module, inside the command, so neither library is ever loaded by the rules
worker or by ``rules/``.

Steps:

1. **Vocabulary** (:func:`build_spec`): one pass over the events finds the terms — event names
   and ``name[property=value]`` for properties with 2–12 distinct values, nested ones by their
   path (``rules.risk.properties``: ``Payment Failed[payment.status=failed]``) — used by at least
   ``min_account_share`` of the accounts, and the numeric properties of rare events. Outcome
   events (``Subscription Cancelled``…) and excluded names never become features. With account
   records, the features of the record too (spec version 3: renewal, tenure, seats, MRR, and
   the tiers and plans that as many accounts have).
2. **Samples** (:func:`collect_samples`): the events are replayed through the engine's own
   feature state (``rules.risk.features.observe``) in ``(ts, event_id)`` order behind a
   watermark (like the backtest), and at every as-of time — each ``as_of_every`` at UTC
   midnight — each account past its warm-up that has not churned yet gives one sample,
   labelled 1 when it churns within ``horizon`` (snapshots within ``min_lead`` of the churn are
   left out, and with ``negative_horizon`` so are those whose churn lies after ``horizon`` but
   within ``negative_horizon``: a retained example is one that does not churn for that long).
3. **Fit** (:func:`fit`): logistic regression on features standardized with
   ``rules.risk.model.standardize``; the regularization is given (``--regularization``) or chosen
   by grouped (per account) cross-validated log loss, and Platt calibration is fitted on the out-of-fold scores.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import GroupKFold

from rules.clock import EventTimeClock
from rules.risk import features
from rules.risk.features import FeatureSpec, NumericProp, Prop, Term
from rules.risk.model import CLIP, MODEL_FORMAT, MODEL_VERSION, RiskModelFile
from rules.risk.properties import named_properties
from schemas.account import Account
from schemas.event import Event, format_ts
from schemas.formatting import plural
from schemas.outcome import DEFAULT_OUTCOME_EVENTS, Outcomes

DAY = features.DAY
_T = TypeVar("_T")
MAX_CATEGORY_VALUES = 12
OUTCOME_EVENT_NAMES = frozenset(DEFAULT_OUTCOME_EVENTS)
"""Outcome events never become features (they are the labels)."""
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
MIN_ACCOUNTS_PER_LABEL = 3
"""Fewer churning (or retained) accounts than this is refused: the per-account cross-validation that chooses C
and fits the calibration would hold out every example of a label, and the model would describe a few customers."""


@dataclass(slots=True)
class _NameStats:
    accounts: set[str] = field(default_factory=set)
    events: int = 0
    values: dict[Prop, dict[Any, set[str]]] = field(default_factory=dict)
    crowded: set[Prop] = field(default_factory=set)
    numeric: dict[Prop, int] = field(default_factory=dict)
    numeric_values: dict[Prop, set[float]] = field(default_factory=dict)


def build_spec(
    events: Iterable[Event],
    exclude: frozenset[str] = frozenset(),
    only: frozenset[str] | None = None,
    min_account_share: float = 0.05,
    max_terms: int = 150,
    accounts_file: Mapping[str, Account] | None = None,
) -> FeatureSpec:
    """The terms and numeric properties the events support (see the module docstring); with
    ``accounts_file`` (the account records), a version 3 spec with the record's features."""
    stats: dict[str, _NameStats] = defaultdict(_NameStats)
    accounts: set[str] = set()
    first = last = None
    for event in events:
        accounts.add(event.account_id)
        first = event.ts if first is None else min(first, event.ts)
        last = event.ts if last is None else max(last, event.ts)
        if event.event in exclude or (only is not None and event.event not in only):
            continue
        item = stats[event.event]
        item.accounts.add(event.account_id)
        item.events += 1
        for prop, value in named_properties(event.properties):  # a top-level key as it is, a nested one's path
            if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
                item.numeric[prop] = item.numeric.get(prop, 0) + 1
                seen = item.numeric_values.setdefault(prop, set())
                if len(seen) < 3:
                    seen.add(float(value))
            if prop in item.crowded or not isinstance(value, str | int | bool) or isinstance(value, float):
                continue
            by_value = item.values.setdefault(prop, {})
            if value not in by_value and len(by_value) >= MAX_CATEGORY_VALUES:
                item.crowded.add(prop)
                del item.values[prop]
                continue
            by_value.setdefault(value, set()).add(event.account_id)
    if not accounts:
        raise ValueError("no events to learn from")
    needed = max(2, math.ceil(min_account_share * len(accounts)))
    span_days = max(1.0, ((last or 0.0) - (first or 0.0)) / DAY)
    candidates: list[tuple[int, Term]] = []
    numerics: list[NumericProp] = []
    for name, item in stats.items():
        if len(item.accounts) >= needed:
            candidates.append((len(item.accounts), Term(name)))
        for prop, by_value in item.values.items():
            if len(by_value) < 2:
                continue
            for value, users in by_value.items():
                if len(users) >= needed:
                    candidates.append((len(users), Term(name, prop, value)))
        rare = item.events / (len(item.accounts) * span_days) <= 1.5
        for prop, count in item.numeric.items():
            if (
                rare
                and len(item.accounts) >= needed
                and count >= 0.9 * item.events
                and len(item.numeric_values[prop]) >= 3
            ):
                numerics.append(NumericProp(name, prop))
    candidates = _named_once(candidates, lambda c: c[1].label)
    candidates.sort(key=lambda c: (-c[0], c[1].label))
    terms = sorted((t for _, t in candidates[:max_terms]), key=lambda t: t.label)
    numeric_props = tuple(sorted(_named_once(numerics, lambda n: n.label), key=lambda n: n.label))
    if accounts_file is None:
        return FeatureSpec(tuple(terms), numeric_props, version=2)
    records = [accounts_file[a] for a in sorted(accounts) if a in accounts_file]
    tiers = _common_values([r.tier for r in records], needed)
    plans = _common_values([r.plan for r in records], needed)
    return FeatureSpec(tuple(terms), numeric_props, 3, tiers, plans)


def _named_once(items: list[_T], label: Callable[[_T], str]) -> list[_T]:
    """``items`` without those whose name another one has too: a feature's name says which term it is about (an
    event named ``invoice.paid`` with ``amount`` and an ``invoice`` with ``paid.amount`` are both
    ``invoice.paid.amount``; ``Export[ok=true]`` is an event so named as well as ``Export`` with ``ok`` true)."""
    counts: dict[str, int] = {}
    for item in items:
        counts[label(item)] = counts.get(label(item), 0) + 1
    return [item for item in items if counts[label(item)] == 1]


def _common_values(values: list[str | None], needed: int) -> tuple[str, ...]:
    """The values at least ``needed`` records have (at most ``MAX_ACCOUNT_VALUES``, the most common), sorted."""
    counts: dict[str, int] = {}
    for value in values:
        if value is not None:
            counts[value] = counts.get(value, 0) + 1
    common = sorted((v for v, n in counts.items() if n >= needed), key=lambda v: (-counts[v], v))
    return tuple(sorted(common[: features.MAX_ACCOUNT_VALUES]))


SAMPLE_CHUNK_ROWS = 4096
"""Samples are kept in float64 blocks of this many rows (NaN = unknown): 8 bytes a feature, not a Python float."""
DEDUP_HORIZON = 86400.0
"""An event id seen at most this long (of event time) before is a duplicate: the engine's default ``dedup_horizon``
(``preempt train`` gives the worker's setting)."""


@dataclass(slots=True)
class Samples:
    """One row per (account, as-of time): features, label, and the account (for grouped CV).

    The features are kept in float64 blocks (:data:`SAMPLE_CHUNK_ROWS` rows each; an unknown value is NaN), so
    a sample costs 8 bytes a feature rather than a list of Python floats (about 30): the same numbers, so
    the same model.
    """

    width: int = 0
    labels: list[int] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    first_event_at: float | None = None
    last_event_at: float | None = None
    late: int = 0
    """Events older than the watermark (newest − lateness), ignored as the engine ignores them."""
    duplicates: int = 0
    """Events whose id the account sent within the dedup horizon before, ignored as the engine ignores them."""
    _blocks: list[np.ndarray[Any, Any]] = field(default_factory=list)
    _filled: int = 0

    def add(self, row: list[float | None], label: int, account_id: str, tick: float) -> None:
        """Append one sample."""
        if not self._blocks or self._filled == SAMPLE_CHUNK_ROWS:
            self._blocks.append(np.empty((SAMPLE_CHUNK_ROWS, self.width), dtype=np.float64))
            self._filled = 0
        self._blocks[-1][self._filled] = [math.nan if v is None else v for v in row]
        self._filled += 1
        self.labels.append(label)
        self.accounts.append(account_id)
        self.times.append(tick)

    def matrix(self) -> np.ndarray[Any, Any]:
        """Every sample's features, one row each (NaN: unknown), as one array; the blocks become that array."""
        if not self._blocks:
            return np.empty((0, self.width), dtype=np.float64)
        if len(self._blocks) > 1 or self._filled != SAMPLE_CHUNK_ROWS:
            whole = np.concatenate([*self._blocks[:-1], self._blocks[-1][: self._filled]])
            self._blocks = [whole]
            self._filled = len(whole)
        return self._blocks[0]

    @property
    def rows(self) -> list[list[float | None]]:
        """The features as lists (None: unknown), for reading a few samples."""
        return [[None if math.isnan(v) else v for v in row] for row in self.matrix().tolist()]


def collect_samples(
    spec: FeatureSpec,
    events: Iterable[Event],
    outcomes: Outcomes,
    horizon: float,
    every: float,
    warmup: float,
    allowed_lateness: float = 5.0,
    min_lead: float = 0.0,
    negative_horizon: float | None = None,
    accounts_file: Mapping[str, Account] | None = None,
    dedup_horizon: float = DEDUP_HORIZON,
) -> Samples:
    """Replay events through the feature state and snapshot every account at each as-of time.

    ``allowed_lateness`` and ``dedup_horizon`` are the engine's: give the worker's settings, so that the
    events the model learns from are those the worker evaluates.

    A version 3 spec reads each account's record from ``accounts_file`` (missing: unknown), as the
    engine reads it from the accounts topic or a backtest's accounts file.

    With ``min_lead``, snapshots less than that before the account's churn are left out: too late
    to act on, they would teach the model the last days' obvious signs instead of early ones.
    With ``negative_horizon`` (longer than ``horizon``), snapshots whose churn lies after
    ``horizon`` but within ``negative_horizon`` are left out too: months before a churn an account
    often still looks healthy, and neither label would be true of it.
    """
    if negative_horizon is not None and negative_horizon < horizon:
        raise ValueError("the negative horizon must not be shorter than the horizon")
    if every <= 0 or not (every / DAY).is_integer():
        raise ValueError("as-of spacing must be a whole number of days")
    states: dict[str, dict[str, Any]] = {}
    # event ids of the last dedup horizon, per account, as the engine keeps them: memory follows the event rate,
    # not the history's length (a set of every (account, id) took about 200 bytes an event)
    seen: dict[str, dict[str, float]] = {}
    arrivals: deque[tuple[float, str, str]] = deque()
    heap: list[tuple[float, str, int, Event]] = []
    samples = Samples(width=len(spec.names))
    next_tick: float | None = None
    clock = EventTimeClock(allowed_lateness)  # the engine's watermark, as the backtest keeps it
    counter = 0
    records = accounts_file or {}
    facts: dict[str, features.AccountFacts] = {}

    def facts_of(account_id: str) -> features.AccountFacts:
        if not spec.uses_accounts:
            return features.UNKNOWN_ACCOUNT
        known = facts.get(account_id)
        if known is None:
            known = facts[account_id] = features.AccountFacts.of(records.get(account_id))
        return known

    def snapshot(tick: float) -> None:
        for account_id in sorted(states):
            state = states[account_id]
            if state["f"] is None or tick - state["f"] < warmup:
                continue
            outcome = outcomes.by_account.get(account_id)
            if outcome is None:
                continue  # no ground truth for this account: it teaches nothing
            churn = outcomes.churn_time(account_id)
            if churn is not None and churn - tick < max(min_lead, 1e-9):
                continue  # already gone, or too close to the churn to act
            if churn is not None and negative_horizon is not None and horizon < churn - tick <= negative_horizon:
                continue  # churns later, but too soon to count as retained
            samples.add(
                features.values(features.compute(spec, state, tick, facts_of(account_id))),
                1 if churn is not None and churn - tick <= horizon else 0,
                account_id,
                tick,
            )

    def apply_before(limit: float) -> None:
        nonlocal next_tick
        while heap and heap[0][0] < limit:
            ts = heap[0][0]
            while next_tick is not None and next_tick <= ts:
                snapshot(next_tick)
                next_tick += every
            _, _, _, event = heapq.heappop(heap)
            state = states.get(event.account_id)
            if state is None:
                state = states[event.account_id] = features.new_state(spec)
            features.observe(spec, state, event)

    for event in events:
        ids = seen.get(event.account_id)
        if ids is None:
            ids = seen[event.account_id] = {}
        first_seen = ids.get(event.event_id)
        if first_seen is not None and event.ts - first_seen <= dedup_horizon:
            samples.duplicates += 1  # the engine's DUPLICATE (checked before lateness, as there)
            continue
        if next_tick is None:
            next_tick = (math.floor(event.ts / DAY) + 1) * DAY + every
        watermark = clock.after_event(event.ts)
        if event.ts < watermark:
            samples.late += 1  # the engine would ignore it as late too
            continue
        ids[event.event_id] = event.ts  # an id seen longer ago than the horizon is a new event reusing it
        arrivals.append((event.ts, event.account_id, event.event_id))
        forget_before = watermark - dedup_horizon
        while arrivals and arrivals[0][0] < forget_before:
            ts, account_id, event_id = arrivals.popleft()
            kept = seen[account_id]
            if kept.get(event_id) == ts:
                del kept[event_id]
        first = samples.first_event_at
        samples.first_event_at = event.ts if first is None else min(first, event.ts)
        if event.account_id in outcomes.by_account:  # an account without an outcome gives no sample: no state
            counter += 1
            heapq.heappush(heap, (event.ts, event.event_id, counter, event))
        apply_before(watermark)
    apply_before(math.inf)
    newest = clock.max_event_time
    if next_tick is not None and newest is not None:
        while next_tick <= newest:
            snapshot(next_tick)
            next_tick += every
    samples.last_event_at = newest
    return samples


@dataclass(frozen=True, slots=True)
class Fit:
    """The fitted numbers, before they become a model file."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    calibration_a: float
    calibration_b: float
    c: float
    auc: float | None
    c_chosen_by: str = "cross-validated log loss"


def _moments(x: np.ndarray[Any, Any]) -> tuple[list[float], list[float]]:
    """Each column's mean and standard deviation over its known values (NaN: unknown), summed in row order
    in Python floats, as the models trained from lists were: the same inputs give the same model file."""
    mean: list[float] = []
    scale: list[float] = []
    for j in range(x.shape[1]):
        values = x[:, j]
        column: list[float] = values[~np.isnan(values)].tolist()
        if not column:
            mean.append(0.0)
            scale.append(1.0)
            continue
        m = sum(column) / len(column)
        var = sum((v - m) ** 2 for v in column) / len(column)
        mean.append(m)
        scale.append(math.sqrt(var) if var > 1e-12 else 1.0)
    return mean, scale


def _standardize_in_place(x: np.ndarray[Any, Any], mean: list[float], scale: list[float]) -> None:
    """:func:`rules.risk.model.standardize` on every row at once, in place (column by column: no second copy)."""
    for j, (m, s) in enumerate(zip(mean, scale, strict=True)):
        column = x[:, j]
        unknown = np.isnan(column)
        column -= m
        column /= s
        np.clip(column, -CLIP, CLIP, out=column)
        column[unknown] = 0.0


def fit_steps(samples: Samples, c: float | None = None) -> int:
    """How many models :func:`fit` trains (for a progress bar): per C, one per fold, and the final one."""
    return (len(C_GRID) if c is None else 1) * min(4, len(set(samples.accounts))) + 1


def fit(
    samples: Samples, width: int, seed: int = 0, c: float | None = None, step: Callable[[], None] | None = None
) -> Fit:
    """Logistic regression + Platt calibration (see the module docstring).

    ``c``: the regularization (``preempt train --regularization``); ``None`` chooses it from
    :data:`C_GRID` by grouped cross-validated log loss. Either way the calibration is fitted on
    out-of-fold scores of the C used. ``step`` is called after each of the :func:`fit_steps` models.
    """
    y = np.asarray(samples.labels, dtype=int)
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError("the samples need both churned and retained examples; check --outcomes and --horizon")
    churning = {a for a, label in zip(samples.accounts, samples.labels, strict=True) if label}
    retained = set(samples.accounts) - churning
    if len(churning) < MIN_ACCOUNTS_PER_LABEL or len(retained) < MIN_ACCOUNTS_PER_LABEL:
        raise ValueError(
            f"too few examples to learn from: {len(churning)} churning and {plural(len(retained), 'retained account')} "
            f"gave samples, and a model needs at least {MIN_ACCOUNTS_PER_LABEL} of each (more accounts with "
            "outcomes, or a longer history)"
        )
    if c is not None and not (math.isfinite(c) and c > 0):
        raise ValueError(f"the regularization C must be a positive number, not {c}")
    x = samples.matrix()
    if x.shape[1] != width:
        raise ValueError(f"samples of {x.shape[1]} features for a model of {width}")
    mean, scale = _moments(x)
    _standardize_in_place(x, mean, scale)  # the samples' features are standardized from here on
    groups = np.asarray(samples.accounts)
    folds = min(4, len(set(samples.accounts)))
    splitter = GroupKFold(n_splits=folds)
    best: tuple[float, float, np.ndarray[Any, Any]] | None = None
    for candidate in C_GRID if c is None else (c,):
        oof = np.zeros(len(y))
        for train, test in splitter.split(x, y, groups):
            if len(set(y[train])) < 2:
                continue
            model = LogisticRegression(C=candidate, max_iter=5000, random_state=seed)
            model.fit(x[train], y[train])
            oof[test] = model.decision_function(x[test])
            if step is not None:
                step()
        loss = log_loss(y, 1.0 / (1.0 + np.exp(-oof)), labels=[0, 1])
        if best is None or loss < best[0]:
            best = (loss, candidate, oof)
    assert best is not None
    chosen = c is None
    _, c, oof = best
    platt = LogisticRegression(C=1e6, max_iter=5000)
    platt.fit(oof.reshape(-1, 1), y)
    auc = float(roc_auc_score(y, oof)) if len(set(y)) == 2 else None
    final = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    final.fit(x, y)
    if step is not None:
        step()
    return Fit(
        mean=mean,
        scale=scale,
        coef=[float(v) for v in final.coef_[0]],
        intercept=float(final.intercept_[0]),
        calibration_a=float(platt.coef_[0][0]),
        calibration_b=float(platt.intercept_[0]),
        c=c,
        auc=auc,
        c_chosen_by="cross-validated log loss" if chosen else "given",
    )


def model_document(
    spec: FeatureSpec,
    samples: Samples,
    result: Fit,
    outcomes: Outcomes,
    horizon: float,
    every: float,
    trained_at: datetime | None = None,
    min_lead: float = 0.0,
    negative_horizon: float | None = None,
) -> RiskModelFile:
    """The model file's content."""
    used = set(samples.accounts)
    churned: Mapping[str, float] = outcomes.churned
    return RiskModelFile.model_validate(
        {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION if spec.uses_accounts else 1,
            "feature_spec": spec.to_json(),
            "features": spec.names,
            "mean": [round(v, 9) for v in result.mean],
            "scale": [round(v, 9) for v in result.scale],
            "coef": [round(v, 9) for v in result.coef],
            "intercept": round(result.intercept, 9),
            "calibration": {
                "method": "platt",
                "a": round(result.calibration_a, 9),
                "b": round(result.calibration_b, 9),
            },
            "training": {
                "trained_at": format_ts((trained_at or datetime.now(tz=UTC)).timestamp()),
                "events_from": format_ts(samples.first_event_at or 0.0),
                "events_to": format_ts(samples.last_event_at or 0.0),
                "accounts": len(used),
                "churned_accounts": sum(1 for a in used if a in churned),
                "samples": len(samples.labels),
                "positive_samples": sum(samples.labels),
                "horizon_days": horizon / DAY,
                "min_lead_days": min_lead / DAY,
                "negative_horizon_days": None if negative_horizon is None else negative_horizon / DAY,
                "as_of_every_days": every / DAY,
                "regularization_c": result.c,
                "regularization_chosen_by": result.c_chosen_by,
                "cross_validated_auc": None if result.auc is None else round(result.auc, 4),
                "library": f"scikit-learn {sklearn.__version__}",
            },
        }
    )
