"""``RuleEngine``: outcomes, the clock, dedup bounds, state codec and alert rendering."""

from __future__ import annotations

import hashlib
import math

import pytest
from structlog.testing import capture_logs

from rules.engine import MAX_ALERT_BYTES, AlertTooLargeError, EventOutcome
from rules.findings import alert_id_for
from rules.state import StateDecodeError
from schemas.account import Account, AccountLinks, Owner
from tests.unit.rules.conftest import HOUR, MONDAY


def test_advance_twice_with_the_same_watermark_yields_nothing_new(make_rule, make_engine, at):
    """Advancing to a watermark already reached is a no-op."""
    engine = make_engine(make_rule("inactivity"))
    state = engine.new_state()
    engine.on_event(state, at(0), MONDAY)
    assert len(engine.advance(state, MONDAY + 2 * HOUR)) == 1
    assert engine.advance(state, MONDAY + 2 * HOUR) == []
    assert engine.advance(state, MONDAY + HOUR) == []


def test_next_wakeup_names_buffered_events_then_deadlines(make_rule, make_engine, at):
    """The wakeup is the oldest buffered event, then the earliest deadline, then None when idle."""
    engine = make_engine(make_rule("inactivity"))
    state = engine.new_state()
    assert engine.next_wakeup(state) is None
    engine.on_event(state, at(0), MONDAY - 10)
    assert engine.next_wakeup(state) == math.nextafter(MONDAY, math.inf)  # applied by a watermark above it
    engine.advance(state, MONDAY + 1)
    assert engine.next_wakeup(state) == MONDAY + HOUR
    engine.advance(state, MONDAY + HOUR)
    assert engine.next_wakeup(state) is None


def test_an_account_advanced_to_a_watermark_is_not_due_at_that_watermark_again(make_rule, make_engine, at):
    """A buffered event at exactly the watermark stays buffered (applied by a watermark above it), so the
    wakeup is past the watermark: a wakeup at it made the worker advance the account again and again."""
    engine = make_engine(make_rule("inactivity"))
    state = engine.new_state()
    engine.on_event(state, at(0), MONDAY - 10)
    assert engine.advance(state, MONDAY) == []
    wakeup = engine.next_wakeup(state)
    assert wakeup is not None
    assert wakeup > MONDAY
    engine.advance(state, wakeup)
    assert engine.next_wakeup(state) == MONDAY + HOUR  # applied: the inactivity deadline is next


def test_late_is_judged_against_the_callers_clock(make_rule, make_engine, at):
    """An event behind the caller's watermark is LATE even if this account was never advanced."""
    engine = make_engine(make_rule("any"))
    outcome, findings = engine.on_event(engine.new_state(), at(0, "NPS", properties={"score": 1}), MONDAY + 1)
    assert (outcome, findings) == (EventOutcome.LATE, [])


def test_dedup_forgets_ids_older_than_the_horizon(make_rule, make_engine, at):
    """Seen ids are kept for the dedup horizon of event time, then dropped (bounded state)."""
    engine = make_engine(make_rule("any"), dedup_horizon=HOUR)
    state = engine.new_state()
    first = at(0)
    engine.on_event(state, first, MONDAY)
    engine.on_event(state, at(2 * HOUR), MONDAY + 2 * HOUR)
    assert first.event_id not in state.seen
    assert engine.on_event(state, first, MONDAY + 2 * HOUR)[0] is EventOutcome.LATE


def test_an_id_reused_after_the_horizon_is_a_new_event_even_with_nothing_in_between(make_rule, make_engine, at):
    """The same event id stamped more than the horizon after its first use is accepted, also when no
    other event of the account came in between (ids are forgotten only as new ones arrive, and the
    old id was still remembered); within the horizon, or at exactly it, it stays a duplicate."""
    engine = make_engine(make_rule("any", match={"event": "Login"}), dedup_horizon=HOUR)
    state = engine.new_state()
    assert engine.on_event(state, at(0, event_id="reused"), MONDAY)[0] is EventOutcome.ACCEPTED
    assert engine.on_event(state, at(HOUR, event_id="reused"), MONDAY + HOUR)[0] is EventOutcome.DUPLICATE
    again = at(2 * HOUR, event_id="reused")
    assert engine.on_event(state, again, MONDAY + 2 * HOUR)[0] is EventOutcome.ACCEPTED
    assert engine.on_event(state, at(2 * HOUR + 1, event_id="reused"), MONDAY + 2 * HOUR)[0] is EventOutcome.DUPLICATE
    assert list(state.seen_order) == list(state.seen) == ["reused"]
    fired = [f.fired_at for f in engine.advance(state, MONDAY + 3 * HOUR)]
    assert fired == [MONDAY + 2 * HOUR]
    restored = engine.loads(engine.dumps(state))
    assert list(restored.seen_order) == ["reused"]


