"""The prescient report end to end at a small size: train on one seed, tune and evaluate on another."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.prescient.report import (
    BEGIN,
    END,
    REGULARIZATION_C,
    VALIDATION_BEGIN,
    VALIDATION_END,
    ReportConfig,
    main,
    render_markdown,
    render_validation,
    render_validation_block,
    run_report,
    validate,
    write_block,
)


def test_small_report_end_to_end(tmp_path: Path) -> None:
    """The report trains with the account records, matches alert volumes on the held-out seed and renders the
    comparison."""
    config = ReportConfig(accounts=24, train_accounts=30, days=90, train_seed=11, test_seed=12)
    report = run_report(config, tmp_path)
    assert report.model.spec.uses_accounts  # thresholds and backtest both read the records
    rules = {s.rule_id: s for s in report.rules.rules}
    assert report.best_rule in rules
    for rule_id, target in report.targets.items():
        # the threshold is read off the peak risks, so the backtest alerts on as many accounts (ties aside)
        assert rules[rule_id].alerted_accounts == target
    block = render_markdown(report)
    assert block.startswith(BEGIN)
    assert block.endswith(END)
    assert f"best single rule of the pack: `{report.best_rule}`" in block
    assert "the target (≥ 1.5× recall at no lower precision) is **" in block
    assert "of them from the account records" in block
    # the upper bound, evaluated like a rule at the best rule's volume
    assert report.oracle.alerted_accounts <= report.targets["risk-at-best-rule-volume"]
    assert "| upper bound, in expectation, at the best single rule's volume: the story oracle (" in block
    caught = report.oracle.caught_at_lead
    assert f"the story oracle, which no rule that reads usage can expect to beat, {caught} " in block
    # the training history has its own size: 30 accounts trained on, 24 held out
    assert "trained on seed 11 (30 accounts, " in block
    assert "evaluated on seed 12 (24 accounts, " in block
    assert report.model.doc.training.accounts > 24
    assert (tmp_path / "model.json").exists()

    doc = tmp_path / "doc.md"
    doc.write_text(f"# title\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    write_block(doc, block)
    assert doc.read_text() == f"# title\n\n{block}\n\nafter\n"


def test_doc_holds_a_generated_block_of_the_default_run() -> None:
    """docs/prescient.md carries the block `make prescient-report` writes, made with today's defaults."""
    doc = (Path(__file__).resolve().parents[4] / "docs" / "prescient.md").read_text(encoding="utf-8")
    block = doc[doc.index(BEGIN) : doc.index(END) + len(END)]
    assert f"Reproduce: `{ReportConfig().command}`" in block
    assert "| best single rule of the pack: `" in block
    assert "the target (≥ 1.5× recall at no lower precision) is **" in block


def test_doc_holds_a_generated_validation_block() -> None:
    """docs/prescient.md carries the validation table `make prescient-validate` writes, seeds 3–6 trained on seed 1,
    with the story oracle's column."""
    doc = (Path(__file__).resolve().parents[4] / "docs" / "prescient.md").read_text(encoding="utf-8")
    block = doc[doc.index(VALIDATION_BEGIN) : doc.index(VALIDATION_END) + len(VALIDATION_END)]
    assert f"Reproduce: `{ReportConfig().command_without_test_seed} --validate 3,4,5,6`" in block
    assert "| story oracle caught (expected) | oracle ratio |" in block
    assert "| total | | | | " in block


