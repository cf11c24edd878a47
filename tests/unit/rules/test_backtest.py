"""The backtest core: one global clock over a JSONL file, invalid lines reported, stable output."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from rules.backtest import alert_budget, alert_line, decode_lines, iso_week, load_accounts, run_backtest
from schemas.errors import BacktestRangeError
from schemas.event import format_ts
from schemas.jsonl import read_file
from tests.unit.rules.conftest import HOUR, MONDAY


@pytest.fixture
def write_jsonl(tmp_path: Path):
    """Factory: ``write_jsonl(name, [dict | str, ...])`` → path; strings are written verbatim."""

    def factory(name: str, rows: list[object]) -> Path:
        path = tmp_path / name
        lines = [row if isinstance(row, str) else orjson.dumps(row).decode() for row in rows]
        path.write_text("\n".join(lines) + "\n")
        return path

    return factory


def _event(event_id: str, offset: float, name: str = "Login", account: str = "acme", **extra: object) -> dict:
    return {
        "event_id": event_id,
        "event": name,
        "account_id": account,
        "timestamp": format_ts(MONDAY + offset),
        **extra,
    }


def _run(engine, path: Path, lateness: float = 0.0, **kwargs):
    return run_backtest(engine, decode_lines(read_file(path)), allowed_lateness=lateness, **kwargs)


def test_invalid_lines_are_reported_with_numbers_and_skipped(make_rule, make_engine, write_jsonl):
    """Broken JSON and contract violations are listed by line; valid lines still count."""
    path = write_jsonl(
        "events.jsonl",
        [_event("e1", 0), "{not json", {"event": "Login"}, "", _event("e2", 10, unknown=1), _event("e3", 20)],
    )
    result = _run(make_engine(make_rule("inactivity")), path)
    assert (result.accepted, result.invalid_count) == (2, 3)
    assert [item.line for item in result.invalid] == [2, 3, 5]
    assert "invalid_json" in result.invalid[0].reason
    assert "missing_field" in result.invalid[1].reason


@pytest.mark.parametrize("lateness", [0.0, 5.0, 60.0])
def test_the_last_events_of_the_file_are_evaluated(make_rule, make_engine, write_jsonl, lateness):
    """Without --until every event of the file is evaluated, the newest too: the clock ends at the newest event."""
    rows = [_event(f"e{i}", i, name="Error") for i in range(3)]  # reaches min 3 on the file's last event
    result = _run(make_engine(make_rule("threshold")), write_jsonl("e.jsonl", rows), lateness=lateness)
    assert [a.fired_at for a in result.alerts] == [format_ts(MONDAY + 2)]
    assert result.final_watermark == MONDAY + 2


def test_deadlines_fire_up_to_the_newest_event_and_no_further(make_rule, make_engine, write_jsonl):
    """A deadline at the newest event's time fires at the end of the file; one after it needs --until."""
    one = _run(
        make_engine(make_rule("inactivity")),
        write_jsonl("a.jsonl", [_event("e1", 0), _event("e2", 3600, account="b")]),
        lateness=5.0,
    )
    assert [(a.account_id, a.fired_at) for a in one.alerts] == [("acme", format_ts(MONDAY + 3600))]
    two = _run(
        make_engine(make_rule("inactivity")),
        write_jsonl("b.jsonl", [_event("e1", 0), _event("e2", 3599, account="b")]),
        lateness=5.0,
    )
    assert two.alerts == []


def test_final_clock_watermark_stands_where_an_event_time_only_stream_would(make_rule, make_engine, write_jsonl):
    """final_clock="watermark" ends at newest − lateness: the events after it are left for a later event."""
    rows = [_event(f"e{i}", i, name="Error") for i in range(3)]
    result = _run(
        make_engine(make_rule("threshold")), write_jsonl("e.jsonl", rows), lateness=5.0, final_clock="watermark"
    )
    assert (result.alerts, result.final_watermark) == ([], MONDAY + 2 - 5.0)


@pytest.mark.parametrize("kind", ["threshold", "ratio", "spike"])
def test_a_hundred_year_window_alerts_with_its_start_in_the_past_century(make_rule, make_engine, write_jsonl, kind):
    """The longest window a rule may have still gives an alert whose window start is a date (no crash)."""
    overrides = {"window": "36500d", "match": {"event": "Error"}}
    overrides |= (
        {"min": 1}
        if kind == "threshold"
        else {"factor": 2}
        if kind == "spike"
        else {"min_ratio": 0.5, "denominator": {}, "min_denominator": 1}
    )
    rows = [_event(f"e{i}", i * 60, name="Error") for i in range(3)]
    result = _run(make_engine(make_rule(kind, **overrides)), write_jsonl("e.jsonl", rows))
    assert result.alerts
    assert result.alerts[0].window.start.startswith("192")


