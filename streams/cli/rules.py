"""``preempt rules check [PATH]`` — validate rule files and list the rules stack-ranked."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click

from rules.loader import RuleSet, load_rules
from rules.models import RuleBase
from rules.templates import check_rendering
from schemas.durations import format_duration
from schemas.errors import RuleConfigError


def load_rules_or_exit(path: Path) -> RuleSet:
    """The rules under ``path``; on an invalid rule, every problem (file, rule, field) on stderr and exit 1."""
    try:
        return load_rules(path)
    except RuleConfigError as exc:
        for line in str(exc).splitlines():
            click.echo(line, err=True)
        raise SystemExit(1) from None


@click.group(name="rules")
def rules_group() -> None:
    """Work with rule files."""


def _summary(rule: RuleBase) -> str:
    parts = [rule.kind]
    for name in ("window", "after", "within"):
        value = getattr(rule, name, None)
        if isinstance(value, float):
            parts.append(f"{name} {format_duration(value)}")
    if rule.group_by == "user":
        parts.append("per user")
    if not rule.enabled:
        parts.append("DISABLED")
    return ", ".join(parts)


def _rendering_problems(ruleset: RuleSet, path: Path) -> list[str]:
    """Every template rendered against an account only known by its id (strict: no "None" for a CSM).
    Named like the loader's errors: the rule's own file (not the directory given), rule id and field."""
    return [
        f"{ruleset.sources.get(rule.id, path)}: {problem}"
        for rule in ruleset.stack_ranked()
        for problem in check_rendering(rule)
    ]


def _report(problems: list[str]) -> NoReturn:
    for problem in problems:
        click.echo(problem, err=True)
    raise SystemExit(1)


@rules_group.command(name="check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
def check(path: Path | None) -> None:
    """Validate the rules in PATH (a file or a directory) and list them by priority and severity.

    Without PATH: the rules the worker loads (PREEMPT_RULES_PATH, else the default pack). Exits 1 and
    prints every problem (file, rule id and field) when a rule is invalid.

    \b
      preempt rules check
      preempt rules check my-rule.yaml
    """
    if path is None:
        from streams.runtime.settings import Settings

        path = Settings().rules_path
    try:
        ruleset = load_rules(path)
    except RuleConfigError as exc:
        # Every problem in one run: the loader's, then the templates of the rules it could still load.
        loaded = exc.loaded if isinstance(exc.loaded, RuleSet) else None
        _report([*str(exc).splitlines(), *(_rendering_problems(loaded, path) if loaded else [])])
    ranked = ruleset.stack_ranked()
    problems = _rendering_problems(ruleset, path)
    if problems:
        _report(problems)
    click.echo(f"{len(ranked)} rules OK in {path} ({len(ruleset.enabled)} enabled)")
    width = max([36, *(len(rule.id) for rule in ranked)])  # ids may be 64 characters
    click.echo(f"{'prio':>4}  {'severity':<8}  {'id':<{width}}  what")
    for rule in ranked:
        click.echo(f"{rule.priority:>4}  {rule.severity:<8}  {rule.id:<{width}}  {_summary(rule)}")
