"""Matchers: parsing, operators and field resolution."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from alerts.routing.matchers import Matcher, alert_value, describe, parse_matchers
from schemas.alert import Alert


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('severity="critical"', "severity", "=", "critical"),
        ("severity=critical", "severity", "=", "critical"),
        ("account.tier != starter", "account.tier", "!=", "starter"),
        ('rule_id=~"error-.*"', "rule_id", "=~", "error-.*"),
        ('team!~"bill.*"', "team", "!~", "bill.*"),
        ('title="say \\"hi\\""', "title", "=", 'say "hi"'),
        ('team=""', "team", "=", ""),
    ],
)
def test_parse_accepts_alertmanager_syntax(text: str, name: str, op: str, value: str) -> None:
    """Quoted and unquoted values parse into name, operator and value."""
    matcher = Matcher.parse(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


def test_quoted_regex_keeps_its_backslash_classes(make_alert: Callable[..., Alert]) -> None:
    """A quoted regular expression keeps ``\\d`` and ``\\.`` as Alertmanager does (only ``\\"``,
    ``\\\\`` and ``\\n`` are escapes), so ``account_id=~"acc-\\d+"`` matches acc-0017 and not acc-x."""
    digits = Matcher.parse('account_id=~"acc-\\d+"')
    assert digits.value == "acc-\\d+"
    assert digits.matches(make_alert(account_id="acc-0017"))
    assert not digits.matches(make_alert(account_id="acc-x"))
    dot = Matcher.parse('account.owner.email=~".*@example\\.com"')
    assert dot.matches(make_alert(account={"owner": {"email": "jane@example.com"}}))
    assert not dot.matches(make_alert(account={"owner": {"email": "jane@exampleXcom"}}))
    assert Matcher.parse('title="back\\\\slash"').value == "back\\slash"
    assert Matcher.parse(str(digits)) == digits


@pytest.mark.parametrize("text", ["severity", "sev==x", "=x", 'a="unterminated', "1abc=x"])
def test_parse_rejects_bad_syntax(text: str) -> None:
    """Malformed matchers raise ValueError naming the text."""
    with pytest.raises(ValueError, match="invalid matcher"):
        Matcher.parse(text)


def test_parse_rejects_bad_regex() -> None:
    """A matcher with an invalid regular expression says so."""
    with pytest.raises(ValueError, match="regular expression"):
        Matcher.parse('rule_id=~"(unclosed"')


def test_regex_is_anchored(make_alert: Callable[..., Alert]) -> None:
    """As in Alertmanager, =~ must match the whole value, not a substring."""
    alert = make_alert(rule_id="error-spike")
    assert Matcher.parse('rule_id=~"error-.*"').matches(alert)
    assert not Matcher.parse('rule_id=~"error"').matches(alert)
    assert Matcher.parse('rule_id!~"error"').matches(alert)


def test_fields_account_paths_and_labels_resolve(make_alert: Callable[..., Alert]) -> None:
    """Alert fields, account paths, labels.x and bare label names all resolve; missing reads as ''."""
    alert = make_alert(severity="critical", labels={"team": "billing"}, account={"tier": "growth"})
    assert alert_value(alert, "severity") == "critical"
    assert alert_value(alert, "account.tier") == "growth"
    assert alert_value(alert, "account.owner.email") == "jane@example.com"
    assert alert_value(alert, "labels.team") == "billing"
    assert alert_value(alert, "team") == "billing"
    assert alert_value(alert, "priority") == "2"
    assert alert_value(alert, "region") == ""


def test_missing_label_matches_empty_and_not_equal(make_alert: Callable[..., Alert]) -> None:
    """A missing label matches ``x=""`` and ``x!="y"``, as Alertmanager treats absent labels."""
    alert = make_alert(labels={})
    assert Matcher.parse('region=""').matches(alert)
    assert Matcher.parse('region!="eu"').matches(alert)
    assert not Matcher.parse('region="eu"').matches(alert)


def test_describe_round_trips() -> None:
    """describe() prints matchers in a form parse() reads back."""
    matchers = (Matcher.parse("severity=critical"), Matcher.parse('title="a \\"b\\""'))
    text = describe(matchers)
    assert text == '{severity="critical",title="a \\"b\\""}'
    assert [Matcher.parse(part) for part in ('severity="critical"', 'title="a \\"b\\""')] == list(matchers)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{owner="team-A"}', ['owner="team-A"']),
        ('{level!="critical"}', ['level!="critical"']),
        ('{owner="team-A", level!="critical"}', ['owner="team-A"', 'level!="critical"']),
        ('{team=~"sup.*",kind!~"any|score",}', ['team=~"sup.*"', 'kind!~"any|score"']),
        ('owner="a,b", level=high', ['owner="a,b"', 'level="high"']),
        ('title="say \\"hi, you\\""', ['title="say \\"hi, you\\""']),
        ('severity="critical"', ['severity="critical"']),
    ],
)
def test_parse_matchers_reads_alertmanager_sets(text: str, expected: list[str]) -> None:
    """One entry may be a comma-separated set, in braces or not; commas inside quotes stay in the value."""
    assert [str(m) for m in parse_matchers(text)] == expected


@pytest.mark.parametrize("text", ["{}", '{owner="a"', 'owner="a"}', '{owner="a" level="b"}'])
def test_parse_matchers_rejects_malformed_sets(text: str) -> None:
    """Empty or unbalanced braces and missing commas are refused naming the entry."""
    with pytest.raises(ValueError, match="invalid matcher"):
        parse_matchers(text)


def test_alertname_reads_the_rule_id(make_alert: Callable[..., Alert]) -> None:
    """Alertmanager's alertname is the rule id of a Preempt alert."""
    assert Matcher.parse('alertname="error-spike"').matches(make_alert(rule_id="error-spike"))
    assert alert_value(make_alert(rule_id="x"), "alertname") == "x"