def test_dedup_has_a_hard_cap(make_rule, make_engine, at):
    """No more than ``max_seen_ids`` ids are remembered per account."""
    engine = make_engine(make_rule("any"), max_seen_ids=3)
    state = engine.new_state()
    for i in range(10):
        engine.on_event(state, at(i), MONDAY + i)
    assert len(state.seen) == 3


def test_negative_dedup_horizon_is_refused(make_rule, make_engine):
    """A negative dedup horizon is a caller's bug; the engine refuses it."""
    with pytest.raises(ValueError, match="dedup_horizon"):
        make_engine(make_rule("any"), dedup_horizon=-1)


def test_state_round_trips_through_bytes(make_rule, make_engine, at):
    """dumps/loads keeps buffered events, clock, dedup ids and rule state."""
    engine = make_engine(make_rule("threshold"), make_rule("inactivity"))
    state = engine.new_state()
    for offset in (0, 10, 20):
        engine.on_event(state, at(offset, "Error"), MONDAY - 100 + offset)
    restored = engine.loads(engine.dumps(state))
    assert restored == state
    assert engine.dumps(restored) == engine.dumps(state)


def test_seen_ids_are_written_as_an_object_and_read_in_either_form(make_rule, make_engine, at):
    """Version 2 writes the dedup ids as ``{id: ts}`` in arrival order; a state written with them as
    ``[[id, ts], …]`` (before) reads as the same state, so workers of either form read each other's."""
    import orjson

    engine = make_engine(make_rule("threshold"), make_rule("inactivity"))
    state = engine.new_state()
    for offset in (20, 0, 10):
        engine.on_event(state, at(offset, "Error"), MONDAY - 100 + offset)
    doc = orjson.loads(engine.dumps(state))
    assert isinstance(doc["s"], dict)
    assert list(doc["s"].items()) == list(state.seen.items())
    as_pairs = orjson.dumps({**doc, "s": [[key, ts] for key, ts in doc["s"].items()]})
    restored = engine.loads(as_pairs)
    assert restored == state
    assert list(restored.seen) == list(state.seen)
    assert engine.dumps(restored) == engine.dumps(state)


def test_changed_rule_starts_from_fresh_state(make_rule, make_engine, at):
    """A rule whose definition changed does not inherit state of the old definition."""
    old = make_engine(make_rule("threshold"))
    state = old.new_state()
    old.on_event(state, at(0, "Error"), MONDAY)
    old.advance(state, MONDAY + 1)
    new = make_engine(make_rule("threshold", min=5))
    assert new.loads(old.dumps(state)).rules["threshold-rule"] == new.new_state().rules["threshold-rule"]
    same = make_engine(make_rule("threshold"))
    assert same.loads(old.dumps(state)).rules == state.rules


EDITS_PEOPLE_READ = {
    "title": "Onboarding stalled at {{ account.name }}",
    "description": "a typo fixed",
    "severity": "low",
    "priority": 7,
    "playbook": "Call the admin today.",
    "summary": "no completion within {{ evidence.value }}",
    "labels": {"team": "cs"},
    "cooldown": "2h",
}


@pytest.mark.parametrize("field", sorted(EDITS_PEOPLE_READ))
def test_editing_what_people_read_keeps_the_rules_state(make_rule, make_engine, at, field):
    """A rule whose title, playbook, severity, priority, labels, description, summary or cooldown was edited
    keeps its state: a pending deadline still fires. (Any edit started the rule afresh, so fixing a
    playbook's typo silently dropped every pending absence deadline of every account.)"""
    old = make_engine(make_rule("absence"))
    state = old.new_state()
    old.on_event(state, at(0, "Started"), MONDAY)
    old.advance(state, MONDAY + 1)
    edited = make_engine(make_rule("absence", **{field: EDITS_PEOPLE_READ[field]}))
    restored = edited.loads(old.dumps(state))
    assert restored.rules == state.rules
    assert [f.rule_id for f in edited.advance(restored, MONDAY + 2 * HOUR)] == ["absence-rule"]


