"""Risk reasons read as sentences for any product's event names: never a model term like ``'X[p=v]' 1 time``."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from rules.kinds.risk import RiskEvaluator
from rules.risk import reasons
from rules.risk.features import ACCOUNT_V3, GENERIC, Explained, FeatureSpec, NumericProp, Term
from schemas.event import Event
from tests.unit.rules.risk_support import model_doc, risk_rule

DAY = 86400.0
MIDNIGHT = 1_795_392_000.0  # 2026-11-23T00:00:00Z

OTHER_PRODUCT = FeatureSpec(
    terms=(
        Term("Invoice Sent"),
        Term("invoice.paid"),
        Term("subscription_cancelled"),
        Term("paymentFailed"),
        Term("請求書送信"),
        Term("Rechnung bezahlt", "zahlung.art", "SEPA"),
        Term("Export Finished", "ok", False),
        Term("Feature Used", "feature", "workflows"),
        Term("API Request", "status", 500),
        Term("Login", "role", None),
        Term("Payment Failed", ("payment", "status"), "card_declined"),
        Term("checkout_step", ("cart", "coupon", "applied"), True),
    ),
    numerics=(
        NumericProp("survey.answered", "nps.score"),
        NumericProp("NPS Submitted", "score"),
        NumericProp("NPS Submitted", ("survey", "score")),
    ),
    tiers=("growth",),
    plans=("annual",),
)
"""Names no simulator writes: dotted, snake_case, camelCase, other scripts, dotted property keys, nested properties,
booleans, and numbers and null as property values."""

MODEL_TERMS = re.compile(r"\[|\]|=|'|\b(rate|count28|since|min28|last):|\b1 times?\b|_")


@pytest.mark.parametrize("item", [Explained(0.5, 1.0, 2.0, 8.0), Explained(0.0, 0.0, 0.0), Explained(3.0, 3.0)])
def test_every_feature_of_another_products_model_reads_as_a_sentence(item: Explained) -> None:
    """Whatever feature the model lists and whatever its numbers, the reason has no label syntax, quotes, feature
    prefixes, underscores or '1 time'."""
    for name, subject in zip(OTHER_PRODUCT.names, OTHER_PRODUCT.subjects, strict=True):
        text = reasons.sentence(name, item, subject)
        assert not MODEL_TERMS.search(text), (name, text)


@pytest.mark.parametrize("name", [*GENERIC, *ACCOUNT_V3])
def test_every_fixed_feature_has_its_own_sentence(name: str) -> None:
    """A feature the engine computes is worded by its own entry in the table, never by the fallback for a feature
    this Preempt does not know ("tenure days: 3"): a new feature needs its sentence."""
    text = reasons.sentence(name, Explained(3.0, 3.0, 6.0, 8.0))
    assert name in reasons._FIXED, name
    assert not text.startswith(f"{name.replace('_', ' ')}:"), text


def test_an_account_too_young_for_a_baseline_says_so() -> None:
    """A young account's ratio features have no baseline: the reason read "activity new against the last 8 weeks
    (3 vs none events a week)"."""
    young = Explained(0.0, 3.0, None)
    assert reasons.sentence("activity_vs_baseline", young) == "3 events a week in the last 14 days (too new to compare)"
    assert reasons.sentence("active_users_vs_baseline", young) == (
        "3 active users in the last 7 days (too new to compare)"
    )


@pytest.mark.parametrize(
    ("term", "count", "text"),
    [
        (Term("NPS Submitted", "score", 7), 1.0, "NPS submitted (score: 7) once in the last 28 days"),
        (Term("invoice.paid"), 2.0, "invoice paid twice in the last 28 days"),
        (Term("subscription_cancelled"), 3.0, "subscription cancelled 3 times in the last 28 days"),
        (Term("paymentFailed"), 0.0, "payment failed not once in the last 28 days"),
        (Term("APIRequest", "status", 500), 4.0, "API request (status: 500) 4 times in the last 28 days"),
        (Term("Export Finished", "ok", False), 1.0, "export finished (ok: no) once in the last 28 days"),
        (Term("Feature Used", "feature", "workflows"), 0.0, "feature used (workflows) not once in the last 28 days"),
        (
            Term("Rechnung bezahlt", "zahlung.art", "SEPA"),
            1.0,
            "rechnung bezahlt (zahlung art: SEPA) once in the last 28 days",
        ),
        (
            Term("Invoice Payment Failed", "reason", "insufficient_funds"),
            1.0,
            "invoice payment failed (reason: insufficient funds) once in the last 28 days",
        ),
        (
            Term("Page Viewed", "path", "/billing/plan_change"),
            1.0,
            "page viewed (path: /billing/plan_change) once in the last 28 days",
        ),
        (Term("請求書送信"), 1.0, "請求書送信 once in the last 28 days"),
        (Term("iOS App Opened"), 1.0, "iOS app opened once in the last 28 days"),
        (Term("Login", "role", None), 1.0, "login (no role) once in the last 28 days"),
        (Term("..."), 1.0, "“...” once in the last 28 days"),
        # a nested property: its path in words, less the leading keys the event's name says
        (
            Term("Payment Failed", ("payment", "status"), "card_declined"),
            2.0,
            "payment failed (status: card declined) twice in the last 28 days",
        ),
        (
            Term("Subscription Changed", ("plan", "tier"), "pro"),
            1.0,
            "subscription changed (plan tier: pro) once in the last 28 days",
        ),
        (Term("Feature Used", ("feature", "name"), "sso"), 1.0, "feature used (name: sso) once in the last 28 days"),
        (
            Term("Feature Used", ("usage", "feature"), "sso"),
            1.0,
            "feature used (usage feature: sso) once in the last 28 days",
        ),
        (
            Term("Payment Failed", ("payment", "retry"), False),
            1.0,
            "payment failed (retry: no) once in the last 28 days",
        ),
        (Term("Payment Failed", ("payment", "failed"), True), 1.0, "payment failed (yes) once in the last 28 days"),
        (Term("Login", ("sso", "_"), "x"), 1.0, "login (sso: x) once in the last 28 days"),
    ],
)
def test_a_count_is_worded_from_the_event_name_and_property(term: Term, count: float, text: str) -> None:
    """'NPS Submitted[score=7]' 1 time in the last 28 days read like a query: now the event's name in words."""
    assert reasons.sentence(f"count28:{term.label}", Explained(0.1, count), term) == text


