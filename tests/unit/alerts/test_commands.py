"""`preempt routes check` and `preempt routes test`, through click's runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from schemas.alert import Alert
from streams.cli.main import main

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "deploy" / "routes.example.yaml"


@pytest.fixture
def alert_file(tmp_path: Path, make_alert: Callable[..., Alert]) -> Callable[..., Path]:
    """Factory: write an alert JSON file and return its path."""

    def factory(**overrides: object) -> Path:
        path = tmp_path / "alert.json"
        path.write_text(make_alert(**overrides).model_dump_json())
        return path

    return factory


def test_check_prints_summary_for_a_valid_file() -> None:
    """check exits 0 and summarises receivers, the tree, inhibit rules, silences and quiet hours."""
    result = CliRunner().invoke(main, ["routes", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert f"{EXAMPLE}: OK" in result.output
    assert "csm-owner: 1 slack, 1 email" in result.output
    assert "- errors-to-support  receiver=support group_by=[account_id,rule_id] continue" in result.output
    assert "quiet hours: 20:00–08:00, weekends" in result.output


def test_check_fails_with_file_and_field(tmp_path: Path) -> None:
    """check exits 1 and prints the error naming the file and field."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers:\n  - name: a\nroute:\n  receiver: nope\n")
    result = CliRunner().invoke(main, ["routes", "check", str(bad)])
    assert result.exit_code == 1
    assert f"Error: {bad}: route.receiver: unknown receiver 'nope'" in result.output