def test_state_written_under_the_fingerprint_of_the_whole_rule_is_still_read(make_rule, make_engine, at):
    """States written before the fingerprint left out what people read (the whole rule's JSON) keep
    their rule state after the upgrade as long as the rule is unchanged."""
    import hashlib

    from rules.state import encode_state

    rule = make_rule("absence")
    engine = make_engine(rule)
    state = engine.new_state()
    engine.on_event(state, at(0, "Started"), MONDAY)
    engine.advance(state, MONDAY + 1)
    whole = hashlib.sha256(rule.model_dump_json().encode()).hexdigest()[:16]
    restored = engine.loads(encode_state(state, {rule.id: whole}))
    assert restored.rules == state.rules


def test_unreadable_state_raises_a_clear_error(make_rule, make_engine):
    """Garbage or a future version is a StateDecodeError, not a crash deep inside."""
    engine = make_engine(make_rule("any"))
    with pytest.raises(StateDecodeError, match="unreadable"):
        engine.loads(b"{not json")
    with pytest.raises(StateDecodeError, match="version"):
        engine.loads(b'{"v": 99}')


def test_alert_id_depends_on_rule_key_and_episode_only(make_rule, make_engine, run, at):
    """The same episode seen by two engines at different clock paths has the same alert id."""
    one = run(make_engine(make_rule("absence")), [at(0, "Started")], until=MONDAY + 2 * HOUR).findings
    engine = make_engine(make_rule("absence"))
    state = engine.new_state()
    engine.on_event(state, at(0, "Started"), MONDAY)
    two = engine.advance(state, MONDAY + HOUR) + engine.advance(state, MONDAY + 9 * HOUR)
    assert [f.alert_id for f in one] == [f.alert_id for f in two]
    assert len(one[0].alert_id) == 32


def test_alert_ids_of_keys_holding_the_separator_never_collide():
    """Account ``a|`` with user ``b`` and account ``a`` with user ``|b`` joined to the same text once."""
    ids = {
        alert_id_for("r", "a|", "b", "ep"),
        alert_id_for("r", "a", "|b", "ep"),
        alert_id_for("r", "a\\", "|b", "ep"),
        alert_id_for("r", "a", "\\|b", "ep"),
        alert_id_for("r", "a|b", None, "ep"),
        alert_id_for("r", "a", "b", "ep"),
    }
    assert len(ids) == 6


def test_alert_ids_of_ordinary_keys_are_unchanged_by_the_escaping():
    """Ids already delivered (keys without ``|`` or ``\\``) keep their value: the delivery log dedups by id."""
    expected = hashlib.sha256(b"error-spike|acc-1|u-7|2026-01-05T00:00:00Z").hexdigest()[:32]
    assert alert_id_for("error-spike", "acc-1", "u-7", "2026-01-05T00:00:00Z") == expected


def test_to_alert_refuses_an_alert_over_the_size_kafka_takes(make_rule, make_engine, run, at):
    """Templates may each print a million characters: an alert over MAX_ALERT_BYTES is AlertTooLargeError, which the
    worker dead-letters (alert_build_failed) instead of failing every retry of its batch at send."""
    rule = make_rule("threshold", title="{{ 'T' * 300000 }}", playbook="{{ 'P' * 300000 }}")
    finding = run(make_engine(rule), [at(0, "Error"), at(1, "Error"), at(2, "Error")], until=MONDAY + 10).findings[0]
    with pytest.raises(AlertTooLargeError, match=r"threshold-rule.*bytes"):
        make_engine(rule).to_alert(finding, None, MONDAY + 10)
    small = make_rule("threshold", title="{{ 'T' * 200 }}")
    assert len(make_engine(small).to_alert(finding, None, MONDAY + 10).title) == 200
    assert MAX_ALERT_BYTES < 1_000_000


