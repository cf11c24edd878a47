"""``preempt evaluate``: a table or JSON from alerts and outcomes; one clear line for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from schemas.event import format_ts
from streams.cli.main import main

T0 = 1_790_000_000.0
DAY = 86400.0


def _alert(rule: str, account: str, day: float) -> dict[str, object]:
    return {
        "alert_id": f"{rule}-{account}-{day}",
        "rule_id": rule,
        "kind": "any",
        "title": "t",
        "severity": "high",
        "priority": 1,
        "account_id": account,
        "fired_at": format_ts(T0 + day * DAY),
        "account": {"owner": {"name": "Ann"}},
    }


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """An alerts file (two rules) and the same outcomes as an outcomes file and as events."""
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(
        b"".join(
            orjson.dumps(a) + b"\n"
            for a in (_alert("early", "a", 70), _alert("early", "c", 50), _alert("late", "b", 95))
        )
    )
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_bytes(
        b"".join(
            orjson.dumps(o) + b"\n"
            for o in (
                {"account_id": "a", "outcome": "churned", "at": format_ts(T0 + 100 * DAY)},
                {"account_id": "b", "outcome": "churned", "at": format_ts(T0 + 100 * DAY)},
                {"account_id": "c", "outcome": "renewed", "at": format_ts(T0 + 100 * DAY)},
            )
        )
    )
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"".join(
            orjson.dumps(e) + b"\n"
            for e in (
                {"event_id": "1", "event": "Login", "account_id": "a", "timestamp": format_ts(T0)},
                {
                    "event_id": "2",
                    "event": "Subscription Cancelled",
                    "account_id": "a",
                    "timestamp": format_ts(T0 + 100 * DAY),
                },
                {
                    "event_id": "3",
                    "event": "Subscription Cancelled",
                    "account_id": "b",
                    "timestamp": format_ts(T0 + 100 * DAY),
                },
            )
        )
    )
    return {"alerts": alerts, "outcomes": outcomes, "events": events}


def test_table_per_rule_and_total(files: dict[str, Path]) -> None:
    """The table has each rule's precision and recall at the lead, and the total."""
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(files["outcomes"])]
    )
    assert result.exit_code == 0, result.output
    early = next(line for line in result.output.splitlines() if line.startswith("early"))
    assert early.split()[:5] == ["early", "2", "2", "50.0%", "50.0%"]
    assert "2 churned accounts; horizon 60d, lead 14d" in result.output


def test_json_output(files: dict[str, Path]) -> None:
    """--json gives the same figures as data."""
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--alerts",
            str(files["alerts"]),
            "--outcomes",
            str(files["outcomes"]),
            "--json",
            "--lead",
            "7d",
            "--horizon",
            "30d",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert (doc["horizon_days"], doc["lead_days"], doc["churned_accounts"]) == (30, 7, 2)
    late = next(r for r in doc["rules"] if r["rule_id"] == "late")
    assert (late["precision"], late["recall_at_lead"], late["median_lead_days"]) == (1.0, 0.0, 5.0)
    assert doc["all"]["recall_at_lead"] == 0.5


@pytest.mark.parametrize("flag", ["--outcomes", "--outcomes-events"])
def test_outcomes_from_an_events_file(files: dict[str, Path], flag: str) -> None:
    """Outcome events in an events file are read, explicitly or by auto-detection."""
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), flag, str(files["events"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["churned_accounts"] == 2


def test_bad_duration_is_one_line(files: dict[str, Path]) -> None:
    """A bad --horizon is one line naming the option, no traceback."""
    result = CliRunner().invoke(
        main,
        ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(files["outcomes"]), "--horizon", "2 months"],
    )
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "Error: --horizon: '2 months' is not a duration: write '30s', '10m', '1h', '7d', '2w' or ISO 8601 'PT10M' "
        "(months and years are not accepted)"
    ]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--horizon", "0"], "Error: --horizon: '0': a duration must be longer than zero"),
        (["--horizon", "0d"], "Error: --horizon: '0d': a duration must be longer than zero"),
        (
            ["--horizon", "7d"],
            "Error: --lead 14d (the default) is longer than --horizon 7d; a warning must fit the horizon: "
            "give --lead 7d or less",
        ),
        (
            ["--horizon", "7d", "--lead", "10d"],
            "Error: --lead 10d is longer than --horizon 7d; a warning must fit the horizon: give --lead 7d or less",
        ),
    ],
)
def test_a_horizon_of_zero_or_shorter_than_the_lead_says_what_is_wrong(
    files: dict[str, Path], options: list[str], error: str
) -> None:
    """--horizon 0 is a duration of zero (not "not a duration"), and a --horizon shorter than the default --lead
    says that the lead is the default one, which the user did not write."""
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(files["outcomes"]), *options]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [error]


