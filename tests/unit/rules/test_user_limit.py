"""A ``group_by: user`` rule tracks at most ``MAX_USER_KEYS`` users of an account (docs/rules.md, State).

Past it the account's one state record outgrew what Kafka stores and the worker quarantined the whole
account (every rule started afresh, its alerts lost). Now a user new to the rule beyond the bound is not
evaluated by that rule — counted and logged — while its tracked users and the account's other rules go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rules import sketch
from rules.engine import RuleEngine
from rules.kinds import base as kind_base
from rules.kinds.base import MAX_USER_KEYS
from rules.risk.features import MAX_USERS_PER_DAY
from schemas.event import Event
from schemas.observed import Anomaly
from tests.unit.rules.conftest import HOUR, MIN, MONDAY

USERS = MAX_USER_KEYS + 1

# kind → (rule overrides, the event name that makes a user a key, the per-key table of its state)
PER_USER: dict[str, tuple[dict[str, Any], str, str]] = {
    "inactivity": ({"match": {"event": "Login"}}, "Login", "events"),
    "absence": ({}, "Started", "events"),
    "drop": ({}, "Login", "keys"),
    "threshold": ({"min": 1000}, "Error", "keys"),
    "spike": ({"min": 1000}, "Error", "keys"),
    "ratio": ({}, "Call", "keys"),
    "sequence": ({}, "Payment Failed", "keys"),
    "score": ({}, "Login", "keys"),
}


@pytest.fixture
def reported(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Anomaly, str]]:
    """What the kinds and the engine report to ``schemas.observed`` (the worker counts it in its metrics)."""
    seen: list[tuple[Anomaly, str]] = []
    monkeypatch.setattr(kind_base, "report", lambda anomaly, reason="": seen.append((anomaly, reason)))
    return seen


def _users(at: Callable[..., Event], name: str, count: int, start: float = 0.0) -> list[Event]:
    return [at(start + i * 0.01, name, user_id=f"u{i:05d}") for i in range(count)]


@pytest.mark.parametrize("kind", sorted(PER_USER))
def test_a_per_user_rule_tracks_at_most_max_user_keys_users_and_counts_the_rest(
    kind: str, make_rule: Any, make_engine: Any, run: Any, at: Any, reported: list[tuple[Anomaly, str]]
) -> None:
    """The first MAX_USER_KEYS users are kept; the next one's event is counted once, by rule id, not kept."""
    overrides, name, table = PER_USER[kind]
    rule = make_rule(kind, group_by="user", **overrides)
    result = run(make_engine(rule), _users(at, name, USERS), until=MONDAY + USERS * 0.01)  # every event applied
    keys = getattr(result.state.rules[rule.id], table)
    assert len(keys) == MAX_USER_KEYS
    assert f"u{MAX_USER_KEYS:05d}" not in keys
    assert reported == [(Anomaly.USER_NOT_TRACKED, rule.id)]


def test_users_beyond_the_limit_do_not_touch_the_account_level_rules(
    make_rule: Any, make_engine: Any, run: Any, at: Any, reported: list[tuple[Anomaly, str]]
) -> None:
    """An account-level rule over the same events sees every user (one key), whatever the per-user rule does."""
    per_user = make_rule("inactivity", id="quiet-user", group_by="user", match={"event": "Login"})
    per_account = make_rule("inactivity", id="quiet-account", match={"event": "Login"})
    result = run(make_engine(per_user, per_account), _users(at, "Login", USERS), until=MONDAY + USERS * 0.01 + 2 * HOUR)
    fired = [(f.rule_id, f.user_id) for f in result.findings]
    assert fired.count(("quiet-account", None)) == 1
    assert sorted(user for rule_id, user in fired if rule_id == "quiet-user") == [
        f"u{i:05d}" for i in range(MAX_USER_KEYS)
    ]
    assert reported == [(Anomaly.USER_NOT_TRACKED, "quiet-user")]


def test_a_user_that_leaves_makes_room_for_a_new_one(
    make_rule: Any, make_engine: Any, at: Any, reported: list[tuple[Anomaly, str]]
) -> None:
    """Once a tracked user's silence fires (its key is dropped), a user new to the rule is tracked again."""
    rule = make_rule("inactivity", group_by="user", match={"event": "Login"})
    engine = make_engine(rule)
    state = engine.new_state()
    for event in _users(at, "Login", MAX_USER_KEYS):
        engine.on_event(state, event, event.ts)
    late_comer = at(30 * MIN, "Login", user_id="late-comer")
    engine.on_event(state, late_comer, late_comer.ts)
    assert "late-comer" not in state.rules[rule.id].events  # full: not tracked
    back = at(2 * HOUR, "Login", user_id="late-comer")
    findings = engine.on_event(state, back, back.ts)[1]
    assert len(findings) == MAX_USER_KEYS  # every tracked user's silence fired first, and was dropped
    engine.advance(state, back.ts + 1)
    assert list(state.rules[rule.id].events) == ["late-comer"]
    assert reported == [(Anomaly.USER_NOT_TRACKED, rule.id)]