def test_until_fires_pending_deadlines(make_rule, make_engine, write_jsonl):
    """Without --until the clock stops at the last event; with it the silence fires."""
    path = write_jsonl("events.jsonl", [_event("e1", 0), _event("e2", 60)])
    assert _run(make_engine(make_rule("inactivity")), path).alerts == []
    alerts = _run(make_engine(make_rule("inactivity")), path, until=MONDAY + 2 * HOUR).alerts
    assert [(a.rule_id, a.fired_at) for a in alerts] == [("inactivity-rule", format_ts(MONDAY + 60 + HOUR))]
    assert alerts[0].emitted_at == alerts[0].fired_at


def test_out_of_order_within_lateness_and_late_lines(make_rule, make_engine, write_jsonl):
    """Lines out of order within the lateness are fine; lines later than that are counted as late."""
    rows = [
        _event("e1", 100, "Error"),
        _event("e2", 95, "Error"),
        _event("e3", 300, "Error"),
        _event("e4", 50, "Error"),
    ]
    result = _run(make_engine(make_rule("threshold", min=4)), lateness=10, path=write_jsonl("e.jsonl", rows))
    assert (result.accepted, result.late, result.alerts) == (3, 1, [])
    rows.append(_event("e5", 301, "Error"))
    rows.append(_event("e6", 400, "Error"))
    result = _run(make_engine(make_rule("threshold", min=4)), lateness=10, path=write_jsonl("f.jsonl", rows))
    assert [a.fired_at for a in result.alerts] == [format_ts(MONDAY + 301)]


def test_duplicates_are_counted(make_rule, make_engine, write_jsonl):
    """A repeated event id is counted as a duplicate and evaluated once."""
    path = write_jsonl("e.jsonl", [_event("e1", 0, "NPS", properties={"score": 1})] * 2 + [_event("e2", 10)])
    result = _run(make_engine(make_rule("any")), path)
    assert (result.accepted, result.duplicates, len(result.alerts)) == (2, 1, 1)


def test_output_is_byte_identical_and_sorted(make_rule, make_engine, write_jsonl):
    """Two runs over the same file write the same bytes, alerts sorted by time then account."""
    rows = [_event(f"e{i}", i * 10, "NPS", account=acct, properties={"score": 2}) for i, acct in enumerate("bab")]
    path = write_jsonl("e.jsonl", rows)
    first = b"".join(alert_line(a) for a in _run(make_engine(make_rule("any")), path).alerts)
    second = b"".join(alert_line(a) for a in _run(make_engine(make_rule("any")), path).alerts)
    assert first == second
    decoded = [orjson.loads(line) for line in first.splitlines()]
    assert [(d["fired_at"], d["account_id"]) for d in decoded] == sorted(
        (d["fired_at"], d["account_id"]) for d in decoded
    )
    assert {"alert_id", "rule_id", "account_id", "evidence", "window", "playbook"} <= set(decoded[0])


def test_accounts_enrich_alerts_and_feed_the_budget(make_rule, make_engine, write_jsonl):
    """Account records give alerts their owner and tier; the budget counts per owner per ISO week."""
    accounts_path = write_jsonl(
        "accounts.jsonl",
        [
            {"account_id": "acme", "name": "Acme", "tier": "enterprise", "owner": {"name": "Dana"}},
            {"account_id": "bad", "mrr": -5},
        ],
    )
    accounts, invalid = load_accounts(accounts_path)
    assert [item.line for item in invalid] == [2]
    rows = [
        _event("e1", 0, "NPS", properties={"score": 1}),
        _event("e2", 10, "NPS", account="other", properties={"score": 1}),
        _event("e3", 8 * 86400, "NPS", properties={"score": 1}),
        _event("e4", 9 * 86400, "Login"),  # moves the clock past e3 (the clock stops at the newest event)
    ]
    result = _run(make_engine(make_rule("any")), write_jsonl("e.jsonl", rows), accounts=accounts)
    assert result.alerts[0].account.tier == "enterprise"
    assert result.alerts[0].title == "any for Acme"
    budget = alert_budget(result.alerts, accounts)
    assert budget.per_owner_week == {("Dana", "2026-W48"): 1, ("(no owner)", "2026-W48"): 1, ("Dana", "2026-W49"): 1}
    assert budget.per_rule == {"any-rule": 3}
    assert budget.per_severity == {"high": 3}
    assert budget.per_owner_week_rule[("Dana", "2026-W48", "any-rule")] == 1
    assert budget.per_owner() == {"Dana": 2, "(no owner)": 1}
    assert budget.rules_of("Dana", "2026-W49") == [("any-rule", 1)]
    assert budget.over(0) == [("(no owner)", "2026-W48", 1), ("Dana", "2026-W48", 1), ("Dana", "2026-W49", 1)]
    assert budget.over(1) == []