def test_one_event_named_for_two_outcomes_is_one_line(files: dict[str, Path]) -> None:
    """--outcome-event naming one event twice with different outcomes is refused, not settled by the last one."""
    twice = ["--outcome-event", "Subscription Cancelled=churned", "--outcome-event", "Subscription Cancelled=renewed"]
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(files["events"]), *twice]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --outcome-event 'Subscription Cancelled' is named twice, as churned and as renewed: give one outcome"
    ]


def test_alerts_file_that_is_not_alerts_is_one_line(files: dict[str, Path]) -> None:
    """Passing the events file as --alerts names the file and line and says what to give."""
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["events"]), "--outcomes", str(files["outcomes"])]
    )
    assert result.exit_code != 0
    (line,) = result.output.strip().splitlines()
    assert "events.jsonl: line 1: not an alert" in line
    assert "preempt backtest" in line


def test_bad_outcomes_line_is_one_line(files: dict[str, Path], tmp_path: Path) -> None:
    """A broken outcomes file is named with its line."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"account_id": "a", "outcome": "gone", "at": "2026-01-01T00:00:00Z"}\n')
    result = CliRunner().invoke(main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(bad)])
    assert result.exit_code != 0
    (line,) = result.output.strip().splitlines()
    assert "bad.jsonl: line 1: outcome" in line


def test_renamed_outcome_events_written_with_json_escapes_are_read(files: dict[str, Path], tmp_path: Path) -> None:
    """Outcome events whose names Python's json.dumps wrote as \\u escapes still count as outcomes."""
    import json

    events = tmp_path / "escaped.jsonl"
    events.write_text(
        "".join(
            json.dumps(e) + "\n"  # ensure_ascii: "Abonnement r\u00e9sili\u00e9"
            for e in (
                {"event_id": "1", "event": "Login", "account_id": "a", "timestamp": format_ts(T0)},
                {
                    "event_id": "2",
                    "event": "Abonnement résilié",
                    "account_id": "a",
                    "timestamp": format_ts(T0 + 100 * DAY),
                },
                {
                    "event_id": "3",
                    "event": "Vertrag\u00a0gekündigt",
                    "account_id": "b",
                    "timestamp": format_ts(T0 + 99 * DAY),
                },
            )
        )
    )
    assert b"\\u00e9" in events.read_bytes()
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--alerts",
            str(files["alerts"]),
            "--outcomes",
            str(events),
            "--outcome-event",
            "Abonnement résilié=churned",
            "--outcome-event",
            "Vertrag\u00a0gekündigt=churned",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["churned_accounts"] == 2


@pytest.mark.parametrize("lead", ["0d", "0s", "0", "PT0S"])
def test_lead_of_zero_counts_any_warning_before_the_churn(files: dict[str, Path], lead: str) -> None:
    """--lead 0d is accepted and counts every churned account warned within the horizon."""
    result = CliRunner().invoke(
        main,
        ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(files["outcomes"]), "--lead", lead, "--json"],
    )
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert (doc["lead_days"], doc["all"]["recall_at_lead"]) == (0, 1.0)


def test_negative_lead_is_one_line(files: dict[str, Path]) -> None:
    """A negative --lead is refused in one line naming the option."""
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(files["outcomes"]), "--lead", "-1d"]
    )
    assert result.exit_code != 0
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: --lead: '-1d' is not a duration")


def test_events_file_without_outcome_events_says_so(files: dict[str, Path], tmp_path: Path) -> None:
    """An events file whose outcome events have other names gives a note naming --outcome-event, not silence."""
    events = tmp_path / "renamed.jsonl"
    events.write_bytes(
        orjson.dumps({"event_id": "9", "event": "Account Closed", "account_id": "a", "timestamp": format_ts(T0)})
        + b"\n"
    )
    result = CliRunner().invoke(main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(events)])
    assert result.exit_code == 0, result.output
    note = next(line for line in result.stderr.splitlines() if line.startswith("note: no outcomes in"))
    assert "--outcome-event" in note
    assert "Subscription Cancelled" in note
    assert "0 churned accounts" in result.stdout