def test_to_alert_renders_templates_with_the_account(make_rule, make_engine, run, at):
    """Title and playbook see account, evidence, rule and window; the account enriches the alert."""
    rule = make_rule(
        "threshold",
        title="{{ account.name }}: {{ evidence.value | int }} errors ({{ rule.severity }})",
        playbook="Call {{ account.owner.name }} before {{ window.end }}.",
        labels={"team": "support"},
    )
    engine = make_engine(rule)
    finding = run(engine, [at(0, "Error"), at(1, "Error"), at(2, "Error")], until=MONDAY + 10).findings[0]
    account = Account(account_id="acme", name="Acme", tier="enterprise", owner=Owner(name="Dana"),
                      links=AccountLinks(crm="https://crm/acme"))  # fmt: skip
    alert = engine.to_alert(finding, account, emitted_at=MONDAY + 60)
    assert alert.title == "Acme: 3 errors (high)"
    assert alert.playbook == "Call Dana before 2026-11-23T00:00:02.000Z."
    assert (alert.account.tier, alert.account.owner, alert.account.links) == (
        "enterprise",
        {"name": "Dana"},
        {"crm": "https://crm/acme"},
    )
    assert (alert.fired_at, alert.emitted_at) == ("2026-11-23T00:00:02.000Z", "2026-11-23T00:01:00.000Z")
    assert alert.labels == {"team": "support"}
    assert alert.evidence.sample_event_ids == [finding.evidence["sample_event_ids"][i] for i in range(3)]


def test_unknown_account_name_falls_back_to_its_id(make_rule, make_engine, run, at):
    """Without account data the title still reads well."""
    engine = make_engine(make_rule("any", title="{{ account.name }} is unhappy"))
    finding = run(engine, [at(0, "NPS", properties={"score": 0})], until=MONDAY + 1).findings[0]
    assert engine.to_alert(finding, None, MONDAY).title == "acme is unhappy"


def test_a_blank_account_name_falls_back_to_its_id(make_rule, make_engine, run, at):
    """A name of spaces or zero-width characters is no name: the title and the alert's account read as for an
    account without one (it made a title "   is unhappy" and an empty Account field in every message)."""
    engine = make_engine(make_rule("any", title="{{ account.name }} is unhappy"))
    finding = run(engine, [at(0, "NPS", properties={"score": 0})], until=MONDAY + 1).findings[0]
    for blank in ("   ", "\u200b", "\u200b \u2060\t"):
        alert = engine.to_alert(finding, Account(account_id="acme", name=blank, tier="growth"), MONDAY)
        assert alert.title == "acme is unhappy"
        assert (alert.account.name, alert.account.tier) == (None, "growth")


def test_missing_evidence_key_never_crashes_rendering(make_rule, make_engine, run, at):
    """A placeholder whose value is missing at run time renders leniently and is reported: in the evidence
    (which CSMs read) in words — which template, which name is not there — and the exception's class only in
    the log (before, the evidence said "UndefinedError: 'dict object' has no attribute 'nps'")."""
    engine = make_engine(make_rule("any", title="Score {{ evidence.properties.nps }}!"))
    finding = run(engine, [at(0, "NPS", properties={"score": 0})], until=MONDAY + 1).findings[0]
    with capture_logs() as logs:
        alert = engine.to_alert(finding, None, MONDAY)
    assert alert.title == "Score !"
    said = (alert.evidence.model_extra or {})["template_error"]
    assert said.startswith("the rule's title template names 'nps', which is not there"), said
    assert "Error" not in said
    assert "dict object" not in said
    (line,) = [e for e in logs if e["log_level"] == "warning"]
    assert (line["field"], line["error"]) == ("title", "UndefinedError: 'dict object' has no attribute 'nps'")


def test_disabled_rules_are_not_evaluated(make_rule, make_engine, run, at):
    """``enabled: false`` loads but never fires."""
    engine = make_engine(make_rule("any", enabled=False))
    assert run(engine, [at(0, "NPS", properties={"score": 0})], until=MONDAY + 1).fired == []


def test_long_event_ids_are_remembered_by_a_digest_and_still_deduplicated(make_rule, make_engine, at):
    """An id over 64 characters costs a fixed 33 characters of state and a re-sent copy is still a duplicate."""
    from rules.state import SEEN_ID_CHARS

    engine = make_engine(make_rule("any"))
    state = engine.new_state()
    event = at(0, event_id="x" * 256)
    assert engine.on_event(state, event, MONDAY)[0] is EventOutcome.ACCEPTED
    assert all(len(key) <= SEEN_ID_CHARS for key in state.seen)
    reloaded = engine.loads(engine.dumps(state))
    assert engine.on_event(reloaded, event, MONDAY)[0] is EventOutcome.DUPLICATE


