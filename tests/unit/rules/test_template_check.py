"""`rules check` renders every template of every rule against a sparse account, strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rules.backtest import run_backtest
from rules.engine import RuleEngine
from rules.findings import make_finding
from rules.loader import load_rules
from rules.templates import check_rendering, check_template
from schemas.event import Event
from streams.cli.main import main
from tests.unit.rules.risk_support import write_model

PACK = Path(__file__).resolve().parents[3] / "rules" / "packs" / "default"
GOLDEN_GOOD = Path(__file__).resolve().parent / "golden" / "good"

RULE = """\
id: {id}
kind: {kind}
title: "{title}"
severity: low
priority: 1
{body}
playbook: "{playbook}"
"""
ANY_BODY = "match: {event: X}"


def _rules(tmp_path: Path, *, title: str = "{{ account.name }}", playbook: str = "", kind: str = "any") -> Path:
    body = ANY_BODY if kind == "any" else "match: {event: X}\nafter: 7d"
    path = tmp_path / "r.yaml"
    path.write_text(RULE.format(id="r1", kind=kind, title=title, body=body, playbook=playbook))
    return path


def test_default_pack_and_golden_rules_render_for_a_sparse_account():
    """Every template of the default pack and the golden good rules renders strictly with only an account id."""
    for path in (PACK, *sorted(GOLDEN_GOOD.glob("*.yaml"))):
        for rule in load_rules(path).rules:
            assert check_rendering(rule) == [], (path, rule.id)


@pytest.mark.parametrize(
    ("playbook", "problem"),
    [
        (
            "Call {{ account.owner.name }}",
            "field 'playbook': prints nothing (a gap in the text) for an account known only by its id",
        ),
        ("MRR ${{ account.mrr }}", "prints nothing"),
        ("CRM: {{ account.links.crm }}", "prints nothing"),
        (
            "{{ evidence.last_seen }} and {{ evidence.nope }}",
            "field 'playbook': names 'nope', which is not there (check the spelling",
        ),
        ("{{ evidence.threshold|duration }} {{ evidence.last_seen|datetime(account.timezone) }}", None),
        ('{{ account.owner|person(fallback=\\"The owner\\") }}{{ account.links.crm|aside }}', None),
        # `user` is documented as empty for per-account rules, and renders so: not a None to refuse
        ("{{ user.id }}", None),
        # empty for any account: the message blamed the account (an inactivity rule has no baseline)
        (
            "{{ evidence.baseline }}",
            "prints nothing even for an account with every field known: a value the inactivity",
        ),
    ],
)
def test_check_rendering_flags_none_and_undefined(tmp_path, playbook, problem):
    """A template that would print None or names a missing evidence key is a problem; filters fix it."""
    rule = load_rules(_rules(tmp_path, playbook=playbook, kind="inactivity")).rules[0]
    problems = check_rendering(rule)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problem in problems[0]
        assert problems[0].startswith("rule 'r1': field 'playbook': ")


def test_rules_check_fails_with_one_line_per_template_problem(tmp_path):
    """`preempt rules check` exits 1 naming the file, rule and template; no traceback."""
    path = _rules(tmp_path, title="{{ account.name }} ({{ account.tier }})", playbook="Call {{ account.owner.name }}")
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}: rule 'r1': field 'title': prints nothing")
    assert lines[1].startswith(f"{path}: rule 'r1': field 'playbook': prints nothing")
    assert "Traceback" not in result.output


@pytest.mark.timeout(10)  # before the sandbox bounded it, this ran for hours
def test_rules_check_stops_a_template_with_huge_nested_loops_in_one_line(tmp_path):
    """A title looping 10^10 times (two nested range(100000)) is one line naming file, rule and field and
    exit 1 — not a check that runs for hours."""
    loops = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
    path = _rules(tmp_path, title=loops)
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}: rule 'r1': field 'title': does too much work (template stopped after 100,000 loop steps "
        "(nested loops multiply)); keep templates to printing and formatting values"
    ]


def test_unknown_filter_is_refused_at_load():
    """A typo in a filter name is a load error, not a runtime surprise."""
    with pytest.raises(ValueError, match="No filter named 'monye'"):
        check_template("{{ account.mrr|monye }}")


def test_summary_is_rendered_into_the_evidence_and_ids_do_not_change():
    """The rule's summary sentence is added to the alert's evidence; the raw numbers and the alert id stay."""
    ruleset = load_rules(PACK)
    engine = RuleEngine(ruleset)
    finding = make_finding(
        rule_id="champion-gone-quiet",
        kind="inactivity",
        account_id="acc-9",
        key="acc-9-u02",
        fired_at=1767964833.818,
        evidence={"measure": "silence", "value": "1w", "threshold": 604800.0, "last_seen": "2026-01-02T13:20:33.818Z"},
    )
    alert = engine.to_alert(finding, None, emitted_at=1767964833.818)
    evidence = alert.evidence.model_dump()
    assert alert.alert_id == finding.alert_id
    assert evidence["threshold"] == 604800.0
    assert evidence["summary"] == "acc-9-u02 (admin) has not logged in for 7 days; last login Fri 2 Jan 2026, 13:20 UTC"
    assert alert.title == "acc-9: the champion (acc-9-u02, an admin) has not logged in for 7 days"
    assert "None" not in alert.playbook
    assert "The account's owner: check LinkedIn / the CRM — did" in alert.playbook


def test_template_problems_in_a_directory_name_the_rule_file(tmp_path):
    """Checking a directory, a template problem names the rule's own file, rule id and field, like a load error."""
    pack = tmp_path / "pack"
    (pack / "team").mkdir(parents=True)
    (pack / "team" / "ok.yaml").write_text(RULE.format(id="fine", kind="any", title="t", body=ANY_BODY, playbook=""))
    bad = pack / "team" / "bad.yaml"
    bad.write_text(RULE.format(id="r2", kind="any", title="t", body=ANY_BODY, playbook="Call {{ account.owner.name }}"))
    result = CliRunner().invoke(main, ["rules", "check", str(pack)])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{bad}: rule 'r2': field 'playbook': prints nothing")


