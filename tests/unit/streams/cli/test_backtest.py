"""``preempt backtest``: alerts JSONL out, a summary with the alert budget, stable reruns."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from schemas.event import format_ts
from streams.cli.main import main
from tests.unit.rules.risk_support import GOLDEN, write_model

MONDAY = 1_795_392_000.0
RULES = """
rules:
  - id: detractor
    kind: any
    title: "{{ account.name }}: NPS {{ evidence.properties.score }}"
    severity: medium
    priority: 2
    match: {event: NPS Submitted, where: {properties.score: {lte: 6}}}
  - id: quiet
    kind: inactivity
    title: "{{ account.name }} went quiet"
    severity: high
    priority: 1
    after: 1d
    match: {}
"""


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Rule, event and account files for a small backtest."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    events = [
        {"event_id": "n1", "event": "NPS Submitted", "account_id": "acme", "timestamp": format_ts(MONDAY),
         "properties": {"score": 3}},
        {"event_id": "l1", "event": "Login", "account_id": "globex", "timestamp": format_ts(MONDAY + 60)},
    ]  # fmt: skip
    events_path = tmp_path / "events.jsonl"
    events_path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\nnot json\n")
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_bytes(orjson.dumps({"account_id": "acme", "name": "Acme", "owner": {"name": "Dana"}}) + b"\n")
    return {"rules": rules, "events": events_path, "accounts": accounts, "out": tmp_path / "alerts.jsonl"}


def _invoke(inputs: dict[str, Path], *extra: str):
    args = ["backtest", "--rules", str(inputs["rules"]), "--events", str(inputs["events"])]
    args += ["--accounts", str(inputs["accounts"]), "--output", str(inputs["out"]), "--allowed-lateness", "0", *extra]
    return CliRunner().invoke(main, args)


def test_backtest_writes_alerts_and_prints_the_budget(inputs):
    """Alerts go to --output one per line; the summary counts per rule, severity and owner-week."""
    result = _invoke(inputs, "--until", "2026-11-25T00:00:00Z")
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(line) for line in inputs["out"].read_bytes().splitlines()]
    assert [(a["rule_id"], a["account_id"]) for a in alerts] == [
        ("detractor", "acme"),
        ("quiet", "acme"),
        ("quiet", "globex"),
    ]
    assert alerts[0]["title"] == "Acme: NPS 3"
    assert "3 alerts" in result.output
    assert "     2  Dana\n       2    2026-W48: detractor 1, quiet 1\n" in result.output
    assert "     1  (no owner)\n       1    2026-W48: quiet 1\n" in result.output
    assert "       3  total\n" in result.output
    assert "line 3: invalid_json" in result.stderr


def test_backtest_rerun_is_byte_identical(inputs):
    """The same inputs produce the same bytes."""
    _invoke(inputs, "--until", "2026-11-25T00:00:00Z")
    first = inputs["out"].read_bytes()
    _invoke(inputs, "--until", "2026-11-25T00:00:00Z")
    assert inputs["out"].read_bytes() == first


def test_backtest_rejects_a_bad_until(inputs):
    """--until must be RFC 3339 with an offset."""
    result = _invoke(inputs, "--until", "yesterday")
    assert result.exit_code == 2
    assert "RFC 3339" in result.output


def test_a_bad_until_names_the_option(inputs):
    """A date without a time is refused with an error line that names --until."""
    result = _invoke(inputs, "--until", "2026-11-25")
    assert result.exit_code == 2
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error == (
        "Error: Invalid value for --until: '2026-11-25' must be an RFC 3339 timestamp with an offset, "
        "e.g. 2026-11-23T06:00:00Z. Try 'preempt backtest -h' for help."
    )  # said "not an RFC 3339 timestamp with an offset" and then the same again in brackets


def test_backtest_with_bad_rules_exits_1(inputs):
    """Invalid rules stop the backtest with the loader's message."""
    inputs["rules"].write_text("id: x\nkind: nope\n")
    result = _invoke(inputs)
    assert result.exit_code == 1
    assert "unknown kind 'nope'" in result.stderr