def test_until_skips_events_at_or_after_it_within_the_lateness(make_rule, make_engine, write_jsonl):
    """Events at or after until but within the lateness are skipped and counted; earlier ones still count."""
    rows = [_event("e1", 0), _event("e2", 100), _event("e3", 50)]
    result = _run(make_engine(make_rule("any")), lateness=120, path=write_jsonl("e.jsonl", rows), until=MONDAY + 60)
    assert (result.accepted, result.after_until, result.stopped_at_line) == (2, 1, None)
    assert result.final_watermark == MONDAY + 60


def test_until_stops_reading_once_no_later_event_could_count(make_rule, make_engine, write_jsonl):
    """An event past until by more than the lateness ends the replay: later lines are not read."""
    rows = [_event("e1", 0), _event("e2", 3600), "{broken", _event("e3", 10)]
    result = _run(make_engine(make_rule("any")), lateness=60, path=write_jsonl("e.jsonl", rows), until=MONDAY + 600)
    assert (result.accepted, result.stopped_at_line, result.invalid_count, result.lines) == (1, 2, 0, 2)


def test_until_before_the_data_is_refused(make_rule, make_engine, write_jsonl):
    """An until before the first event raises BacktestRangeError naming both times."""
    path = write_jsonl("e.jsonl", [_event("e1", 0), _event("e2", 60)])
    first = r"not after the first event \(the first event is at 2026-11-23T00:00:00.000Z\)"
    with pytest.raises(BacktestRangeError, match=first):
        _run(make_engine(make_rule("any")), path, until=MONDAY - 86400)


def test_until_before_data_within_the_lateness_is_refused_at_the_end(make_rule, make_engine, write_jsonl):
    """When every event falls at or after until (within the lateness), nothing was replayed: refused."""
    path = write_jsonl("e.jsonl", [_event("e1", 0), _event("e2", 5)])
    with pytest.raises(BacktestRangeError, match="nothing would be replayed"):
        _run(make_engine(make_rule("any")), lateness=60, path=path, until=MONDAY - 1)


@pytest.mark.parametrize("lateness", [0.0, 60.0])
def test_until_at_the_first_event_names_the_first_event_not_a_later_one(make_rule, make_engine, write_jsonl, lateness):
    """An until equal to the first event's time is refused naming that event's time, not the event that ended it."""
    path = write_jsonl("e.jsonl", [_event("e1", 0), _event("e2", 86400)])
    first = r"not after the first event \(the first event is at 2026-11-23T00:00:00.000Z\)"
    with pytest.raises(BacktestRangeError, match=first):
        _run(make_engine(make_rule("any")), lateness=lateness, path=path, until=MONDAY)


def test_iso_week_uses_utc():
    """Sunday late evening UTC is still the same ISO week."""
    assert iso_week("2026-11-29T23:59:59.000Z") == "2026-W48"
    assert iso_week("2026-11-30T00:00:00.000Z") == "2026-W49"


def test_a_duplicate_does_not_move_the_clock_as_in_the_stream(make_rule, make_engine, write_jsonl):
    """A duplicate (an id seen within the dedup horizon) is ignored, and its timestamp with it: a client's
    retry restamped an hour later moved the backtest's clock an hour ahead, so the on-time events after it
    were late, while the stream worker (whose clocks count accepted events only) evaluated them."""
    rows = [
        _event("e1", 0, name="NPS", account="ACME Corp/EU"),
        _event("e1", HOUR, name="NPS", account="ACME Corp/EU"),  # the same event re-sent, restamped
        _event("e2", 10, name="NPS", account="東京スタジオ"),
    ]
    result = _run(make_engine(make_rule("any", match={"event": "NPS"})), write_jsonl("e.jsonl", rows), lateness=5.0)
    assert (result.accepted, result.duplicates, result.late) == (2, 1, 0)
    assert [(a.account_id, a.fired_at) for a in result.alerts] == [
        ("ACME Corp/EU", format_ts(MONDAY)),
        ("東京スタジオ", format_ts(MONDAY + 10)),
    ]
    assert result.last_event_at == MONDAY + 10