def test_both_outcome_sources_is_one_line(files: dict[str, Path]) -> None:
    """--outcomes and --outcomes-events together are refused in one line rather than one silently ignored."""
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--alerts",
            str(files["alerts"]),
            "--outcomes",
            str(files["outcomes"]),
            "--outcomes-events",
            str(files["events"]),
        ],
    )
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == ["Error: give either --outcomes or --outcomes-events, not both"]


def test_an_outcomes_file_given_as_outcome_events_is_one_line_saying_so(files: dict[str, Path]) -> None:
    """An outcomes file given to --outcomes-events holds no event: refused in one line naming --outcomes, not read
    as "no outcomes" (every churn silently counted as not churned, a table of 0 % and exit 0)."""
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes-events", str(files["outcomes"])]
    )
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: --outcomes-events {files['outcomes']}: line 1 is an outcome, not an event: "
        "give an outcomes file as --outcomes"
    ]


def test_outcomes_exported_with_a_byte_order_mark_are_read(files: dict[str, Path], tmp_path: Path) -> None:
    """An outcomes file (or events file) starting with a UTF-8 BOM, as CRM exports write, is read like any other."""
    for source in ("outcomes", "events"):
        with_bom = tmp_path / f"bom-{source}.jsonl"
        with_bom.write_bytes(b"\xef\xbb\xbf" + files[source].read_bytes())
        result = CliRunner().invoke(
            main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(with_bom), "--json"]
        )
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout)["churned_accounts"] == 2


