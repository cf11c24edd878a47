"""The ``risk`` kind: fires on crossing its threshold, with hysteresis, warm-up and readable evidence."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from rules.engine import RuleEngine
from rules.kinds.risk import RiskEvaluator
from rules.loader import RuleSet, load_rules
from rules.models import RiskRule
from rules.risk import features
from rules.risk.model import RiskModelError, load_risk_model
from schemas.errors import RuleConfigError
from schemas.event import Event
from tests.unit.rules.risk_support import SPEC, risk_rule, write_model

DAY = 86400.0
MIDNIGHT = 1_795_392_000.0  # 2026-11-23T00:00:00Z


def _rule(model: Path, **overrides: object) -> RiskRule:
    return risk_rule(model, **overrides)


def _login(day: float, n: int = 0) -> Event:
    return Event(
        f"e{day}-{n}", "Login", "acme", MIDNIGHT + day * DAY + 3600 + n, user_id="u1", properties={"role": "admin"}
    )


def test_fires_once_risk_crosses_threshold_and_rearms_below_hysteresis(tmp_path: Path) -> None:
    """Risk = sigmoid(days silent − 5): fires after 5 silent days, again only after a recovery and relapse."""
    evaluator = RiskEvaluator(_rule(write_model(tmp_path / "m.json"), hysteresis=0.2))
    state = evaluator.new_state()
    evaluator.on_event(state, _login(0))
    assert evaluator.next_deadline(state) == MIDNIGHT + DAY
    fired = evaluator.advance_to(state, MIDNIGHT + 8 * DAY, "acme")
    # silent days at each midnight: 0.96, 1.96, …, 4.96, 5.96 → risk ≥ 0.5 from day 6, fired once
    assert [f.fired_at for f in fired] == [MIDNIGHT + 6 * DAY]
    assert state.armed is False
    evaluator.on_event(state, _login(8.5))
    assert evaluator.advance_to(state, MIDNIGHT + 10 * DAY, "acme") == []
    assert state.armed is True  # risk fell below 0.5 − 0.2
    again = evaluator.advance_to(state, MIDNIGHT + 16 * DAY, "acme")
    # last login at day 8.54: 13 − 8.54 = 4.46 < 5, 14 − 8.54 = 5.46 ≥ 5
    assert [f.fired_at for f in again] == [MIDNIGHT + 14 * DAY]


def test_evidence_names_the_top_features_as_sentences(tmp_path: Path) -> None:
    """The evidence holds the calibrated risk, the threshold and sentences for the contributions."""
    evaluator = RiskEvaluator(_rule(write_model(tmp_path / "m.json")))
    state = evaluator.new_state()
    evaluator.on_event(state, _login(0))
    (finding,) = evaluator.advance_to(state, MIDNIGHT + 6 * DAY, "acme")
    evidence = finding.evidence
    assert evidence["measure"] == "risk"
    assert evidence["value"] == pytest.approx(1 / (1 + 2.718281828 ** -(5.9583333 - 5)), abs=1e-3)
    assert evidence["threshold"] == 0.5
    assert evidence["reasons"] == ["no events for 6 days"]  # 5.96, said without a raw ".0"
    assert list(evidence["contributions"]) == ["days_since_last_event"]


def test_no_alert_during_warmup(tmp_path: Path) -> None:
    """An account younger than the warm-up does not fire, however risky it looks."""
    evaluator = RiskEvaluator(_rule(write_model(tmp_path / "m.json"), warmup="30d"))
    state = evaluator.new_state()
    evaluator.on_event(state, _login(0))
    assert evaluator.advance_to(state, MIDNIGHT + 20 * DAY, "acme") == []
    assert state.armed is True


def test_ticks_stop_long_after_the_last_event(tmp_path: Path) -> None:
    """A silent account stops being scored CAP_DAYS after its last event (nothing can change)."""
    evaluator = RiskEvaluator(_rule(write_model(tmp_path / "m.json")))
    state = evaluator.new_state()
    evaluator.on_event(state, _login(0))
    evaluator.advance_to(state, MIDNIGHT + 200 * DAY, "acme")
    assert evaluator.next_deadline(state) is None


def test_engine_state_round_trip_keeps_findings(tmp_path: Path) -> None:
    """Serializing the account state between events changes no finding (what the worker does)."""
    rules = RuleSet((_rule(write_model(tmp_path / "m.json")),))
    events = [_login(day, n) for day in (0, 1, 2, 3, 12, 13) for n in range(3)]
    straight = RuleEngine(rules)
    state = straight.new_state()
    expected = [f for e in events for f in straight.on_event(state, e, e.ts)[1]]
    expected += straight.advance(state, MIDNIGHT + 40 * DAY)
    chopped = RuleEngine(rules)
    got = []
    blob = chopped.dumps(chopped.new_state())
    for event in events:
        current = chopped.loads(blob)
        got += chopped.on_event(current, event, event.ts)[1]
        blob = chopped.dumps(current)
    got += chopped.advance(chopped.loads(blob), MIDNIGHT + 40 * DAY)
    assert [f.alert_id for f in got] == [f.alert_id for f in expected]
    assert expected


@pytest.mark.parametrize("chopped", [False, True])
def test_a_crossing_within_the_cooldown_alerts_once_the_cooldown_is_over(tmp_path: Path, chopped: bool) -> None:
    """Cooldown spaces alerts, it does not cancel them: a risk that crosses the threshold again within the cooldown
    and stays above it alerts at the first tick after the cooldown. Before, the held-back crossing disarmed the rule
    and the account, silent for two months at a risk of 1.0, never alerted again."""
    rules = RuleSet((_rule(write_model(tmp_path / "m.json"), hysteresis=0.2, cooldown="30d"),))
    engine = RuleEngine(rules)
    state = engine.new_state()
    findings = []
    for event in (_login(0), _login(8.5)):  # risk = sigmoid(days silent - 5): ≥ 0.5 on day 6, < 0.3 on day 9
        findings += engine.on_event(state, event, event.ts)[1]
    if chopped:  # the worker's timer and the backtest advance the clock in steps of any size: the same alerts
        for day in range(1, 80):
            findings += engine.advance(state, MIDNIGHT + day * DAY)
    else:
        findings += engine.advance(state, MIDNIGHT + 80 * DAY)
    # day 6: fires; day 9: re-armed; day 14: crosses again within the cooldown (day 6 + 30); day 36: still above
    assert [(f.fired_at - MIDNIGHT) / DAY for f in findings] == [6, 36]


def test_engine_features_equal_the_training_replay(tmp_path: Path) -> None:
    """The features the engine scores at a tick are those ``preempt train`` computes by replay."""
    rule = _rule(write_model(tmp_path / "m.json"))
    engine = RuleEngine(RuleSet((rule,)))
    state = engine.new_state()
    events = [_login(d, n) for d in range(0, 40, 3) for n in range(2)]
    events += [Event(f"x{d}", "NPS", "acme", MIDNIGHT + d * DAY + 50, "u2", {"score": 10 - d % 7}) for d in range(40)]
    events.sort(key=lambda e: (e.ts, e.event_id))
    for event in events:
        engine.on_event(state, event, event.ts)
    tick = MIDNIGHT + 41 * DAY
    engine.advance(state, tick + 1)
    served = features.compute(SPEC, state.rules["risk"].features, tick)
    (replayed,) = features.replay(SPEC, reversed(events), [tick])
    assert replayed[0] == tick
    assert features.values(replayed[1]) == features.values(served)


def test_loader_reads_the_model_relative_to_the_rule_file(tmp_path: Path) -> None:
    """``model`` is a path relative to the rule file; a missing or bad model names file, rule and field."""
    (tmp_path / "models").mkdir()
    write_model(tmp_path / "models" / "churn.json")
    rule_file = tmp_path / "rules" / "risk.yaml"
    rule_file.parent.mkdir()
    rule_file.write_text(
        "id: r\nkind: risk\ntitle: t\nseverity: high\npriority: 1\nmodel: ../models/churn.json\nthreshold: 0.7\n"
    )
    (rule,) = load_rules(rule_file).rules
    assert isinstance(rule, RiskRule)
    assert rule.loaded_model is not None
    rule_file.write_text(rule_file.read_text().replace("churn.json", "nope.json"))
    with pytest.raises(RuleConfigError, match=r"risk.yaml: rule 'r': field 'model': cannot read"):
        load_rules(rule_file)
    (tmp_path / "models" / "nope.json").write_bytes(orjson.dumps({"format": "something else"}))
    with pytest.raises(RuleConfigError, match="not a Preempt risk model"):
        load_rules(rule_file)


def test_hysteresis_must_stay_below_threshold(tmp_path: Path) -> None:
    """A hysteresis as large as the threshold could never re-arm: refused at load."""
    with pytest.raises(ValueError, match="hysteresis"):
        _rule(tmp_path / "m.json", threshold=0.1, hysteresis=0.1)


@pytest.mark.parametrize(
    ("threshold", "hysteresis"), [(0.05, 0.025), (0.02, 0.01), (0.08, 0.05), (0.1, 0.05), (0.35, 0.05)]
)
def test_a_low_threshold_without_hysteresis_loads(tmp_path: Path, threshold: float, hysteresis: float) -> None:
    """A threshold of 0.05 or below is valid (0 < threshold < 1) and needs no hysteresis written: the default is
    0.05, or half a threshold of 0.05 or less (a threshold above keeps 0.05, as before). It was refused with
    'hysteresis must be smaller than threshold', about a field the rule file did not have."""
    rule = _rule(write_model(tmp_path / "m.json"), threshold=threshold)
    assert rule.hysteresis == pytest.approx(hysteresis)


def test_model_with_a_tampered_feature_list_is_refused(tmp_path: Path) -> None:
    """The feature list must be exactly what the spec produces, or scores would be misaligned."""
    path = write_model(tmp_path / "m.json")
    doc = orjson.loads(path.read_bytes())
    doc["features"][0], doc["features"][1] = doc["features"][1], doc["features"][0]
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(Exception, match="features do not match"):
        load_risk_model(path)


@pytest.mark.parametrize(("field", "value"), [("coef", "NaN"), ("intercept", "Infinity"), ("mean", "-Infinity")])
def test_a_model_holding_nan_or_infinity_is_refused(tmp_path: Path, field: str, value: str) -> None:
    """A model file with NaN or infinity (as Python's json.dump writes them) is refused in one line, never scored."""
    path = write_model(tmp_path / "m.json")
    doc = orjson.loads(path.read_bytes())
    doc[field] = [0.0] * len(doc[field]) if isinstance(doc[field], list) else 0.0
    marker = -12345.5
    if isinstance(doc[field], list):
        doc[field][0] = marker
    else:
        doc[field] = marker
    path.write_bytes(orjson.dumps(doc).replace(b"-12345.5", value.encode()))
    with pytest.raises(
        Exception,
        match=rf"m.json is not a Preempt risk model \({field}(\[0\])?: expected a finite number, not -?(nan|inf)\)",
    ) as info:
        load_risk_model(path)
    assert "\n" not in str(info.value)


def test_scoring_never_imports_scikit_learn() -> None:
    """The worker's modules and the CLI load no numpy or scikit-learn: training alone needs them."""
    import subprocess
    import sys

    code = (
        "import sys, rules.engine, rules.kinds.risk, rules.loader, streams.cli.main, streams.worker.processor; "
        "print(sorted(m for m in ('sklearn', 'numpy', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_account_features_are_read_from_the_records_the_engine_is_bound_to(tmp_path: Path) -> None:
    """A model weighing days to renewal fires in a backtest given the account's record, and not without it."""
    from rules.backtest import run_backtest
    from schemas.account import Account

    # risk = sigmoid(4 · renewal_within_30d − 2): 0.88 with a renewal in 30 days, 0.5 − ε unknown
    model = write_model(tmp_path / "m.json", {"renewal_within_30d": 4.0}, intercept=-2.0)
    rules = RuleSet((_rule(model, threshold=0.8, warmup="1d"),))
    events = [_login(day) for day in range(20)]
    acme = Account(account_id="acme", renewal_date=date(2026, 12, 20), seats=5)  # 27 days after the first login

    def alerts(accounts: dict[str, Account] | None) -> list[tuple[str, float, list[str]]]:
        result = run_backtest(RuleEngine(rules), enumerate(events, start=1), accounts, allowed_lateness=5.0)
        return [(a.account_id, a.evidence.value, a.evidence.reasons) for a in result.alerts]

    (fired,) = alerts({"acme": acme})
    assert fired[0] == "acme"
    assert fired[1] == pytest.approx(0.8808, abs=1e-4)
    assert fired[2] == ["the contract renews within 30 days (25 days from now)"]  # the first tick past the warm-up
    assert alerts(None) == []
    assert alerts({}) == []


def test_the_record_is_read_at_each_tick_and_never_kept_in_the_state(tmp_path: Path) -> None:
    """The engine reads the record as it is when it scores: a record that changes changes the next tick only."""
    from schemas.account import Account

    model = write_model(tmp_path / "m.json", {"renewal_within_30d": 4.0}, intercept=-2.0)
    engine = RuleEngine(RuleSet((_rule(model, threshold=0.8, warmup="1d"),)))
    records: dict[str, Account] = {"acme": Account(account_id="acme", renewal_date=date(2027, 6, 30))}
    engine.bind_accounts(records.get)
    state = engine.new_state()
    engine.on_event(state, _login(0), _login(0).ts)
    assert engine.advance(state, MIDNIGHT + 3 * DAY) == []  # renewal far away
    blob = engine.dumps(state)
    assert b"2027" not in blob
    assert b"renewal" not in blob
    records["acme"] = Account(account_id="acme", renewal_date=date(2026, 12, 10))
    (finding,) = engine.advance(engine.loads(blob), MIDNIGHT + 4 * DAY)
    assert finding.fired_at == MIDNIGHT + 4 * DAY


def test_a_model_of_an_unknown_version_is_one_line_saying_retrain(tmp_path: Path) -> None:
    """A model file from a newer (or older, unsupported) Preempt fails with one line that says to retrain."""
    path = write_model(tmp_path / "m.json")
    doc = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps({**doc, "version": 7}))
    with pytest.raises(
        Exception, match=r"m.json: model version 7 is not one this Preempt reads \(1, 2\); retrain"
    ) as info:
        load_risk_model(path)
    assert "\n" not in str(info.value)
    path.write_bytes(orjson.dumps({**doc, "version": 1}))  # account features need model version 2
    with pytest.raises(Exception, match="come with model version 2; retrain it with preempt train"):
        load_risk_model(path)


def test_a_version_1_model_file_still_scores(tmp_path: Path) -> None:
    """The committed model of version 1 (events only) loads and needs no account records."""
    from tests.unit.rules.risk_support import GOLDEN

    model = load_risk_model(GOLDEN)
    assert (model.doc.version, model.spec.version, model.spec.uses_accounts) == (1, 1, False)
    assert "days_to_renewal" not in model.doc.features


def test_a_reason_from_a_negative_weight_says_which_side_the_account_is_on(tmp_path: Path) -> None:
    """A negative weight on 'enterprise tier' or 'renews within 30 days' makes an account NOT on that tier, or NOT
    renewing soon, riskier: the reason must say 'not on the enterprise tier', never 'tier enterprise' for a
    starter account, nor 'renews within 30 days (45 days from now)'."""
    from rules.backtest import run_backtest
    from rules.risk.features import FeatureSpec
    from schemas.account import Account
    from tests.unit.rules.risk_support import model_doc

    spec = FeatureSpec(SPEC.terms, SPEC.numerics, 3, tiers=("enterprise", "starter"))
    names = spec.names
    weights = {"renewal_within_30d": -2.0, "tier:enterprise": -2.0}
    doc = model_doc(weights, intercept=0.0)
    doc.update(
        feature_spec=spec.to_json(),
        features=names,
        mean=[0.5 if name in weights else 0.0 for name in names],  # half the training accounts were on either side
        scale=[1.0] * len(names),
        coef=[weights.get(name, 0.0) for name in names],
    )
    model = tmp_path / "m.json"
    model.write_bytes(orjson.dumps(doc))
    rules = RuleSet((_rule(model, threshold=0.8, warmup="1d"),))
    starter = Account(
        account_id="acme", tier="starter", renewal_date=date(2027, 1, 7)
    )  # 43 days after the tick that fires
    result = run_backtest(
        RuleEngine(rules),
        enumerate([_login(day) for day in range(4)], start=1),
        {"acme": starter},
        allowed_lateness=5.0,
    )
    (alert,) = result.alerts
    assert sorted(alert.evidence.reasons) == [
        "not on the enterprise tier",
        "the contract does not renew within 30 days (43 days from now)",
    ]


def test_a_model_whose_score_overflows_is_refused(tmp_path: Path) -> None:
    """Finite but huge coefficients (a hand-edited file) scored some accounts NaN (two contributions of +inf and
    -inf): such an account never alerted, and its evidence held infinities. The file is refused at load."""
    path = write_model(tmp_path / "m.json")
    doc = orjson.loads(path.read_bytes())
    doc["coef"] = [1e308] * len(doc["coef"])
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(Exception, match=r"m.json is not a Preempt risk model \(\(file\): .*overflow") as info:
        load_risk_model(path)
    assert "\n" not in str(info.value)
    doc["coef"] = [1.0] * len(doc["coef"])
    doc["calibration"]["a"] = 1e307
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(Exception, match="overflow"):
        load_risk_model(path)


@pytest.mark.parametrize(
    "spec_change",
    [
        {"account": "growth"},
        {"account": ["growth"]},
        {"numerics": "NPS"},
        {"terms": [{"event": "Login", "property": "role", "value": ["admin"]}]},
        {"terms": [{"event": "Login", "property": ["role"], "value": "admin"}]},
        {"terms": "Login"},
    ],
)
def test_a_feature_spec_of_another_shape_is_refused_in_one_line(tmp_path: Path, spec_change: dict[str, Any]) -> None:
    """A hand-edited feature_spec whose parts have the wrong shape: 'account' a string was a traceback
    (AttributeError) in rules check, backtest and the worker; a list as a term's value loaded and never matched."""
    path = write_model(tmp_path / "m.json")
    doc = orjson.loads(path.read_bytes())
    doc["feature_spec"] |= spec_change
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(RiskModelError, match=r"^feature_spec: ") as info:
        load_risk_model(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("spec_change", "missing"),
    [
        ({"terms": [{"property": None, "value": None}]}, "'event'"),
        ({"numerics": [{"event": "NPS"}]}, "'property'"),
    ],
)
def test_a_feature_spec_missing_a_field_names_it(tmp_path: Path, spec_change: dict[str, Any], missing: str) -> None:
    """A hand-edited feature_spec that lost a field names the field as missing: it read "feature_spec: 'event'"."""
    path = write_model(tmp_path / "m.json")
    doc = orjson.loads(path.read_bytes())
    doc["feature_spec"] |= spec_change
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(RiskModelError, match=rf"^feature_spec: {missing} is missing \(edited by hand\?\); make the"):
        load_risk_model(path)


def test_a_feature_spec_of_a_version_this_preempt_does_not_read_says_what_to_do(tmp_path: Path) -> None:
    """A model whose feature spec is of a later version (a newer Preempt's) is one line saying what is wrong
    and what to do, as a model version of its own is ('retrain it'); it only said which versions are read."""
    path = write_model(tmp_path / "m.json")
    doc = orjson.loads(path.read_bytes())
    doc["feature_spec"]["version"] = 9
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(RiskModelError) as info:
        load_risk_model(path)
    assert str(info.value) == (
        "feature_spec: feature spec version 9; this engine reads 1, 2, 3; make the model again with this "
        "Preempt's preempt train"
    )


def test_boolean_terms_are_named_in_json_spelling_and_older_models_still_score(tmp_path: Path) -> None:
    """A term on a boolean property is named ``ok=true`` (as the event's JSON says it), never Python's ``ok=True``;
    a model file trained before, naming it ``ok=False``, still loads, keeps its names and scores the same."""
    from rules.risk.features import FeatureSpec, Term
    from rules.risk.model import RiskModel, RiskModelFile
    from tests.unit.rules.risk_support import model_doc

    spec = FeatureSpec(terms=(Term("Export"), Term("Export", "ok", False), Term("Export", "ok", True)))
    assert [t.label for t in spec.terms] == ["Export", "Export[ok=false]", "Export[ok=true]"]
    assert "count28:Export[ok=false]" in spec.names
    assert not any("False" in name or "True" in name for name in spec.names)
    old_names = [n.replace("ok=false", "ok=False").replace("ok=true", "ok=True") for n in spec.names]
    weights = {"count28:Export[ok=false]": 0.7, "days_since_last_event": 0.2}
    docs = {}
    for label, names in (("new", spec.names), ("old", old_names)):
        doc = model_doc()
        doc["feature_spec"] = spec.to_json()
        doc["features"] = names
        doc["mean"], doc["scale"] = [0.0] * len(names), [1.0] * len(names)
        doc["coef"] = [weights.get(n.replace("False", "false").replace("True", "true"), 0.0) for n in names]
        path = tmp_path / f"{label}.json"
        path.write_bytes(orjson.dumps(doc))
        docs[label] = load_risk_model(path)
    assert docs["old"].doc.features == old_names  # the evidence keeps the file's own names
    state = features.new_state(spec)
    for day in range(3):
        features.observe(
            spec, state, Event(f"e{day}", "Export", "a", 1_790_000_000.0 + day * 86400, "u", {"ok": False})
        )
    vector = features.values(features.compute(spec, state, 1_790_000_000.0 + 5 * 86400))
    assert docs["old"].score(vector) == docs["new"].score(vector)
    assert docs["old"].spec.digest == docs["new"].spec.digest  # the same state layout: a worker's state carries on
    edited = {**model_doc(), "feature_spec": spec.to_json(), "features": [*old_names[:-1], "count28:Export[ok=maybe]"]}
    with pytest.raises(RiskModelError, match="features do not match"):
        RiskModel.from_doc(
            RiskModelFile.model_validate(
                {
                    **edited,
                    "mean": [0.0] * len(old_names),
                    "scale": [1.0] * len(old_names),
                    "coef": [0.0] * len(old_names),
                }
            )
        )


def test_every_bucket_shares_its_keys_and_user_ids() -> None:
    """The state's term keys ("12") and user ids are one string each, shared by every day's bucket of every account
    (a string per bucket and day made an account's 70 days of state several times larger); a user id is written once
    per account, in its user table, and each day lists its users' numbers."""
    from rules.risk.features import FeatureSpec, Term

    spec = FeatureSpec(terms=tuple(Term(f"E{n}") for n in range(12)))
    states = [features.new_state(spec), features.new_state(spec)]
    for day in range(2):
        for state in states:
            user = "".join(["user-", "42"])  # a new string object per event, as decoding makes them
            features.observe(spec, state, Event(f"e{day}{id(state)}", "E11", "a", 1_790_000_000.0 + day * 86400, user))
    buckets = [bucket for state in states for bucket in state["days"]]
    assert all(list(b[2]) == ["11"] and b[3] == [0] for b in buckets)  # a day lists its users by number
    assert all(state["ut"] == {"user-42": 0} for state in states)  # the id is written once, in the table
    assert len({id(next(iter(b[2]))) for b in buckets}) == 1
    assert len({id(next(iter(state["ut"]))) for state in states}) == 1


def _outcome(day: float, name: str) -> Event:
    return Event(f"{name}-{day}", name, "acme", MIDNIGHT + day * DAY + 3600)


def _churn_run(rule: RiskRule, events: list[Event], until_day: int, chopped: bool) -> tuple[list[float], RuleEngine]:
    """The days the rule fired on over ``events`` (the state stored and read back around each, as the worker does)
    then up to ``until_day`` (a day at a time when ``chopped``), and the engine."""
    engine = RuleEngine(RuleSet((rule,)))
    blob = engine.dumps(engine.new_state())
    findings = []
    for event in events:
        state = engine.loads(blob)
        findings += engine.on_event(state, event, event.ts)[1]
        blob = engine.dumps(state)
    state = engine.loads(blob)
    for day in range(1, until_day + 1) if chopped else (until_day,):
        findings += engine.advance(state, MIDNIGHT + day * DAY)
    return [(f.fired_at - MIDNIGHT) / DAY for f in findings], engine


@pytest.mark.parametrize("chopped", [False, True])
def test_no_alert_after_the_accounts_churn_event_until_it_renews(tmp_path: Path, chopped: bool) -> None:
    """After ``Subscription Cancelled`` the account's silence no longer alerts (the customer has gone: counted as
    ``after_churn``); a later ``Subscription Renewed`` makes it a customer again, and its next crossing alerts.
    Before, the cancelled account alerted on day 7, six days after it had left."""
    rule = _rule(write_model(tmp_path / "m.json"), hysteresis=0.2)
    events = [_login(0), _outcome(1, "Subscription Cancelled"), _outcome(20, "Subscription Renewed")]
    # risk = sigmoid(days silent - 5): without the churn, day 7 (6 days after the cancellation) and day 26
    fired, engine = _churn_run(rule, events, 40, chopped)
    assert fired == [26]
    assert engine.suppressed_after_churn == 1


def test_a_crossing_before_the_churn_event_still_alerts(tmp_path: Path) -> None:
    """A tick before the churn event alerts as before (the engine fires the ticks due before each event first):
    the same alerts however the clock is advanced, so the stream and the backtest agree."""
    rule = _rule(write_model(tmp_path / "m.json"), hysteresis=0.2)
    events = [_login(0), _outcome(10, "Subscription Cancelled")]
    assert _churn_run(rule, events, 40, chopped=False)[0] == [6]
    assert _churn_run(rule, events, 40, chopped=True)[0] == [6]


def test_outcome_events_are_configurable_and_can_be_turned_off(tmp_path: Path) -> None:
    """``outcome_events`` names the churn events (as ``preempt evaluate --outcome-event``); ``{}`` alerts after a
    churn as before; a rule whose ``match`` leaves the outcome events out still sees them (not as features)."""
    model = write_model(tmp_path / "m.json")
    cancelled = [_login(0), _outcome(1, "Subscription Cancelled")]
    assert _churn_run(_rule(model, outcome_events={}), cancelled, 20, chopped=False)[0] == [7]
    closed = [_login(0), _outcome(1, "Account Closed")]
    assert _churn_run(_rule(model, outcome_events={"Account Closed": "churned"}), closed, 20, chopped=False)[0] == []
    assert _churn_run(_rule(model), closed, 20, chopped=False)[0] == [7]  # not an outcome name by default
    only_logins = _rule(model, match={"event": "Login"})
    assert _churn_run(only_logins, cancelled, 20, chopped=True)[0] == []  # silent from day 0: would fire on day 6
    with pytest.raises(ValidationError, match="outcome_events"):
        _rule(model, outcome_events={"Account Closed": "gone"})


def test_editing_outcome_events_keeps_the_rules_stored_state(tmp_path: Path) -> None:
    """``outcome_events`` is left out of the state's tag: a risk state stored before the field existed (or before
    its names were edited) is read back, not started afresh (weeks of features)."""
    model = write_model(tmp_path / "m.json")
    before = RuleEngine(RuleSet((_rule(model, outcome_events={}),)))
    state = before.new_state()
    before.on_event(state, _login(0), _login(0).ts)
    after = RuleEngine(RuleSet((_rule(model),)))
    restored = after.loads(before.dumps(state))
    assert restored.rules["risk"].features == state.rules["risk"].features
    assert after.states_restarted == {}
