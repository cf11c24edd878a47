"""Routing regexes: RE2 syntax as in Alertmanager, anchored, and one clear line for what RE2 lacks."""

from __future__ import annotations

import re

import pytest

from alerts.routing.regex import compile_regex

UNSUPPORTED = "which RE2 — the regex syntax Alertmanager uses — does not support: "


@pytest.mark.parametrize(
    ("regex", "construct", "instead"),
    [
        ("(?=a)b", "a look-ahead `(?=`", "add a !~ matcher on the same name"),
        ("(?!test-).*", "a negative look-ahead `(?!`", '(!~"test-.*" for =~"(?!test-).*")'),
        ("(?<=a)b", "a look-behind `(?<=`", "match the value itself"),
        ("(?<!a)b", "a negative look-behind `(?<!`", "match the value itself"),
        ("(ab|cd)-\\1", "a backreference `\\1`", "write out the values it stands for"),
        ("(?P<x>a)(?P=x)", "a backreference `(?P=name)`", "write out the values it stands for"),
        ("(?<x>a)\\k<x>", "a backreference `\\k`", "write out the values it stands for"),
        ("a++", "a possessive repeat `++`", "drop the last `+`"),
        ("(?:(a+)+b)*+", "a possessive repeat `*+`", "drop the last `+`"),
        ("a{2}+", "a possessive repeat `{2}+`", "drop the last `+`"),
        ("(?>a|ab)c", "an atomic group `(?>`", "write a plain group `(?:…)`"),
        ("(a)?(?(1)b|c)", "a conditional `(?(`", "write the alternatives with `|`"),
        ("(?#note)a", "a comment `(?#`", "remove it"),
        ("(?x) a b ", "the inline flag `x` (in `(?x`)", "RE2 has only the flags i, m, s and U"),
        ("acme\\Z", "the end anchor `\\Z`", "anchored at both ends already"),
        ("\\e", "the escape `\\e`", "`\\x{…}`"),
        ("(?R)?", "a recursion `(?R`", "RE2 has no recursion"),
    ],
)
def test_unsupported_constructs_are_named_with_what_to_write(regex: str, construct: str, instead: str) -> None:
    """Python/PCRE constructs that RE2 lacks are refused in one line naming the construct and the way out."""
    with pytest.raises(ValueError, match="uses ") as caught:
        compile_regex(regex)
    message = str(caught.value)
    assert message.startswith(f"uses {construct}, {UNSUPPORTED}"), message
    assert instead in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("regex", "expected"),
    [
        ("(unclosed", "is not valid: missing ) at `(unclosed` (RE2 syntax, as in Alertmanager)"),
        ("*a", "is not valid: no argument for repetition operator at `*`"),
        ("[z-a]", "is not valid: invalid character class range at `z-a`"),
        ("[a-\\d]", "is not valid: invalid escape sequence at `\\d`"),
        ("(?i", "is not valid: invalid perl operator at `(?i`"),
        ("a{1001}", "has a repeat count RE2 refuses at `{1001}`: at most 1000"),
        ("(a{100}){100}", "has a repeat count RE2 refuses at `{100}`: at most 1000 (nested counts multiply"),
        ("\\pL{1000}", "is too large for RE2"),
    ],
)
def test_syntax_errors_say_what_and_where(regex: str, expected: str) -> None:
    """A plain syntax error reads RE2's reason and the fragment it stopped at."""
    with pytest.raises(ValueError, match=r"^(is not valid|has a repeat count|is too large)") as caught:
        compile_regex(regex)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_refusals_print_nothing_themselves(capfd: pytest.CaptureFixture[str]) -> None:
    """RE2 would log each refused pattern to stderr itself; the one line is the caller's to print."""
    with pytest.raises(ValueError, match="look-ahead"):
        compile_regex("(?=a)")
    assert capfd.readouterr() == ("", "")


def test_an_empty_minimum_repeat_is_refused_not_flipped() -> None:
    """``a{,3}`` was "up to 3" to Python's re but is the text ``a{,3}`` to RE2 (and Go): refused with both
    spellings, while an escaped, bracketed or quoted ``{,3}`` is plain text."""
    with pytest.raises(ValueError, match=r"write `\{0,3\}` for the repeat, or `\\\{,3\}` for the text"):
        compile_regex("acc-\\d{,3}")
    with pytest.raises(ValueError, match=r"write `\*` for the repeat"):
        compile_regex("a{,}")
    with pytest.raises(ValueError, match=r"`\{,2\}`"):
        compile_regex("[[:alpha:]]{,2}")
    assert compile_regex("a\\{,3}").fullmatch("a{,3}")
    assert compile_regex("a\\Q{,3}\\E").fullmatch("a{,3}")
    assert compile_regex("a[{,3}]").fullmatch("a{")
    assert compile_regex("a[]{,3}]").fullmatch("a]")


ORDINARY = [
    "error-.*",
    "critical|high",
    "acc-\\d+",
    ".*@example\\.com",
    "(?i)acme",
    "[a-z]+-[0-9]{2,4}",
    "^(?:nps-detractor|churn-.*)$",
    "",
    "a?b*",
    "(ab|cd){2}",
    "[^x]*",
    "\\w+",
    "x{3,}",
    "(?s).*",
]
VALUES = ["", "error-spike", "critical", "acc-0017", "jane@example.com", "ACME", "abc-123", "abc-12345"]
VALUES += ["nps-detractor", "nps-detractor\n", "churn-risk", "abcd", "cdab", "b", "abbb", "xxx", "x", "a b", "a\nb"]


@pytest.mark.parametrize("pattern", ORDINARY)
def test_ordinary_patterns_match_what_they_matched_with_re(pattern: str) -> None:
    """On ordinary patterns and ASCII values RE2 answers as Python's re.fullmatch did: nothing routes
    differently after the switch."""
    compiled = compile_regex(pattern)
    for value in VALUES:
        assert compiled.fullmatch(value) == (re.fullmatch(pattern, value) is not None), (pattern, value)


def test_matching_is_anchored_and_reads_classes_as_alertmanager_does() -> None:
    """Whole-value matches, as ``^(?:…)$`` in Alertmanager; ``\\d`` and ``\\w`` are ASCII as in Go;
    ``.`` stops at a line break; RE2's Unicode classes and ``(?i)`` work on any script."""
    digits = compile_regex("acc-\\d+")
    assert digits.fullmatch("acc-0017")
    assert not digits.fullmatch("xacc-0017")
    assert not digits.fullmatch("acc-0017\n")
    assert not digits.fullmatch("acc-٣")  # ARABIC-INDIC DIGIT THREE: Python's \d took it, Go's does not
    assert compile_regex("\\pL+").fullmatch("Zürich")
    assert compile_regex("(?i)straße").fullmatch("STRAßE")
    assert not compile_regex("a.b").fullmatch("a\nb")
    assert compile_regex("(?s)a.b").fullmatch("a\nb")
    assert compile_regex("").fullmatch("")
    assert not compile_regex("").fullmatch("x")


def test_a_value_with_a_lone_surrogate_is_matched_as_go_reads_it() -> None:
    """A value holding a lone surrogate (json.loads lets "\\ud800" through, e.g. in ``routes test``) cannot
    be UTF-8; it is matched as Go (Alertmanager) decodes it, with U+FFFD, instead of raising."""
    assert compile_regex("a.c").fullmatch("a\ud800c")
    assert compile_regex("a\ufffdc").fullmatch("a\ud800c")
    with pytest.raises(ValueError, match="lone UTF-16 surrogate"):
        compile_regex("a\ud800")