def test_an_alert_delivered_twice_counts_once(files: dict[str, Path], tmp_path: Path) -> None:
    """The same alert_id twice (at-least-once delivery read from the topic) is one alert, with a note."""
    twice = tmp_path / "twice.jsonl"
    twice.write_bytes(files["alerts"].read_bytes() * 2)
    once = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(files["outcomes"]), "--json"]
    )
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(twice), "--outcomes", str(files["outcomes"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == orjson.loads(once.stdout)
    assert "note: 3 repeated alerts" in result.stderr


def test_an_empty_alerts_file_is_a_table_with_every_churn_missed(files: dict[str, Path], tmp_path: Path) -> None:
    """A backtest that alerted nothing writes an empty alerts file; evaluating it shows 0% recall, not a traceback."""
    empty = tmp_path / "no-alerts.jsonl"
    empty.write_bytes(b"")
    result = CliRunner().invoke(main, ["evaluate", "--alerts", str(empty), "--outcomes", str(files["outcomes"])])
    assert result.exit_code == 0, result.output
    total = next(line for line in result.output.splitlines() if line.startswith("(all rules)"))
    assert total.split()[2:4] == ["0", "0"]
    assert "0.0%" in total
    assert "2 churned accounts" in result.output
    assert f"note: no alerts in {empty}" in result.stderr  # a rule that never fired, or the wrong file


def test_an_outcome_event_that_is_not_a_valid_event_is_said(files: dict[str, Path], tmp_path: Path) -> None:
    """A 'Subscription Cancelled' line the decoder refuses (no offset, an unknown field, a list as name) is left
    out with a note naming the count and the first line, never silently: a missed churn changes every figure."""
    events = tmp_path / "events.jsonl"
    bad = [
        {"event_id": "4", "event": "Subscription Cancelled", "account_id": "c", "timestamp": "2026-09-01T00:00:00"},
        {"event_id": "5", "event": "Subscription Cancelled", "account_id": "c", "timestamp": format_ts(T0), "x": 1},
        {"event_id": "6", "event": ["Subscription Cancelled"], "account_id": "c", "timestamp": format_ts(T0)},
        {"event_id": "7", "event": "Login", "account_id": "c", "timestamp": "yesterday"},  # not an outcome: no note
    ]
    events.write_bytes(files["events"].read_bytes() + b"".join(orjson.dumps(e) + b"\n" for e in bad))
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(events), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["churned_accounts"] == 2
    (note,) = [line for line in result.stderr.splitlines() if line.startswith("note: 2 outcome events")]
    assert note.startswith(f"note: 2 outcome events in {events} left out as not valid (first: line 4: ")


@pytest.mark.parametrize("fired_at", ["2026-09-01T00:00:00", "yesterday", "2026-02-30T00:00:00Z"])
def test_an_alert_whose_fired_at_is_not_rfc3339_is_one_line(
    files: dict[str, Path], tmp_path: Path, fired_at: str
) -> None:
    """An alert (hand-made, or from another tool) whose fired_at has no offset or is no time is one line naming the
    file, line and field; it was a traceback."""
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(
        files["alerts"].read_bytes() + orjson.dumps({**_alert("x", "a", 1), "fired_at": fired_at}) + b"\n"
    )
    result = CliRunner().invoke(main, ["evaluate", "--alerts", str(alerts), "--outcomes", str(files["outcomes"])])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {alerts}: line 4: fired_at: ")


def test_alerted_accounts_without_an_outcome_are_counted_in_a_note(files: dict[str, Path], tmp_path: Path) -> None:
    """An alerted account the outcomes do not name counts as not churned, and a note says how many there are: ids
    that differ between the two files would otherwise read as a rule that only cries wolf."""
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(files["alerts"].read_bytes() + orjson.dumps(_alert("early", "CRM-0001", 60)) + b"\n")
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(alerts), "--outcomes", str(files["outcomes"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    early = next(r for r in orjson.loads(result.stdout)["rules"] if r["rule_id"] == "early")
    assert (early["alerted_accounts"], early["precision"]) == (3, 0.3333)
    assert result.stderr.splitlines() == [
        f"note: 1 of the 4 alerted accounts have no outcome in {files['outcomes']} and count as not churned "
        "(first: CRM-0001): an outcome not known yet, or account ids that differ between the files"
    ]


def test_alerts_after_the_churn_and_without_an_owner_are_said(files: dict[str, Path], tmp_path: Path) -> None:
    """An alert at or after its account's churn counts in no figure of the table, and one on an unowned account in
    no owner's volume: a note on stderr says how many of each, so nothing is left out without a word."""
    after = _alert("late", "a", 120)  # a churned on day 100
    unowned = {**_alert("early", "c", 60), "account": {"owner": {}}}
    alerts = tmp_path / "more-alerts.jsonl"
    alerts.write_bytes(files["alerts"].read_bytes() + orjson.dumps(after) + b"\n" + orjson.dumps(unowned) + b"\n")
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(alerts), "--outcomes", str(files["outcomes"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert (doc["owners"], doc["all"]["after_churn"], doc["all"]["alerts_without_owner"]) == (1, 1, 1)
    assert "note: 1 of the 5 alerts fired at or after their account's churn" in result.stderr
    assert "note: 1 of the 5 alerts are on accounts without an owner" in result.stderr


def test_json_keys_are_the_documented_ones(files: dict[str, Path]) -> None:
    """--json has exactly the keys docs/prescient.md lists, at the top and per rule (a script reads them)."""
    result = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(files["outcomes"]), "--json"]
    )
    doc = orjson.loads(result.stdout)
    documented = (Path(__file__).parents[4] / "docs" / "prescient.md").read_text()
    rule_keys = {
        "rule_id", "alerts", "alerted_accounts", "true_positive_accounts", "precision", "alert_precision",
        "caught_at_lead", "recall_at_lead", "median_lead_days", "alerts_per_owner_week", "after_churn",
        "alerts_without_owner",
    }  # fmt: skip
    assert set(doc) == {"horizon_days", "lead_days", "churned_accounts", "owners", "weeks", "rules", "all"}
    assert set(doc["all"]) == rule_keys
    assert all(set(rule) == rule_keys for rule in doc["rules"])
    assert all(f"`{key}`" in documented for key in {*doc, *rule_keys})


def test_an_alerts_topic_dumped_with_its_keys_is_one_line_saying_how_to_dump_it(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """The live stream's alerts read out with kafka-console-consumer's print.key ('acme<TAB>{…}') are refused in one
    line naming the key, not with advice to run a backtest; the topic's values alone are read like the backtest's."""
    lines = files["alerts"].read_bytes().splitlines()
    keyed = tmp_path / "topic-with-keys.jsonl"
    keyed.write_bytes(b"".join(orjson.loads(line)["account_id"].encode() + b"\t" + line + b"\n" for line in lines))
    result = CliRunner().invoke(main, ["evaluate", "--alerts", str(keyed), "--outcomes", str(files["outcomes"])])
    assert result.exit_code == 1
    assert "the line starts with a key before the alert: dump the alerts topic's values only" in result.stderr
    assert "Traceback" not in result.output


def test_alerts_and_outcomes_swapped_is_one_line_saying_so(files: dict[str, Path]) -> None:
    """The two files given the wrong way round are named as swapped, whichever is read first."""
    for alerts, outcomes in ((files["outcomes"], files["outcomes"]), (files["alerts"], files["alerts"])):
        result = CliRunner().invoke(main, ["evaluate", "--alerts", str(alerts), "--outcomes", str(outcomes)])
        assert result.exit_code == 1
        assert "--alerts and --outcomes swapped?" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("command", "example"),
    [
        ("evaluate", "preempt evaluate --alerts alerts.jsonl --outcomes outcomes.jsonl --horizon 60d --lead 14d"),
        (
            "train",
            "preempt train --events events.jsonl --accounts accounts.jsonl --outcomes outcomes.jsonl "
            "--output model.json",
        ),
    ],
)
def test_help_shows_the_example_on_one_line(command: str, example: str) -> None:
    """--help keeps each example command whole (it was wrapped mid-command, '--horizon' / '60d' on two lines), so it
    can be copied, and says where the figures are defined."""
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=80)
    assert result.exit_code == 0
    assert any(line.strip() == example for line in result.output.splitlines()), result.output
    assert "docs/prescient.md" in result.output


def test_churns_no_alert_could_warn_of_are_said(files: dict[str, Path], tmp_path: Path) -> None:
    """Outcomes of a longer period than the alerts' (a CRM's export of every year) hold churns before the first
    alert or long after the last: recall counts them as missed, and a note says how many so a low recall is read
    right. The alerts' own period gives no such note."""
    plain = CliRunner().invoke(
        main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(files["outcomes"])]
    )
    assert "churns lie before the first alert" not in plain.stderr
    outcomes = tmp_path / "crm-outcomes.jsonl"
    older = {"account_id": "gone-2024", "outcome": "churned", "at": format_ts(T0 - 400 * DAY)}
    later = {"account_id": "gone-later", "outcome": "churned", "at": format_ts(T0 + 400 * DAY)}
    outcomes.write_bytes(files["outcomes"].read_bytes() + orjson.dumps(older) + b"\n" + orjson.dumps(later) + b"\n")
    result = CliRunner().invoke(main, ["evaluate", "--alerts", str(files["alerts"]), "--outcomes", str(outcomes)])
    assert result.exit_code == 0, result.output
    assert "note: 2 of the 4 churns lie before the first alert or more than --horizon after the last" in result.stderr


def test_owners_are_told_apart_by_email_then_slack_then_name(tmp_path: Path) -> None:
    """Two CSMs with one name but different emails are two owners; one CSM whose name is written two ways (the
    same email) is one; without an email the Slack id decides, and only then the name."""
    owners = [
        {"name": "Alex Kim", "email": "alex.kim@example.com"},
        {"name": "Alex Kim", "email": "alex.kim2@example.com"},  # another Alex Kim
        {"name": "Ann Lee", "email": "ann@example.com"},
        {"name": "Ann  LEE", "email": " Ann@Example.com"},  # the same Ann, spelled otherwise
        {"name": "Bo", "slack": "U123"},
        {"name": "Bo Chen", "slack": "U123"},  # the same Bo
        {"name": "Cy"},
    ]
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(
        b"".join(
            orjson.dumps({**_alert("r", f"acc{i}", 10 + i), "account": {"owner": owner}}) + b"\n"
            for i, owner in enumerate(owners)
        )
    )
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_bytes(orjson.dumps({"account_id": "acc0", "outcome": "churned", "at": format_ts(T0 + 30 * DAY)}))
    result = CliRunner().invoke(main, ["evaluate", "--alerts", str(alerts), "--outcomes", str(outcomes), "--json"])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert doc["owners"] == 5  # Alex Kim ×2, Ann, Bo, Cy
    assert doc["all"]["alerts_per_owner_week"] == pytest.approx(7 / 5)


def test_the_command_module_does_not_import_the_rules_engine() -> None:
    """``preempt evaluate`` with a mistyped path imports the command's module before it can say so: the rules
    engine (0.3 s of CPU) is not among its imports; it decodes outcome events with the decoder alone."""
    code = (
        "import sys, streams.cli.evaluate\nprint([m for m in ('rules.engine', 'rules.backtest') if m in sys.modules])"
    )
    repo = str(Path(__file__).resolve().parents[4])
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": repo}, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