def test_a_silent_score_key_is_forgotten_to_make_room(
    make_rule: Any, make_engine: Any, run: Any, at: Any, reported: list[tuple[Anomaly, str]]
) -> None:
    """A score key never leaves by itself (it keeps its latest values): at the limit, keys with no tick to come
    go to make room for a new user, so a rule full of users gone for good does not refuse every new one."""
    rule = make_rule("score", group_by="user")
    events = _users(at, "Login", MAX_USER_KEYS)
    events.append(at(10 * 86400.0, "Login", user_id="new-user"))  # their events have all left the 2-day window
    result = run(make_engine(rule), events, until=MONDAY + 10 * 86400.0 + 1)
    assert "new-user" in result.state.rules[rule.id].keys
    assert reported == []


def test_a_full_cooldown_table_alerts_without_recording_the_cooldown(
    make_rule: Any, make_engine: Any, run: Any, at: Any, reported: list[tuple[Anomaly, str]]
) -> None:
    """The engine's cooldown table of a per-user rule holds at most MAX_USER_KEYS users in their cooldown: one
    more user's finding still alerts (counted), and its next one within the cooldown alerts again rather than
    being suppressed — more alerts rather than none."""
    rule = make_rule("any", group_by="user", cooldown="1h", match={"event": "NPS"})
    engine: RuleEngine = make_engine(rule)
    events = _users(at, "NPS", USERS)
    events.append(at(USERS * 0.01 + MIN, "NPS", user_id=f"u{MAX_USER_KEYS:05d}"))  # within its cooldown
    events.append(at(USERS * 0.01 + MIN, "NPS", user_id="u00000"))  # a recorded user: suppressed
    result = run(engine, events, until=MONDAY + USERS * 0.01 + MIN + 1)
    assert len(result.findings) == USERS + 1
    assert len(result.state.cooldowns[rule.id]) == MAX_USER_KEYS
    assert engine.suppressed_by_cooldown == 1
    assert reported == [(Anomaly.USER_COOLDOWN_NOT_KEPT, rule.id)] * 2


def test_a_risk_rules_day_of_users_past_its_bound_is_counted(
    make_rule: Any, make_engine: Any, run: Any, at: Any, reported: list[tuple[Anomaly, str]]
) -> None:
    """A day of the risk features listing MAX_USERS_PER_DAY users becomes a sketch day at the next user, counted once
    by rule; it counts every user (the users past the list were left out of the user features before, each counted)."""
    rule = make_rule("risk")
    users = MAX_USERS_PER_DAY + 3
    events = [*_users(at, "Login", users), at(60.0, "Login", user_id="u00000")]
    result = run(make_engine(rule), events, until=MONDAY + 61.0)
    [day] = result.state.rules[rule.id].features["days"]
    assert sketch.estimate(day[3]["s"]) == pytest.approx(users, rel=0.06)
    assert reported == [(Anomaly.RISK_DAY_SKETCHED, rule.id)]


def test_the_log_stays_throttled_once_its_table_of_rules_and_accounts_is_full(
    monkeypatch: pytest.MonkeyPatch, reported: list[tuple[Anomaly, str]]
) -> None:
    """The log is throttled per rule and account by a bounded table; a pair new to the full table counted 1
    on every call, so it logged every event of every untracked user (a log flood once the table filled)."""
    from structlog.testing import capture_logs

    full = {(f"rule-{i}", "acme", Anomaly.USER_NOT_TRACKED): 1 for i in range(10_000)}
    monkeypatch.setattr(kind_base, "_not_tracked", full)
    with capture_logs() as logs:
        for _ in range(100):
            kind_base.user_not_tracked("late-rule", "big-account")
    assert len(reported) == 100  # every one counted
    assert [log["so_far"] for log in logs] == [1, 10, 100]


class _CountedScans(dict[str, Any]):
    """A rule's table of keys that counts the scans over all of it."""

    scans = 0

    def items(self) -> Any:
        _CountedScans.scans += 1
        return super().items()


# kind → (rule overrides, the event name of its users' events)
SWEPT: dict[str, tuple[dict[str, Any], str]] = {
    "threshold": ({"min": 1000, "window": "1h"}, "Error"),
    "spike": ({"min": 1000, "window": "1h"}, "Error"),
    "ratio": ({"window": "1h"}, "Call"),
    "sequence": ({"within": "1h"}, "Payment Failed"),
    "score": ({}, "Login"),  # its keys are forgotten once silent (their events left the 2-day window)
}