@pytest.mark.parametrize(
    ("regex", "value", "expected"),
    [
        # The first nine ran for minutes (exponential or high-polynomial backtracking) in Python's re,
        # which matched routing regexes before RE2; the first four passed its nested-repetition check.
        ("(a|a)*b", "a" * 40, False),
        ("(a|aa)+c", "a" * 40, False),
        ("a*a*a*a*a*a*a*b", "a" * 300, False),
        (".*.*.*.*.*.*=x", "=" * 200, False),
        ("(a+)+b", "a" * 40, False),
        ("(a+)+$", "a" * 40 + "!", False),
        ("(.*,)*x", "," * 40, False),
        (r"(\w+\s?)*x", "ab " * 30, False),
        ("(a|aa)+c", "a" * 100_000, False),
        ("(a|ab)+c", "ab" * 30, False),
        ("(a+)+b", "a" * 40 + "b", True),
        ("(a|ab)+c", "ab" * 30 + "c", True),
        ("(.*,)*x", "," * 40 + "x", True),
    ],
)
def test_backtracking_shapes_match_in_linear_time(
    make_alert: Callable[..., Alert], regex: str, value: str, expected: bool
) -> None:
    """Routing regexes are RE2, as in Alertmanager, so the shapes that backtrack for minutes in Python's re
    (nested or overlapping repeats) load and answer at once, both ways; with re this test would hang."""
    alert = make_alert(labels={"v": value})
    assert Matcher.parse(f'labels.v=~"{regex}"').matches(alert) is expected
    assert Matcher.parse(f'labels.v!~"{regex}"').matches(alert) is not expected


@pytest.mark.parametrize(
    ("regex", "construct"),
    [
        ("(?!test-).*", "a negative look-ahead `(?!`"),
        ("(?<=a)b", "a look-behind `(?<=`"),
        ("(a)-\\1", "a backreference `\\1`"),
        ("(a++)+", "a possessive repeat `++`"),
        ("(?>(a+)+b)", "an atomic group `(?>`"),
    ],
)
def test_parse_refuses_what_re2_cannot_compile(regex: str, construct: str) -> None:
    """A construct RE2 (Alertmanager's regex syntax) lacks is refused at parse, in one line naming it."""
    with pytest.raises(ValueError, match="regular expression in matcher") as caught:
        Matcher.parse(f'account_id=~"{regex}"')
    message = str(caught.value)
    assert f"uses {construct}, which RE2 — the regex syntax Alertmanager uses — does not support: " in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "regex", ["a+", "(ab)+", "(a|b)*c", "acc-\\d+", "(?:error-.*)", "a{2}(b{3})+", "(?i)ACME", "^(?:a|b)$", "\\pL+"]
)
def test_parse_accepts_ordinary_regexes(regex: str) -> None:
    """Ordinary regexes, anchors, inline flags and RE2's Unicode classes load."""
    assert Matcher.parse(f'account_id=~"{regex}"').op == "=~"
