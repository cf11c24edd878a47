"""``preempt rules check``: lists rules stack-ranked, or every error with exit code 1."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from streams.cli.main import main

GOLDEN = Path(__file__).parents[2] / "rules" / "golden"


def test_check_lists_rules_by_priority_and_severity():
    """A good file prints one line per rule, most important first, and exits 0."""
    result = CliRunner().invoke(main, ["rules", "check", str(GOLDEN / "good" / "every_kind.yaml")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("11 rules OK")
    ranked = [line.split()[:2] for line in lines[2:]]
    assert ranked[0] == ["1", "critical"]
    assert [int(prio) for prio, _ in ranked] == sorted(int(prio) for prio, _ in ranked)


def test_check_reports_errors_and_exits_1():
    """A bad file prints the file, rule and field on stderr and exits 1."""
    bad = GOLDEN / "bad" / "bad_duration.yaml"
    result = CliRunner().invoke(main, ["rules", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: rule 'monthly': field 'window'" in result.stderr


def test_a_where_in_an_empty_list_is_refused_in_one_line():
    """A ``where`` op ``in: []`` can never match, so the rule would load and stay silent: one line, exit 1."""
    bad = GOLDEN / "bad" / "where_in_empty_list.yaml"
    result = CliRunner().invoke(main, ["rules", "check", str(bad)])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"{bad}: rule 'never-fires': field 'match.where.properties.format.in': an empty list can never match: "
        "list the values to match, or leave the op out"
    ]


def test_a_long_rule_id_keeps_the_columns_apart(tmp_path):
    """A 64-character id (the longest allowed) is followed by the kind, not run into it."""
    long_id = "a" * 64
    (tmp_path / "r.yaml").write_text(
        f"id: {long_id}\nkind: any\ntitle: t\nseverity: low\npriority: 1\nmatch: {{event: X}}\n", encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()[1:3]
    assert row.split() == ["1", "low", long_id, "any"]
    assert header.index("what") == row.rindex("any")


def test_a_template_error_is_reported_with_another_files_field_error_in_one_run(tmp_path):
    """Every problem comes out at once: a template that would fail for a CSM (a missing evidence key) in one
    file is reported together with a field error in another, not only after that one is fixed."""
    (tmp_path / "a.yaml").write_text(
        "id: export-failed\nkind: any\ntitle: '{{ evidence.nope.deeper }}'\nseverity: low\npriority: 1\n"
        "match: {event: Export Failed}\n",
        encoding="utf-8",
    )
    (tmp_path / "b.yaml").write_text(
        "id: seat-removed\nkind: any\ntitle: t\nseverity: loud\npriority: 1\nmatch: {event: Seat Removed}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'b.yaml'}: rule 'seat-removed': field 'severity': "
        "expected one of critical, high, medium, low, info, not 'loud'",
        f"{tmp_path / 'a.yaml'}: rule 'export-failed': field 'title': "
        "names 'nope', which is not there (check the spelling, and the kind's evidence and the account fields "
        "in docs/rules.md)",
    ]


def test_check_without_a_path_checks_the_rules_the_worker_would_load(tmp_path: Path) -> None:
    """`preempt rules check` said "Missing argument 'PATH'" although the worker and backtest read PREEMPT_RULES_PATH
    (else the default pack): without PATH it checks those."""
    rule = GOLDEN / "good" / "every_kind.yaml"
    configured = CliRunner().invoke(main, ["rules", "check"], env={"PREEMPT_RULES_PATH": str(rule)})
    assert configured.exit_code == 0, configured.output
    assert f"OK in {rule}" in configured.output
    default = CliRunner().invoke(main, ["rules", "check"], env={"PREEMPT_RULES_PATH": None})
    assert default.exit_code == 0, default.output
    assert "14 rules OK in " in default.output
    assert "packs/default" in default.output