def test_test_prints_receivers_and_why(alert_file: Callable[..., Path]) -> None:
    """test lists the receivers in order with the route path that reached each."""
    path = alert_file(severity="critical", labels={"team": "support"})
    result = CliRunner().invoke(
        main, ["routes", "test", str(EXAMPLE), "--alert", str(path), "--now", "2026-11-24T10:00:00+00:00"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "cs-leads,support,csm-owner"
    assert "cs-leads: via root → enterprise-critical-to-leads" in lines[1]
    assert "support: via root → errors-to-support; group_by=[account_id,rule_id]" in lines[2]
    assert "quiet hours" not in result.output


def test_test_reports_quiet_hours_and_silences(alert_file: Callable[..., Path]) -> None:
    """At 21:00 in the owner's zone a high alert is deferred (until when, in that zone); a silence says by what."""
    path = alert_file(account_id="globex", severity="high")
    result = CliRunner().invoke(
        main, ["routes", "test", str(EXAMPLE), "--alert", str(path), "--now", "2026-11-27T21:00:00+01:00"]
    )
    assert result.exit_code == 0, result.output
    assert "silenced by" in result.output
    assert "Planned migration weekend" in result.output
    assert "quiet hours: deferred until 2026-11-30T08:00:00+01:00 (Mon 30 Nov 2026, 08:00 CET)" in result.output


def test_verify_receivers_mismatch_exits_1(alert_file: Callable[..., Path]) -> None:
    """--verify-receivers fails when the alert reaches different receivers."""
    path = alert_file(labels={})
    ok = CliRunner().invoke(
        main, ["routes", "test", str(EXAMPLE), "--alert", str(path), "--verify-receivers", "csm-owner"]
    )
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(
        main, ["routes", "test", str(EXAMPLE), "--alert", str(path), "--verify-receivers", "billing"]
    )
    assert bad.exit_code == 1
    assert "expected receivers billing, got csm-owner" in bad.output
    none = CliRunner().invoke(main, ["routes", "test", str(EXAMPLE), "--alert", str(path), "--verify-receivers", ""])
    assert none.exit_code == 1
    assert "Error: expected receivers (none), got csm-owner" in none.output


def test_invalid_alert_json_is_reported(tmp_path: Path) -> None:
    """An alert file that is not a valid alert exits 1 with the reason."""
    path = tmp_path / "alert.json"
    path.write_text(json.dumps({"alert_id": "x"}))
    result = CliRunner().invoke(main, ["routes", "test", str(EXAMPLE), "--alert", str(path)])
    assert result.exit_code == 1
    assert "rule_id" in result.output


def test_test_takes_an_alert_out_of_a_backtest_jsonl(tmp_path: Path, make_alert: Callable[..., Alert]) -> None:
    """--alert may be a backtest's JSONL: --index N or --alert-id ID picks the alert; without either,
    several alerts are one line asking for a choice."""
    alerts = [make_alert(labels={}), make_alert(severity="critical", labels={"team": "support"})]
    path = tmp_path / "alerts.jsonl"
    path.write_text("".join(a.model_dump_json() + "\n" for a in alerts))
    by_index = CliRunner().invoke(main, ["routes", "test", str(EXAMPLE), "--alert", str(path), "--index", "2"])
    assert by_index.exit_code == 0, by_index.output
    assert by_index.output.splitlines()[0] == "cs-leads,support,csm-owner"
    by_id = CliRunner().invoke(
        main, ["routes", "test", str(EXAMPLE), "--alert", str(path), "--alert-id", alerts[0].alert_id]
    )
    assert by_id.exit_code == 0, by_id.output
    assert by_id.output.splitlines()[0] == "csm-owner"
    neither = CliRunner().invoke(main, ["routes", "test", str(EXAMPLE), "--alert", str(path)])
    assert neither.exit_code == 1
    assert neither.output == f"Error: {path}: 2 alerts; choose one with --alert-id ID or --index N (1–2)\n"


def test_test_reports_an_invalid_alert_and_a_bad_now_in_one_line_each(tmp_path: Path) -> None:
    """An alert missing its fields is one line naming the first and the count; a --now that is not
    RFC 3339 or has no zone is blamed on --now, not on the alert file."""
    path = tmp_path / "alert.json"
    path.write_text("{}")
    invalid = CliRunner().invoke(main, ["routes", "test", str(EXAMPLE), "--alert", str(path)])
    assert invalid.exit_code == 1
    assert invalid.output == f"Error: {path}: not an alert (alert_id: required (and 7 more problems))\n"
    for now, why in (("garbage", "is not an RFC 3339 time"), ("2026-11-27T21:00:00", "has no timezone")):
        result = CliRunner().invoke(main, ["routes", "test", str(EXAMPLE), "--alert", str(path), "--now", now])
        assert result.exit_code == 2
        assert f"Invalid value for '--now': '{now}' {why}" in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("now", "why"),
    [
        ("0001-01-01T00:00:00+01:00", "must lie between 1970-01-01T00:00:00Z and 9999-12-24T00:00:00Z"),
        ("1900-01-01T00:00:00Z", "must lie between 1970-01-01T00:00:00Z and 9999-12-24T00:00:00Z"),
        ("9999-12-31T23:59:59Z", "must lie between 1970-01-01T00:00:00Z and 9999-12-24T00:00:00Z"),
        ("2026-11-27", "is not an RFC 3339 time; write e.g. 2026-11-27T21:00:00+01:00"),
    ],
)
def test_a_now_outside_the_calendar_is_one_line_not_a_traceback(alert_file: Callable[..., Path], now: str, why: str):
    """A --now the quiet hours cannot look a week past (year 1 in a zone ahead of UTC, the last days of 9999) was
    a ValueError/OverflowError traceback; a date without a time was told to add a zone to the date."""
    path = alert_file()
    result = CliRunner().invoke(main, ["routes", "test", str(EXAMPLE), "--alert", str(path), "--now", now])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--now': '{now}' {why}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_test_lists_a_receiver_reached_twice_once(tmp_path: Path, alert_file: Callable[..., Path]) -> None:
    """A receiver reached by two routes through continue is listed once, as the notifier sends it once."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "receivers: [{name: owner}, {name: leads}]\n"
        "route:\n  receiver: owner\n  routes:\n"
        "    - {name: first, matchers: ['severity=\"critical\"'], receiver: owner, continue: true}\n"
        "    - {name: second, matchers: ['severity=\"critical\"'], receiver: leads, continue: true}\n"
        "    - {name: third, receiver: owner}\n"
    )
    result = CliRunner().invoke(
        main,
        [
            "routes",
            "test",
            str(routes),
            "--alert",
            str(alert_file(severity="critical")),
            "--verify-receivers",
            "owner,leads",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "owner,leads"
    assert lines[3] == "  owner: also via root → third (not sent twice: the first route's grouping)"


def test_check_notes_a_bare_name_spelled_like_an_account_field(tmp_path: Path) -> None:
    """'tier="enterprise"' loads (a bare name is a label, as in Alertmanager) but check says it reads the
    label and that the account's tier is account.tier; Alertmanager's owner="team-A" gets no note."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        "receivers: [{name: a}, {name: b}]\n"
        "route:\n  receiver: a\n  routes: [{matchers: ['tier=\"enterprise\"', 'owner=\"team-A\"'], receiver: b}]\n"
    )
    result = CliRunner().invoke(main, ["routes", "check", str(path)])
    assert result.exit_code == 0
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: route.routes[0].matchers: 'tier' reads the label tier (labels.tier); the account's tier is account.tier"
    ]


