"""Inhibitor: Alertmanager inhibit_rules with source/target matchers and equal."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from alerts.routing.config import InhibitRule
from alerts.routing.inhibit import Inhibitor
from schemas.alert import Alert


@pytest.fixture
def inhibitor() -> Inhibitor:
    """A critical composite mutes non-composite alerts of the same account."""
    rule = InhibitRule.model_validate(
        {
            "name": "composite-mutes-components",
            "source_matchers": ['kind="composite"', 'severity="critical"'],
            "target_matchers": ['kind!="composite"'],
            "equal": ["account_id"],
        }
    )
    return Inhibitor([rule])


def test_active_source_inhibits_target_of_same_account(inhibitor: Inhibitor, make_alert: Callable[..., Alert]) -> None:
    """A component alert is inhibited while its account's critical composite is active."""
    composite = make_alert(kind="composite", severity="critical", rule_id="churn-risk")
    rule = inhibitor.inhibited_by(make_alert(), [composite])
    assert rule is not None
    assert rule.name == "composite-mutes-components"


def test_other_account_or_inactive_source_does_not_inhibit(
    inhibitor: Inhibitor, make_alert: Callable[..., Alert]
) -> None:
    """equal: [account_id] confines inhibition to the same account; no source, no inhibition."""
    composite = make_alert(kind="composite", severity="critical", account_id="globex")
    assert inhibitor.inhibited_by(make_alert(), [composite]) is None
    assert inhibitor.inhibited_by(make_alert(), []) is None


def test_source_must_match_source_matchers(inhibitor: Inhibitor, make_alert: Callable[..., Alert]) -> None:
    """A non-critical composite does not inhibit."""
    composite = make_alert(kind="composite", severity="high")
    assert inhibitor.inhibited_by(make_alert(), [composite]) is None


def test_alert_never_inhibits_itself(make_alert: Callable[..., Alert]) -> None:
    """An alert matching both source and target is not muted by itself."""
    rule = InhibitRule.model_validate({"source_matchers": ["severity=high"], "target_matchers": ["severity=high"]})
    alert = make_alert(severity="high")
    assert Inhibitor([rule]).inhibited_by(alert, [alert]) is None


def test_alerts_matching_both_sides_do_not_mute_each_other(make_alert: Callable[..., Alert]) -> None:
    """As in Alertmanager, a source that also matches the target side cannot mute a two-sided target,
    so two such alerts never silence each other; a one-sided source still mutes it."""
    rule = InhibitRule.model_validate(
        {"source_matchers": ["severity=~high|critical"], "target_matchers": ["severity=~high|low"]}
    )
    both, other_both = make_alert(severity="high"), make_alert(severity="high")
    assert Inhibitor([rule]).inhibited_by(both, [other_both]) is None
    assert Inhibitor([rule]).inhibited_by(other_both, [both]) is None
    assert Inhibitor([rule]).inhibited_by(both, [make_alert(severity="critical")]) is not None
    assert Inhibitor([rule]).inhibited_by(make_alert(severity="low"), [other_both]) is not None


def test_missing_equal_label_on_both_counts_as_equal(make_alert: Callable[..., Alert]) -> None:
    """As in Alertmanager, a label absent from both alerts is equal."""
    rule = InhibitRule.model_validate(
        {"source_matchers": ["severity=critical"], "target_matchers": ["severity=low"], "equal": ["region"]}
    )
    source = make_alert(severity="critical", labels={})
    assert Inhibitor([rule]).inhibited_by(make_alert(severity="low", labels={}), [source]) is not None
    assert Inhibitor([rule]).inhibited_by(make_alert(severity="low", labels={"region": "eu"}), [source]) is None