KINDS_WITH_MAPPINGS = """\
rules:
  - id: detractor
    kind: any
    title: t
    severity: low
    priority: 2
    match: {event: NPS}
  - id: quiet
    kind: inactivity
    title: t
    severity: low
    priority: 2
    after: 1d
    match: {event: Login}
  - id: both
    kind: composite
    title: "{{ account.name }}: {{ evidence.rules|join(', ') }}"
    playbook: "{% for rule, at in evidence.rules.items() %}{{ rule }} at {{ at }}; {% endfor %}"
    severity: high
    priority: 1
    all_of: [detractor, quiet]
    within: 7d
  - id: churn-risk
    kind: risk
    title: "{{ account.name }}: risk {{ evidence.value|percent }} ({{ evidence.reasons|first }})"
    summary: "{{ evidence.reasons|join('; ') }} (model of {{ evidence.model_trained_at|date }})"
    playbook: "{% for name, share in evidence.contributions.items() %}{{ name }} {{ share }}; {% endfor %}"
    severity: high
    priority: 1
    model: m.json
    threshold: 0.5
    warmup: 1d
"""


def test_composite_and_risk_evidence_templates_check_as_they_render(tmp_path):
    """Templates using a composite's rules mapping and a risk rule's reasons and contributions pass `rules check`
    and render without a template error in a real replay."""
    write_model(tmp_path / "m.json")
    path = tmp_path / "rules.yaml"
    path.write_text(KINDS_WITH_MAPPINGS)
    ruleset = load_rules(path)
    assert [p for rule in ruleset.rules for p in check_rendering(rule)] == []
    day = 86400.0
    t0 = 1_795_392_000.0
    events = [
        Event("l1", "Login", "acme", t0),
        Event("n1", "NPS", "acme", t0 + 2 * day),
        Event("x1", "Other", "acme", t0 + 12 * day),
    ]
    alerts = run_backtest(RuleEngine(ruleset), enumerate(events, start=1), allowed_lateness=0.0).alerts
    fired = {a.rule_id: a for a in alerts}
    assert {"both", "churn-risk"} <= set(fired)
    for rule_id in ("both", "churn-risk"):
        assert "template_error" not in fired[rule_id].evidence, fired[rule_id].evidence
        assert "{{" not in fired[rule_id].title


@pytest.mark.parametrize(
    ("kind", "body", "title", "problem"),
    [
        (
            "spike",
            "match: {event: X}\nwindow: 1h\nfactor: 3\nmin: 5",
            "{{ account.name }}: errors x{{ evidence.factor }}",
            "field 'title': prints nothing when the window before had none (a burst from nothing)",
        ),
        ("spike", "match: {event: X}\nwindow: 1h\nfactor: 3\nmin: 5", "x{{ evidence.factor or 'new' }}", None),
        ("spike", "match: {event: X}\nwindow: 1h\nfactor: 3\nmin: 5", "{{ evidence.baseline }} before", None),
        (
            "score",
            "window: 7d\nbelow: 40\ncomponents: [{name: a, weight: 1, match: {event: X}, measure: count, target: 5}]",
            "score {{ evidence.value }}, peak {{ evidence.baseline }}",
            "field 'title': prints nothing when no earlier tick of the window was scored",
        ),
    ],
)
def test_a_value_the_kind_leaves_empty_in_some_alerts_is_refused(
    tmp_path: Path, kind: str, body: str, title: str, problem: str | None
) -> None:
    """A spike's factor is null for a burst from nothing (the docs' own example title read "API errors × in
    the last hour" then), a score's baseline before its first scored tick: `rules check` said OK."""
    path = tmp_path / "r.yaml"
    path.write_text(RULE.format(id="r1", kind=kind, title=title, body=body, playbook=""))
    problems = [p for rule in load_rules(path).rules for p in check_rendering(rule)]
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problem in problems[0]


@pytest.mark.parametrize(
    "playbook",
    [
        "Tier {{ account.tier|upper }}",
        "Plan {{ account.plan|lower }}",
        "Plan {{ account.plan|capitalize }}",
        "Owner {{ account.owner.name|title }}",
        "Tier {{ account.tier|trim }}",
        "Tier {{ account.tier|string }}",
        "Tier {{ account.tier|truncate(10) }}",
        "Tier {{ account.tier|replace('-', ' ') }}",
        "{{ 'Tier: ' ~ account.tier }}",
        "{{ account.name ~ ' / ' ~ account.plan ~ '.' }}",
    ],
)
def test_a_text_filter_does_not_hide_a_none_from_the_check(tmp_path, playbook):
    """`{{ account.tier|upper }}` printed 'NONE' for an account known only by its id, and the check
    passed it (it saw the text 'NONE', not a None): a text filter now passes None on, so the check
    refuses it as it refuses `{{ account.tier }}`; so does `~`, which joined it as 'None'."""
    rule = load_rules(_rules(tmp_path, playbook=playbook, kind="inactivity")).rules[0]
    problems = check_rendering(rule)
    assert len(problems) == 1, problems
    assert "field 'playbook': prints nothing (a gap in the text) for an account known only by its id" in problems[0]


def test_a_text_filter_on_a_present_value_still_works(tmp_path):
    rule = load_rules(
        _rules(tmp_path, playbook="{{ account.name|upper }} {{ (account.tier or 'smb')|title }}", kind="inactivity")
    ).rules[0]
    assert check_rendering(rule) == []
