"""SilenceSet: active silences mute matching alerts; snoozes can be added at runtime."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from alerts.routing.config import Silence
from alerts.routing.silences import SilenceSet
from schemas.alert import Alert

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _silence(**fields: object) -> Silence:
    base: dict[str, object] = {"ends_at": NOW + timedelta(days=1), "reason": "test"}
    base.update(fields)
    return Silence.model_validate(base)


def test_active_matching_silence_is_returned(make_alert: Callable[..., Alert]) -> None:
    """An account silence mutes that account's alerts and no other account's."""
    silence = _silence(account_id="acme")
    silences = SilenceSet([silence])
    assert silences.silenced_by(make_alert(), NOW.timestamp()) == silence
    assert silences.silenced_by(make_alert(account_id="globex"), NOW.timestamp()) is None


def test_expired_and_future_silences_do_not_mute(make_alert: Callable[..., Alert]) -> None:
    """Outside [starts_at, ends_at) a silence has no effect."""
    silences = SilenceSet(
        [
            _silence(rule_id="error-spike", ends_at=NOW - timedelta(seconds=1)),
            _silence(rule_id="error-spike", starts_at=NOW + timedelta(hours=1)),
        ]
    )
    assert silences.silenced_by(make_alert(), NOW.timestamp()) is None
    assert silences.silenced_by(make_alert(), (NOW + timedelta(hours=2)).timestamp()) is not None


def test_snooze_added_at_runtime_mutes_rule_for_account(make_alert: Callable[..., Alert]) -> None:
    """add() of an account+rule snooze mutes that rule for that account only."""
    silences = SilenceSet()
    silences.add(_silence(id="snooze:acme:error-spike", account_id="acme", rule_id="error-spike", reason="Snoozed 7d"))
    now = NOW.timestamp()
    assert silences.silenced_by(make_alert(), now) is not None
    assert silences.silenced_by(make_alert(rule_id="usage-drop"), now) is None
    assert silences.silenced_by(make_alert(account_id="globex"), now) is None


def test_add_replaces_by_id(make_alert: Callable[..., Alert]) -> None:
    """Adding a silence with an existing id replaces it."""
    silences = SilenceSet([_silence(id="s1", account_id="acme")])
    silences.add(_silence(id="s1", account_id="globex"))
    assert len(silences) == 1
    assert silences.silenced_by(make_alert(), NOW.timestamp()) is None


def test_prune_forgets_expired(make_alert: Callable[..., Alert]) -> None:
    """prune() drops silences that ended, keeps the rest."""
    silences = SilenceSet([_silence(id="old", account_id="a", ends_at=NOW), _silence(id="new", account_id="a")])
    assert silences.prune(NOW.timestamp()) == 1
    assert [s.id for s in silences] == ["new"]


def test_matcher_silence(make_alert: Callable[..., Alert]) -> None:
    """Matcher silences use the same matchers as routes (e.g. all starter-tier usage-drop alerts)."""
    silences = SilenceSet([_silence(matchers=['rule_id="usage-drop"', 'account.tier="starter"'])])
    now = NOW.timestamp()
    assert silences.silenced_by(make_alert(rule_id="usage-drop", account={"tier": "starter"}), now) is not None
    assert silences.silenced_by(make_alert(rule_id="usage-drop"), now) is None