def test_check_notes_routes_no_alert_can_reach(tmp_path: Path) -> None:
    """A catch-all route (no matchers, no continue) placed before its siblings takes every alert that gets there,
    as in Alertmanager, so the routes after it never match: the file loads and routes as written, and check says
    which routes are unreachable and why (a common slip when a default route is written first). A sibling after a
    catch-all with continue, or after a route with matchers, is reachable and gets no note."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        "receivers: [{name: a}, {name: b}, {name: c}]\n"
        "route:\n  receiver: a\n  routes:\n"
        "    - {matchers: ['severity=\"critical\"'], receiver: b, routes: [{receiver: c}, {receiver: b}]}\n"
        "    - {receiver: b, continue: true}\n"
        "    - {name: default, receiver: a}\n"
        "    - {matchers: ['labels.team=\"support\"'], receiver: c, routes: [{receiver: c}, {receiver: b}]}\n"
        "    - {name: billing, receiver: c}\n"
    )
    result = CliRunner().invoke(main, ["routes", "check", str(path)])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert notes == [  # routes[3]'s own children are not named: routes[3] is never reached
        "note: route.routes[0].routes[1]: never reached: route.routes[0].routes[0] has no matchers and no continue, "
        "so it takes every alert that gets past the routes before it",
        "note: route.routes[3]: never reached: route.routes[2] (default) has no matchers and no continue, so it "
        "takes every alert that gets past the routes before it",
        "note: route.routes[4] (billing): never reached: route.routes[2] (default) has no matchers and no continue, "
        "so it takes every alert that gets past the routes before it",
    ]


def test_backtracking_regexes_load_and_route_at_once(tmp_path: Path, alert_file: Callable[..., Path]) -> None:
    """Regexes that backtracked for minutes in Python's re (in a route, an inhibit rule and a silence) pass
    check, and test routes an alert whose value is their worst case at once: matching is RE2's."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "receivers: [{name: owner}, {name: support}]\n"
        "route:\n  receiver: owner\n  routes: [{matchers: ['labels.code=~\"(a|aa)+c\"'], receiver: support}]\n"
        "inhibit_rules:\n  - {source_matchers: ['labels.code=~\"(a+)+b\"'], target_matchers: ['severity=\"low\"']}\n"
        "silences:\n  - {matchers: ['labels.code=~\"(a|a)*b\"'], ends_at: '2030-01-01T00:00:00Z', reason: test}\n"
    )
    check = CliRunner().invoke(main, ["routes", "check", str(routes)])
    assert check.exit_code == 0, check.output
    assert '- {labels.code=~"(a|aa)+c"}  receiver=support' in check.output
    now = ["--now", "2026-11-24T10:00:00+00:00"]
    worst = CliRunner().invoke(
        main, ["routes", "test", str(routes), "--alert", str(alert_file(labels={"code": "a" * 40})), *now]
    )
    assert worst.exit_code == 0, worst.output
    assert worst.output.splitlines()[0] == "owner"
    assert "silenced" not in worst.output
    routed = CliRunner().invoke(
        main, ["routes", "test", str(routes), "--alert", str(alert_file(labels={"code": "a" * 40 + "c"})), *now]
    )
    assert routed.output.splitlines()[0] == "support"
    silenced = CliRunner().invoke(
        main, ["routes", "test", str(routes), "--alert", str(alert_file(labels={"code": "a" * 40 + "b"})), *now]
    )
    assert "silenced by " in silenced.output


def test_check_refuses_what_re2_lacks_in_one_line_per_field(tmp_path: Path) -> None:
    """A look-ahead in a route, a possessive repeat in an inhibit rule and a backreference in a silence are
    each one Error line naming the field and the construct; exit 1, no traceback."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "receivers: [{name: owner}, {name: support}]\n"
        "route:\n  receiver: owner\n  routes: [{matchers: ['rule_id=~\"(?!test-).*\"'], receiver: support}]\n"
        "inhibit_rules:\n  - {source_matchers: ['labels.code=~\"(a++)+b\"'], target_matchers: ['severity=\"low\"']}\n"
        "silences:\n  - {matchers: ['labels.code=~\"(a)\\1\"'], ends_at: '2030-01-01T00:00:00Z', reason: test}\n"
    )
    result = CliRunner().invoke(main, ["routes", "check", str(routes)])
    assert result.exit_code == 1
    unsupported = "which RE2 — the regex syntax Alertmanager uses — does not support: "
    assert result.output.splitlines() == [
        f"Error: {routes}: route.routes[0].matchers[0]: regular expression in matcher 'rule_id=~\"(?!test-).*\"' "
        f"uses a negative look-ahead `(?!`, {unsupported}match the value itself, or add a !~ matcher on the "
        'same name (!~"test-.*" for =~"(?!test-).*")',
        f"Error: {routes}: inhibit_rules[0].source_matchers[0]: regular expression in matcher "
        f"'labels.code=~\"(a++)+b\"' uses a possessive repeat `++`, {unsupported}drop the last `+` (`a+` for "
        "`a++`); RE2 never backtracks, so it needs none",
        f"Error: {routes}: silences[0].matchers[0]: regular expression in matcher 'labels.code=~\"(a)\\\\1\"' "
        f"uses a backreference `\\1`, {unsupported}write out the values it stands for ((ab|cd)-(ab|cd), or "
        "ab-ab|cd-cd for (ab|cd)-\\1)",
    ]
    assert "Traceback" not in result.output