def test_until_cuts_the_replay_and_says_so(inputs):
    """Events at or after --until are not replayed; the summary says how many were skipped (with one clock,
    reading stops at the first event more than the lateness past --until)."""
    result = _invoke(inputs, "--until", format_ts(MONDAY + 30), "--partitions", "1")
    assert result.exit_code == 0, result.output
    assert (
        "replay cut at --until 2026-11-23T00:00:30.000Z: 0 events at or after it skipped; "
        "stopped reading at line 2, past --until by more than the lateness"
    ) in result.output
    assert "clock advanced to 2026-11-23T00:00:30.000Z" in result.output
    alerts = [orjson.loads(line) for line in inputs["out"].read_bytes().splitlines()]
    assert [a["account_id"] for a in alerts] == ["acme"]  # globex's login came after --until


def test_until_before_the_data_is_refused_in_one_line(inputs):
    """An --until earlier than the first event exits 1 naming both times, and writes no alerts."""
    result = _invoke(inputs, "--until", "2026-01-01T00:00:00Z")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: --until 2026-01-01T00:00:00.000Z is not after the first event (the first event is at "
        "2026-11-23T00:00:00.000Z): nothing would be replayed (events at or after --until are not); give a "
        "later --until, or leave it out to replay the whole file"
    ]
    assert not inputs["out"].exists()


def test_until_at_the_first_event_is_refused_and_says_why(inputs):
    """--until equal to the first event replays nothing either (events at or after it are cut): the line
    does not call it 'before the data'."""
    result = _invoke(inputs, "--until", format_ts(MONDAY))
    assert result.exit_code == 1
    assert "is not after the first event" in result.stderr
    assert "(events at or after --until are not)" in result.stderr


def test_rules_default_to_the_rules_path_setting(inputs, monkeypatch):
    """Without --rules the backtest loads PREEMPT_RULES_PATH."""
    monkeypatch.setenv("PREEMPT_RULES_PATH", str(inputs["rules"]))
    args = ["backtest", "--events", str(inputs["events"]), "--until", "2026-11-25T00:00:00Z"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "detractor" in result.output


def test_rules_default_to_the_default_pack(inputs, monkeypatch):
    """Without --rules or PREEMPT_RULES_PATH the default pack is used."""
    monkeypatch.delenv("PREEMPT_RULES_PATH", raising=False)
    result = CliRunner().invoke(main, ["backtest", "--events", str(inputs["events"])])
    assert result.exit_code == 0, result.output
    assert "2 events accepted" in result.output


def test_budget_flags_owners_over_it_and_exits_3(inputs):
    """--budget N marks owner-weeks over N, names the owners, and exits 3."""
    result = _invoke(inputs, "--until", "2026-11-25T00:00:00Z", "--budget", "1")
    assert result.exit_code == 3, result.output
    assert "       2    2026-W48: detractor 1, quiet 1  OVER BUDGET (1/week)" in result.output
    assert "1 owner-week over the budget of 1 alert a week (1 owner: Dana)" in result.output


def test_budget_not_exceeded_exits_0(inputs):
    """--budget at or above every owner-week passes with exit 0 and reports none over."""
    result = _invoke(inputs, "--until", "2026-11-25T00:00:00Z", "--budget", "2")
    assert result.exit_code == 0, result.output
    assert "0 owner-weeks over the budget of 2 alerts a week" in result.output


def test_negative_allowed_lateness_is_a_usage_error(inputs):
    """--allowed-lateness -5 is refused before anything runs (exit 2, one Error line)."""
    result = _invoke(inputs, "--allowed-lateness", "-5")
    assert result.exit_code == 2
    assert "Error: Invalid value for '--allowed-lateness': give a number, 0 or more (got '-5')" in result.stderr


def test_output_into_a_missing_folder_is_refused_before_the_replay(inputs, tmp_path, monkeypatch):
    """--output into a folder that does not exist fails while parsing options, before the replay."""
    from streams.cli import backtest as backtest_module

    def no_replay(*args, **kwargs):
        raise AssertionError("the replay must not start")

    monkeypatch.setattr(backtest_module, "run_backtest", no_replay)
    args = ["backtest", "--rules", str(inputs["rules"]), "--events", str(inputs["events"])]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "missing" / "alerts.jsonl")])
    assert result.exit_code == 2
    assert f"folder {tmp_path / 'missing'} does not exist; create it first" in result.stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    """A file over the progress threshold shows no bar when stderr is not a terminal (logs stay clean)."""
    from streams.cli import progress as progress_module

    monkeypatch.setattr(progress_module, "PROGRESS_MIN_BYTES", 1)
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"x\n")
    made = []
    monkeypatch.setattr(progress_module, "progress_bar", lambda *a, **k: made.append(k))
    assert list(progress_module.file_progress(path, iter([(1, b"x")]), "events")) == [(1, b"x")]  # type: ignore[list-item]
    assert made == []