def test_days_since_reads_as_when_it_last_happened() -> None:
    """``since:Payment Failed`` 2 reads "last payment failed 2 days ago"; never seen, "not once in the last …"."""
    term = Term("Payment Failed")
    assert reasons.sentence("since:Payment Failed", Explained(2.0, 2.0), term) == "last payment failed 2 days ago"
    assert reasons.sentence("since:invoice.paid", Explained(70.0, 70.0, 45.0), Term("invoice.paid")) == (
        "invoice paid not once in the last 45 days"
    )


def test_numeric_properties_read_with_their_event() -> None:
    """``min28:survey.answered.nps.score`` is the survey's NPS score, not a dotted path."""
    numeric = NumericProp("survey.answered", "nps.score")
    assert reasons.sentence("min28:x", Explained(3.0, 3.0), numeric) == (
        "survey answered with nps score as low as 3 in the last 28 days"
    )
    assert reasons.sentence("last:x", Explained(7.0, 7.0), numeric) == "the latest survey answered had nps score 7"
    assert reasons.sentence("min28:x", Explained(None), numeric) == "survey answered: no nps score in the last 28 days"


def test_nested_numeric_properties_read_as_their_path_in_words() -> None:
    """``min28:NPS Submitted.survey.score`` reads "NPS submitted with survey score as low as 3"; ``last:Payment
    Failed.payment.amount`` "the latest payment failed had amount 49" (the name says "payment")."""
    survey = NumericProp("NPS Submitted", ("survey", "score"))
    assert reasons.sentence(f"min28:{survey.label}", Explained(3.0, 3.0), survey) == (
        "NPS submitted with survey score as low as 3 in the last 28 days"
    )
    amount = NumericProp("Payment Failed", ("payment", "amount"))
    assert amount.label == "Payment Failed.payment.amount"
    assert reasons.sentence(f"last:{amount.label}", Explained(49.0, 49.0), amount) == (
        "the latest payment failed had amount 49"
    )


def test_a_long_name_is_cut_to_keep_the_reason_on_one_line() -> None:
    """An 8 KB property value (the event contract's bound) would make a reason a page long."""
    text = reasons.sentence("count28:x", Explained(0.1, 1.0), Term("Tagged", "tag", "x" * 8000))
    assert len(text) < 120
    assert "…" in text


def test_the_rule_words_its_reasons_from_the_models_terms_not_their_labels(tmp_path: Path) -> None:
    """An event name that holds ``[`` and ``=`` (``Seat [beta] Added=1``) cannot be read back out of a label: the
    rule kind hands the term itself to the wording."""
    weird = Term("Seat [beta] Added=1")
    spec = FeatureSpec(terms=(weird,))
    doc = model_doc()
    names = spec.names
    doc.update(
        feature_spec=spec.to_json(),
        features=names,
        mean=[0.0] * len(names),
        scale=[1.0] * len(names),
        coef=[1.0 if name == f"since:{weird.label}" else 0.0 for name in names],
    )
    model = tmp_path / "m.json"
    model.write_bytes(orjson.dumps(doc))
    rule = risk_rule(model)
    evaluator = RiskEvaluator(rule)
    state = evaluator.new_state()
    evaluator.on_event(state, Event("e1", weird.event, "acme", MIDNIGHT + 3600, "u1", {}))
    (finding,) = evaluator.advance_to(state, MIDNIGHT + 8 * DAY, "acme")
    assert finding.evidence["reasons"] == ["last seat [beta] added=1 5 days ago"]
    assert list(finding.evidence["contributions"]) == [f"since:{weird.label}"]