def test_until_stops_reading_only_once_every_partition_is_past_it(make_rule, make_engine, write_jsonl):
    """With one clock per partition an event well past --until closes only its own partition: a later
    line of another partition's account before --until is still evaluated (a stream reads it on time);
    the replay stops once every partition is past --until (with one clock: at the first such event)."""
    rows = [
        _event("a1", 0, name="NPS", account="a"),
        _event("a2", 3 * HOUR, name="NPS", account="a"),  # partition 0: past --until by more than the lateness
        _event("b1", 60, name="NPS", account="b"),  # partition 1, before --until: evaluated
        _event("b2", 4 * HOUR, name="NPS", account="b"),  # partition 1 past too: reading stops here
        _event("a3", 120, name="NPS", account="a"),  # not read
    ]
    path = write_jsonl("e.jsonl", rows)
    engine = make_engine(make_rule("any", match={"event": "NPS"}))
    result = _run(
        engine, path, lateness=5.0, until=MONDAY + HOUR, partition_of=lambda a: 0 if a == "a" else 1, partitions=2
    )
    assert [(a.account_id, a.fired_at) for a in result.alerts] == [
        ("a", format_ts(MONDAY)),
        ("b", format_ts(MONDAY + 60)),
    ]
    assert (result.after_until, result.stopped_at_line) == (1, 4)
    single = _run(make_engine(make_rule("any", match={"event": "NPS"})), path, lateness=5.0, until=MONDAY + HOUR)
    assert [a.account_id for a in single.alerts] == ["a"]
    assert single.stopped_at_line == 2


def test_an_alert_too_large_to_send_is_counted_not_written_and_the_rest_go_on(make_rule, make_engine, write_jsonl):
    """A playbook printing 600,000 characters makes an alert Kafka would refuse: the stream dead-letters it, the
    backtest leaves it out and counts it with the reason — and the other accounts' alerts are still there."""
    big = make_rule(
        "threshold",
        id="big-playbook",
        playbook="{% if account.name == 'huge' %}{{ 'x' * 600000 }}{% else %}Call them.{% endif %}",
    )
    rows = [_event(f"e{i}", i, name="Error") for i in range(3)]
    rows += [_event(f"h{i}", i, name="Error", account="huge") for i in range(3)]
    result = _run(make_engine(big), write_jsonl("e.jsonl", rows), lateness=60.0)
    assert [a.account_id for a in result.alerts] == ["acme"]
    assert result.not_built == 1
    assert "big-playbook" in result.not_built_reason
    assert "bytes" in result.not_built_reason


def test_the_budget_tells_owners_apart_by_email_not_by_name(make_rule, make_engine, write_jsonl):
    """Two CSMs with the same name are two budgets (shown with their emails); one CSM written two ways is one."""
    accounts_path = write_jsonl(
        "accounts.jsonl",
        [
            {"account_id": "a", "owner": {"name": "Alex Kim", "email": "alex@one.example"}},
            {"account_id": "b", "owner": {"name": "Alex Kim", "email": "alex@two.example"}},
            {"account_id": "c", "owner": {"name": "Ann Lee", "email": "ann@x.example"}},
            {"account_id": "d", "owner": {"name": "ann lee ", "email": "ANN@x.example"}},
        ],
    )
    accounts, _ = load_accounts(accounts_path)
    rows = [_event(f"e{n}", n, "NPS", account=account, properties={"score": 1}) for n, account in enumerate("abcd")]
    result = _run(make_engine(make_rule("any")), write_jsonl("e.jsonl", rows), accounts=accounts)
    budget = alert_budget(result.alerts, accounts)
    assert budget.per_owner() == {"Alex Kim <alex@one.example>": 1, "Alex Kim <alex@two.example>": 1, "Ann Lee": 2}
    assert budget.over(1) == [("Ann Lee", "2026-W48", 2)]