def test_the_default_dedup_cap_keeps_a_busy_accounts_state_small(make_rule, make_engine, at):
    """At the default cap (5,000 ids of 32 hex characters) the encoded state stays far below 1 MB."""
    from rules.state import DEFAULT_MAX_SEEN_IDS

    engine = make_engine(make_rule("any"))
    state = engine.new_state()
    for i in range(DEFAULT_MAX_SEEN_IDS + 500):
        engine.on_event(state, at(i, event_id=f"{i:032x}"), MONDAY + i)
    assert len(state.seen) == DEFAULT_MAX_SEEN_IDS
    assert len(engine.dumps(state)) < 400_000


def test_bound_buffer_applies_the_oldest_buffered_events_once_they_outgrow_the_bound(make_rule, make_engine, at):
    """A burst the watermark has not passed yet, over the byte bound: its oldest events are applied at
    once (the threshold they reach fires), the rest fit in half the bound, and a later event older
    than the applied ones is late for this account."""
    engine = make_engine(make_rule("threshold", match={"event": "API Error"}, window="1h", measure="count", min=50))
    state = engine.new_state()
    for i in range(400):
        engine.on_event(state, at(i * 0.01, "API Error", properties={"status": 503, "path": "/v1/sync"}), MONDAY - 5)
    applied, size, findings = engine.bound_buffer(state, 1_000_000)
    assert (applied, findings, len(state.buffer)) == (0, [], 400)  # within the bound
    assert size > 20_000
    applied, remaining, findings = engine.bound_buffer(state, 20_000)
    assert applied > 50
    assert applied + len(state.buffer) == 400
    assert 0 < remaining <= 10_000
    assert [f.rule_id for f in findings] == ["threshold-rule"]
    assert engine.bound_buffer(state, 20_000)[0] == 0  # within the bound now: nothing more applied
    assert engine.on_event(state, at(0.005, "API Error"), MONDAY - 5)[0] is EventOutcome.LATE


def test_bound_buffer_applies_events_of_one_timestamp_together(make_rule, make_engine, at):
    """Events sharing a timestamp are applied all or none (their order is by event id below a watermark)."""
    engine = make_engine(make_rule("any", match={"event": "API Error"}, cooldown="1s"))
    state = engine.new_state()
    for _ in range(300):
        engine.on_event(state, at(1.0, "API Error"), MONDAY - 5)
    applied, remaining, findings = engine.bound_buffer(state, 10_000)
    assert (applied, remaining, len(state.buffer)) == (300, 0, 0)
    assert len(findings) == 1  # one finding: the cooldown holds the other 299 back
    # A later event of that same instant is still accepted (the account's clock stands at it).
    assert engine.on_event(state, at(1.0, "API Error"), MONDAY - 5)[0] is EventOutcome.ACCEPTED
    assert engine.on_event(state, at(0.5, "API Error"), MONDAY - 5)[0] is EventOutcome.LATE


def test_bound_buffer_changes_no_finding_for_events_that_arrive_in_order(at):
    """A flood of one account in time order gives the default pack's same findings (same alert ids)
    whether or not its buffer is bounded along the way (stream and backtest agree for it)."""
    from pathlib import Path

    from rules.engine import RuleEngine
    from rules.loader import load_rules

    engine = RuleEngine(load_rules(Path(__file__).resolve().parents[3] / "rules" / "packs" / "default"))
    names = ["API Request", "API Request", "Login", "Report Exported"]
    events = [
        at(i / 300, names[i % 4], user_id=f"u{i % 5}", properties={"status": (200, 503, 404)[i % 3], "role": "admin"})
        for i in range(6000)
    ]

    applied_early = []

    def findings(bounded: bool) -> list[tuple[str, str]]:
        state, out = engine.new_state(), []
        for i, event in enumerate(events):
            out += engine.on_event(state, event, event.ts - 5.0)[1]
            if bounded and i % 250 == 0:
                applied, _, found = engine.bound_buffer(state, 8_000)
                applied_early.append(applied)
                out += found
        out += engine.advance(state, events[-1].ts + 30 * 86400)
        return sorted((f.rule_id, f.alert_id) for f in out)

    unbounded = findings(bounded=False)
    assert unbounded
    assert findings(bounded=True) == unbounded
    assert sum(applied_early) > 1000  # the bound did apply events early