def test_a_detractor_in_the_files_last_seconds_is_alerted(tmp_path: Path):
    """With the default 5 s lateness, events within the last seconds of the file are evaluated and alert."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"".join(
            orjson.dumps(
                {"event_id": f"n{i}", "event": "NPS Submitted", "account_id": f"kunde-{i}",
                 "timestamp": format_ts(MONDAY + i), "properties": {"score": 2}}
            ) + b"\n"
            for i in range(3)
        )
    )  # fmt: skip
    out = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(
        main, ["backtest", "--rules", str(rules), "--events", str(events), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"clock advanced to {format_ts(MONDAY + 2)}" in result.stdout
    assert sorted(orjson.loads(line)["account_id"] for line in out.read_bytes().splitlines()) == [
        "kunde-0",
        "kunde-1",
        "kunde-2",
    ]


def test_a_model_with_account_features_without_accounts_gets_a_note(inputs, tmp_path: Path):
    """A risk model that reads account records, backtested without --accounts, is named in a note on stderr."""
    write_model(tmp_path / "with-records.json")
    shutil.copy(GOLDEN, tmp_path / "events-only.json")
    for name, model in (("records", "with-records.json"), ("events-only", "events-only.json")):
        (tmp_path / f"{name}.yaml").write_text(
            f"id: risk-{name}\nkind: risk\ntitle: t\nseverity: high\npriority: 1\nmodel: {model}\nthreshold: 0.5\n"
        )
    base = ["backtest", "--events", str(inputs["events"]), "--allowed-lateness", "0"]
    result = CliRunner().invoke(main, [*base, "--rules", str(tmp_path / "records.yaml")])
    assert result.exit_code == 0, result.output
    assert "note: the model of rule 'risk-records' reads account records" in result.stderr
    with_accounts = CliRunner().invoke(
        main, [*base, "--rules", str(tmp_path / "records.yaml"), "--accounts", str(inputs["accounts"])]
    )
    assert "note:" not in with_accounts.stderr
    events_only = CliRunner().invoke(main, [*base, "--rules", str(tmp_path / "events-only.yaml")])
    assert "note:" not in events_only.stderr


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_an_events_file_without_events_is_one_line_before_the_replay(inputs, content):
    """An empty (or blank) events file is an error, as in events validate and publish, not '0 alerts' and exit 0."""
    inputs["events"].write_bytes(content)
    result = _invoke(inputs)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {inputs['events']}: no events (the file is empty or only blank lines)\n"
    assert not inputs["out"].exists()


def test_an_events_file_with_no_valid_event_is_an_error_after_its_lines(inputs):
    """A file none of whose lines is an event (the accounts file given as --events) lists them, then fails."""
    inputs["events"].write_bytes(inputs["accounts"].read_bytes() * 3)
    result = _invoke(inputs)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "3 invalid event lines skipped:"
    assert lines[1].startswith("  line 1: unknown_field: ")
    assert lines[-1] == (
        f"Error: {inputs['events']}: none of its 3 lines is a valid event (listed above); "
        "check it with `preempt events validate` against `preempt events schema`"
    )


def test_an_accounts_file_without_an_account_is_refused_before_the_replay(inputs):
    """The events file given as --accounts (every line refused) is an error naming unknown fields, not alerts
    silently without owners; an empty accounts file too."""
    inputs["accounts"].write_bytes(inputs["events"].read_bytes())
    result = _invoke(inputs)
    assert result.exit_code == 1
    assert "  line 1: event_id: unknown field (not part of this record; check the spelling, or the file)" in (
        result.stderr
    )
    assert result.stderr.splitlines()[-1] == (
        f"Error: {inputs['accounts']}: no accounts: none of its 3 lines is an account record (listed above); "
        "give a JSONL of account records (`preempt events schema --account`), or leave --accounts out"
    )
    assert "alerts" not in result.stdout

    inputs["accounts"].write_bytes(b"")
    empty = _invoke(inputs)
    assert empty.exit_code == 1
    assert "no accounts: the file is empty or only blank lines" in empty.stderr


def test_an_event_stamped_past_the_allowed_future_skew_is_invalid_as_in_the_stream(inputs):
    """One event from a client whose clock says 2099 is refused (``future_timestamp``), as the stream, ``preempt
    events validate`` and ``preempt publish`` refuse it: accepted, it moved the replay's clock to 2099, so every
    later line of the file was judged late and ignored (the detractor below never alerted) and every deadline
    up to 2099 fired."""
    events = [
        {"event_id": "n1", "event": "NPS Submitted", "account_id": "acme", "timestamp": format_ts(MONDAY),
         "properties": {"score": 3}},
        {"event_id": "f1", "event": "Login", "account_id": "broken-clock", "timestamp": "2099-01-01T00:00:00Z"},
        {"event_id": "n2", "event": "NPS Submitted", "account_id": "acme", "timestamp": format_ts(MONDAY + 120),
         "properties": {"score": 2}},
    ]  # fmt: skip
    inputs["events"].write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    result = _invoke(inputs)
    assert result.exit_code == 0, result.output
    assert "  line 2: future_timestamp: timestamp: timestamp 2099-01-01T00:00:00Z is " in result.stderr
    assert "2 events accepted" in result.stdout
    assert "0 late" in result.stdout
    alerts = [orjson.loads(line) for line in inputs["out"].read_bytes().splitlines()]
    assert [(a["rule_id"], a["fired_at"]) for a in alerts] == [
        ("detractor", format_ts(MONDAY)),
        ("detractor", format_ts(MONDAY + 120)),
    ]


FUTURE = 4_102_444_800.0  # 2100-01-01: after this machine's clock whenever the tests run


def _future_history(inputs: dict[str, Path]) -> None:
    """A simulated history of a quarter that has not come yet: every event is stamped after the clock."""
    events = [
        {"event_id": "n1", "event": "NPS Submitted", "account_id": "acme", "timestamp": format_ts(FUTURE),
         "properties": {"score": 3}},
        {"event_id": "l1", "event": "Login", "account_id": "globex", "timestamp": format_ts(FUTURE + 60)},
    ]  # fmt: skip
    inputs["events"].write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")


def test_a_history_stamped_after_the_clock_is_refused_with_what_to_do(inputs):
    """Every line ``future_timestamp``: the one line says why (the clock, the skew setting) and that --until
    replays such a history, not only "check it against the schema", which it passes."""
    _future_history(inputs)
    result = _invoke(inputs)
    assert result.exit_code == 1, result.output
    assert "  line 1: future_timestamp: timestamp: timestamp 2100-01-01T00:00:00.000Z is " in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"Error: {inputs['events']}: its events are stamped more than 300 s (PREEMPT_MAX_FUTURE_SKEW_SECONDS) "
        "after this machine's clock, so the stream would dead-letter them (listed above); to replay a history "
        "that ends later (a simulated one), give --until the time it ends"
    )
    assert not inputs["out"].exists()


def test_until_after_the_clock_replays_a_history_stamped_after_it(inputs):
    """With --until the history's end is given: events before it are replayed (the future check is against
    --until when it is later than the clock), the same alerts whenever the replay runs; a line past --until
    plus the skew is still ``future_timestamp``, never moving the clock."""
    _future_history(inputs)
    with inputs["events"].open("ab") as out:
        out.write(
            orjson.dumps({"event_id": "x", "event": "Login", "account_id": "acme", "timestamp": "2199-01-01T00:00:00Z"})
        )
        out.write(b"\n")
    result = _invoke(inputs, "--until", format_ts(FUTURE + 2 * 86_400))
    assert result.exit_code == 0, result.output
    skipped = "1 invalid event line skipped:\n  line 3: future_timestamp: timestamp: timestamp 2199-"
    assert result.stderr.startswith(skipped)
    alerts = [orjson.loads(line) for line in inputs["out"].read_bytes().splitlines()]
    assert [(a["rule_id"], a["account_id"], a["fired_at"]) for a in alerts] == [
        ("detractor", "acme", format_ts(FUTURE)),
        ("quiet", "acme", format_ts(FUTURE + 86_400)),
        ("quiet", "globex", format_ts(FUTURE + 60 + 86_400)),
    ]
    assert "3 lines: 2 events accepted" in result.stdout


def _disordered_accounts(inputs: dict[str, Path]) -> None:
    """A detractor of an account on partition 1 of 3 an hour behind one of an account on partition 0:
    the worker (one clock per partition) evaluates it, it is that partition's first event."""
    events = [
        {"event_id": "n1", "event": "NPS Submitted", "account_id": "ACME Corp/EU", "timestamp": format_ts(MONDAY),
         "properties": {"score": 3}},
        {"event_id": "n2", "event": "NPS Submitted", "account_id": "東京スタジオ",
         "timestamp": format_ts(MONDAY - 3600), "properties": {"score": 1}},
    ]  # fmt: skip
    inputs["events"].write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")