@pytest.mark.parametrize("kind", sorted(SWEPT))
def test_a_full_rule_does_not_scan_its_keys_for_every_event_of_an_untracked_user(
    kind: str, make_rule: Any, make_engine: Any, at: Any, reported: list[tuple[Anomaly, str]]
) -> None:
    """At MAX_USER_KEYS, a user the rule does not track has no key: each of its events swept all 2,000 keys
    for stale ones (none are while they are in the window), so with 20,000 users a ratio took 2.5 ms an event
    instead of 6 µs. A sweep that finds none now knows none can be stale before its oldest key's time."""
    overrides, name = SWEPT[kind]
    rule = make_rule(kind, group_by="user", **overrides)
    engine = make_engine(rule)
    state = engine.new_state()
    for event in _users(at, name, MAX_USER_KEYS):
        engine.on_event(state, event, event.ts)
    rule_state = state.rules[rule.id]
    rule_state.keys = _CountedScans(rule_state.keys)
    _CountedScans.scans = 0
    for event in _others(at, name, 500):
        engine.on_event(state, event, event.ts)
    engine.advance(state, MONDAY + 2 * MIN)
    assert _CountedScans.scans <= 1
    assert len(rule_state.keys) == MAX_USER_KEYS
    assert len(reported) == 500


def _others(at: Callable[..., Event], name: str, count: int) -> list[Event]:
    """Events of ``count`` users new to the rule, a minute after the first ones."""
    return [at(MIN + i * 0.01, name, user_id=f"other-{i:05d}") for i in range(count)]


@pytest.mark.parametrize("kind", sorted(SWEPT))
def test_the_keys_a_full_rule_keeps_are_the_same_across_a_restart(
    kind: str, make_rule: Any, make_engine: Any, at: Any
) -> None:
    """The bound a sweep keeps is not stored: a state read back sweeps once and admits the same users as one
    that ran on (the users of the first half-hour leave the window, users new to the rule take their place)."""
    overrides, name = SWEPT[kind]
    rule = make_rule(kind, group_by="user", **overrides)
    engine = make_engine(rule)
    events = [at(i * 1.0, name, user_id=f"u{i:05d}") for i in range(MAX_USER_KEYS)]  # over 33 minutes
    # past the kept windows: a spike keeps the previous one too, a score key is silent after its 2-day window
    later = {"spike": 2 * HOUR, "score": 3 * 86400.0}.get(kind, HOUR) + 60
    events += [at(later + i * 1.0, name, user_id=f"v{i:05d}") for i in range(MAX_USER_KEYS)]
    ran_on = engine.new_state()
    restarted = engine.new_state()
    for position, event in enumerate(events):
        engine.on_event(ran_on, event, event.ts)
        engine.on_event(restarted, event, event.ts)
        if position % 700 == 0:
            data = engine.dumps(restarted)
            assert b"_fresh_from" not in data
            restarted = engine.loads(data)
    assert list(restarted.rules[rule.id].keys) == list(ran_on.rules[rule.id].keys)
    assert sum(key.startswith("v") for key in ran_on.rules[rule.id].keys) > MAX_USER_KEYS // 2


def test_the_counts_by_rule_stay_right_once_the_log_table_is_full(
    monkeypatch: pytest.MonkeyPatch, reported: list[tuple[Anomaly, str]]
) -> None:
    """``at_limit_counts`` (the backtest summary's note, per rule) counts each event under its rule, also once
    the log throttle's table of rule and account pairs is full: before, the pairs past it were summed under ""
    ("(other rules)"), so a backtest of more than 10,000 accounts with sketch days gave the rule a part only."""
    full = {(f"rule-{i}", "acme", Anomaly.USER_NOT_TRACKED): 1 for i in range(10_000)}
    monkeypatch.setattr(kind_base, "_not_tracked", full)
    before = kind_base.at_limit_counts()
    for account in range(5):
        kind_base.user_not_tracked("risk", f"account-{account}", Anomaly.RISK_DAY_SKETCHED)
    after = kind_base.at_limit_counts()
    grew = {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0)}
    assert grew == {(Anomaly.RISK_DAY_SKETCHED, "risk"): 5}
    assert len(reported) == 5


@pytest.mark.parametrize("kind", sorted(PER_USER))
def test_an_event_without_user_id_is_counted_by_the_per_user_rule_it_reaches(
    kind: str, make_rule: Any, make_engine: Any, run: Any, at: Any, reported: list[tuple[Anomaly, str]]
) -> None:
    """A per-user rule ignores an event without ``user_id``; it did so silently, and a rule whose events
    carry the user elsewhere never fired with nothing to say why. Now each is counted by rule id (the
    worker's preempt_user_events_without_user_total, the backtest's note); an account rule counts nothing."""
    overrides, name, table = PER_USER[kind]
    per_user = make_rule(kind, group_by="user", **overrides)
    result = run(make_engine(per_user), [at(0.0, name), at(1.0, name, user_id="u1")], until=MONDAY + 2.0)
    assert list(getattr(result.state.rules[per_user.id], table)) == ["u1"]
    assert reported == [(Anomaly.USER_MISSING, per_user.id)]
    reported.clear()
    per_account = make_rule(kind, **overrides)
    run(make_engine(per_account), [at(0.0, name)], until=MONDAY + 2.0)
    assert reported == []