def test_validation_judges_each_seed_with_the_reports_own_pipeline(tmp_path: Path) -> None:
    """Validation trains once and gives, per seed, the best rule's and the volume-matched risk rule's caught
    churns, as the report's own judging does."""
    config = ReportConfig(accounts=24, train_accounts=30, days=90, train_seed=11, test_seed=12)
    model, found = validate(config, tmp_path, (13, 14))
    assert [item.seed for item in found] == [13, 14]
    table = render_validation(config, model, found)
    for item in found:
        rules = {s.rule_id: s for s in item.rules.rules}
        best, risk = rules[item.best_rule], rules["risk-at-best-rule-volume"]
        assert risk.alerted_accounts == item.targets["risk-at-best-rule-volume"] == best.alerted_accounts
        assert (
            f"| {item.seed} | {item.rules.churned_accounts} | `{item.best_rule}` | {best.alerted_accounts} | " in table
        )
    total_best = sum({s.rule_id: s for s in i.rules.rules}[i.best_rule].caught_at_lead for i in found)
    targets = sum(math.ceil(1.5 * {s.rule_id: s for s in i.rules.rules}[i.best_rule].caught_at_lead) for i in found)
    assert f"| total | | | | {total_best} | | {targets} | " in table  # the target: 1.5× the best rule's catch
    oracle_total = sum(i.oracle.caught_at_lead for i in found)
    assert f"| {oracle_total} ({sum(i.oracle_expected for i in found):.1f}) | " in table
    block = render_validation_block(config, model, found)
    assert block.startswith(VALIDATION_BEGIN)
    assert block.endswith(VALIDATION_END)
    assert f"Reproduce: `{config.command_without_test_seed} --validate 13,14`" in block
    assert "--accounts 24 --train-accounts 30 --days 90 --train-seed 11" in block
    assert table in block
    doc = tmp_path / "doc.md"
    doc.write_text(f"{BEGIN}\nreport\n{END}\n\n{VALIDATION_BEGIN}\nold\n{VALIDATION_END}\n")
    write_block(doc, block, VALIDATION_BEGIN, VALIDATION_END)
    assert doc.read_text() == f"{BEGIN}\nreport\n{END}\n\n{block}\n"
    with pytest.raises(ValueError, match="seed 12 is the held-out seed"):
        validate(config, tmp_path, (13, 12))


def test_validate_option_refuses_the_held_out_seed_and_bad_seed_lists_in_one_line(tmp_path: Path) -> None:
    """``--validate`` with the held-out seed or a list that is not numbers fails with one line, and ``--write`` to a
    doc without the markers of the block it would write fails at once."""
    runner = CliRunner()
    for args, words in (
        (["--validate", "3,2"], "needs seeds other than the held-out seed 2"),
        (["--validate", "three"], "give seeds as whole numbers separated by commas"),
        (["--validate", ","], "names no seed"),
        (["--validate", "3,4,3"], "names a seed twice"),
    ):
        result = runner.invoke(main, [*args, "--workdir", str(tmp_path / "w")])
        assert result.exit_code == 2, result.output
        assert words in result.output
        assert "Traceback" not in result.output
    # a doc without the block's markers is refused before any work (no workdir made, no model trained)
    (tmp_path / "report-only.md").write_text(f"doc\n{BEGIN}\n{END}\n")
    (tmp_path / "validation-only.md").write_text(f"doc\n{VALIDATION_BEGIN}\n{VALIDATION_END}\n")
    for args in (["--validate", "3", "--write", "report-only.md"], ["--write", "validation-only.md"]):
        args[-1] = str(tmp_path / args[-1])
        result = runner.invoke(main, [*args, "--workdir", str(tmp_path / "w")])
        assert result.exit_code == 1, result.output
        assert "the markers of the generated block are missing" in result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "w").exists()
    (tmp_path / "latin1.md").write_bytes("caf\xe9\n".encode("latin-1"))
    result = runner.invoke(main, ["--write", str(tmp_path / "latin1.md"), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 1, result.output
    assert "cannot read it as UTF-8 text" in result.output
    assert "Traceback" not in result.output


def test_a_lead_or_horizon_in_part_days_is_refused_before_any_work() -> None:
    """The story oracle counts whole days, so a configuration with a lead or horizon in part days is refused."""
    with pytest.raises(ValueError, match="whole days"):
        ReportConfig(lead_days=14.5)
    with pytest.raises(ValueError, match="whole days"):
        ReportConfig(horizon_days=60.25)
    assert ReportConfig(lead_days=7.0).lead_days == 7.0


def test_the_regularization_is_the_validated_one_unless_given_and_bad_values_are_one_line(tmp_path: Path) -> None:
    """The report trains with the C chosen on the validation seeds; another C, or ``auto`` (chosen by
    cross-validated log loss, as ``preempt train`` by default), shows in the command that reproduces it."""
    assert ReportConfig().regularization_c == REGULARIZATION_C
    assert "--regularization" not in ReportConfig().command
    assert ReportConfig(regularization_c=None).command.endswith("--regularization auto --test-seed 2")
    assert "--regularization 0.01 " in ReportConfig(regularization_c=0.01).command
    for bad in ("0", "-0.1", "inf", "strong"):
        result = CliRunner().invoke(main, ["--regularization", bad, "--workdir", str(tmp_path / "w")])
        assert result.exit_code == 2, result.output
        assert "give a positive number, e.g. 0.003, or auto" in result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "w").exists()