def test_events_are_judged_late_per_partition_as_the_worker_judges_them(inputs, monkeypatch):
    """The backtest keeps one clock per partition of PREEMPT_TOPIC_PARTITIONS, as the worker does: an
    account's event an hour behind another partition's events is evaluated (the backtest's one clock
    over the file judged it late, so the stream sent an alert the backtest did not show)."""
    monkeypatch.setenv("PREEMPT_TOPIC_PARTITIONS", "3")
    _disordered_accounts(inputs)
    result = _invoke(inputs, "--until", "2026-11-24T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert "2 events accepted" in result.stdout
    alerts = [orjson.loads(line) for line in inputs["out"].read_bytes().splitlines()]
    assert sorted((a["account_id"], a["fired_at"]) for a in alerts if a["rule_id"] == "detractor") == [
        ("ACME Corp/EU", format_ts(MONDAY)),
        ("東京スタジオ", format_ts(MONDAY - 3600)),
    ]


def test_partitions_1_keeps_one_clock_over_the_file(inputs):
    """--partitions 1: one clock over the whole file (the event an hour behind is late)."""
    _disordered_accounts(inputs)
    result = _invoke(inputs, "--partitions", "1", "--until", "2026-11-24T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert "1 event accepted" in result.stdout
    assert "1 late" in result.stdout


def test_a_partition_count_beyond_any_topic_is_refused_at_once(inputs, monkeypatch):
    """The backtest keeps one clock per partition: --partitions 100000000 (or PREEMPT_TOPIC_PARTITIONS) ran
    for minutes and gigabytes; a count over 100,000 is one line naming the option or the setting."""
    result = _invoke(inputs, "--partitions", "100001")
    assert result.exit_code == 2, result.output
    assert (
        "Error: Invalid value for '--partitions': give a whole number, from 1 to 100000 (got '100001')" in result.stderr
    )
    monkeypatch.setenv("PREEMPT_TOPIC_PARTITIONS", "100001")
    result = _invoke(inputs)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: PREEMPT_TOPIC_PARTITIONS='100001' is not valid: must be at most 100000")


def test_a_model_of_other_event_names_gets_a_note(inputs, tmp_path: Path):
    """A risk model learned from events none of which is in the file (another product's, or names since renamed)
    sees every per-event feature absent and stays silent: a note names the rule and what the model learned from."""
    write_model(tmp_path / "model.json")  # learned from Login, Error and NPS
    (tmp_path / "risk.yaml").write_text(
        "id: churn-risk\nkind: risk\ntitle: t\nseverity: high\npriority: 1\nmodel: model.json\nthreshold: 0.5\n"
    )
    other = tmp_path / "other-product.jsonl"
    other.write_bytes(
        orjson.dumps({"event_id": "i1", "event": "Invoice Sent", "account_id": "acme", "timestamp": format_ts(MONDAY)})
        + b"\n"
    )
    base = ["backtest", "--rules", str(tmp_path / "risk.yaml"), "--allowed-lateness", "0", "--events"]
    result = CliRunner().invoke(main, [*base, str(other)])
    assert result.exit_code == 0, result.output
    assert (
        "note: none of the 3 event names the model of rule 'churn-risk' learned from ('Error', 'Login', 'NPS') "
        f"is in {other}"
    ) in result.stderr
    same_product = CliRunner().invoke(main, [*base, str(inputs["events"])])  # has a Login
    assert same_product.exit_code == 0, same_product.output
    assert "none of the" not in same_product.stderr


def test_the_summary_counts_agree_with_their_nouns(tmp_path: Path) -> None:
    """One event of one account read "1 lines: 1 events accepted … across 1 accounts" and "1 alerts"."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b'{"event_id":"e1","event":"NPS Submitted","account_id":"acme","timestamp":"2026-11-23T06:00:00Z",'
        b'"properties":{"score":2}}\n'
    )
    result = CliRunner().invoke(main, ["backtest", "--events", str(events)], env={"PREEMPT_RULES_PATH": None})
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("1 line: 1 event accepted from "), first
    assert " across 1 account; 0 duplicates, 0 late, 0 invalid" in first
    assert "\n1 alert (0 more suppressed by cooldown)\n" in result.stdout


def test_the_summary_says_how_many_events_a_per_user_rule_at_its_user_limit_did_not_evaluate(tmp_path: Path) -> None:
    """2,100 users log in to one account: a ``group_by: user`` rule tracks 2,000 of them (``MAX_USER_KEYS``), as the
    worker does. Before, the backtest's summary did not say so (only the throttled log lines, 1st, 10th, 100th…),
    so alerts of a big account read as complete; the worker counts the same in a metric."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("    match: {}\n", "    match: {}\n    group_by: user\n"))
    lines = [
        orjson.dumps(
            {"event_id": f"e{u}", "event": "Login", "account_id": "acme", "user_id": f"u{u}",
             "timestamp": format_ts(MONDAY + u)}
        )
        for u in range(2_100)
    ]  # fmt: skip
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_bytes(orjson.dumps({"account_id": "acme", "name": "Acme"}) + b"\n")
    result = _invoke({"rules": rules, "events": events, "accounts": accounts, "out": tmp_path / "alerts.jsonl"})
    assert result.exit_code == 0, result.output
    (note,) = [line for line in result.stderr.splitlines() if "not evaluated" in line]
    assert "100 events" in note
    assert "quiet 100" in note
    assert "2,000 users" in note


def test_events_a_per_user_rule_skipped_for_want_of_a_user_get_a_note(tmp_path: Path):
    """A per-user rule whose events carry no user_id never fires; the summary says how many it skipped, by rule,
    and the worker counts the same events in preempt_user_events_without_user_total."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "id: detractor-user\nkind: any\ntitle: t\nseverity: low\npriority: 1\ngroup_by: user\n"
        "match: {event: NPS Submitted, where: {properties.score: {lte: 6}}}\n"
    )
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"".join(
            orjson.dumps(
                {"event_id": f"n{i}", "event": "NPS Submitted", "account_id": "kunde",
                 "timestamp": format_ts(MONDAY + i), "properties": {"score": score},
                 **({"user_id": "u1"} if i == 3 else {})}
            ) + b"\n"
            for i, score in enumerate((2, 3, 9, 1))
        )
    )  # fmt: skip
    result = CliRunner().invoke(main, ["backtest", "--rules", str(rules), "--events", str(events)])
    assert result.exit_code == 0, result.output
    assert (
        "note: 2 events without user_id were not evaluated by per-user rules (group_by: user), as in the worker "
        "(preempt_user_events_without_user_total): detractor-user 2"
    ) in result.stderr
    assert "1 alert " in result.stdout
