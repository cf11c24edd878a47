"""The shared YAML reader: YAML 1.2 scalars, duplicate keys refused, syntax errors on the right line."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config_yaml import YamlSyntaxError, load_yaml_file, parse_yaml
from schemas.errors import ConfigError


def test_on_off_yes_no_stay_strings() -> None:
    """on/off/yes/no/y/n are strings (YAML 1.2 core schema); only true/false are booleans."""
    data = parse_yaml("a: on\nb: off\nc: yes\nd: no\ne: y\nf: true\ng: false\n", "f.yaml")
    assert data == {"a": "on", "b": "off", "c": "yes", "d": "no", "e": "y", "f": True, "g": False}


def test_yaml_11_numbers_are_not_reinterpreted() -> None:
    """010 is ten and 1:30 is text, not octal eight and sexagesimal ninety."""
    assert parse_yaml("a: 010\nb: 1:30\n", "f.yaml") == {"a": 10, "b": "1:30"}


def test_duplicate_key_is_refused_naming_its_line() -> None:
    """A key repeated in one mapping is an error on the repeated key's line, not a silent override."""
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("id: a\nkind: any\nid: b\n", "r.yaml")
    assert caught.value.line == 3
    assert str(caught.value).startswith("r.yaml: line 3, column 1: not valid YAML: duplicate key 'id'")


def test_nested_duplicate_key_is_refused() -> None:
    """Duplicates inside a list item's mapping are refused too."""
    with pytest.raises(YamlSyntaxError, match=r"line 4, column 5: .*duplicate key 'kind'"):
        parse_yaml("rules:\n  - id: a\n    kind: any\n    kind: threshold\n", "r.yaml")


def test_missing_colon_names_the_line_of_the_key() -> None:
    """A key without its colon is reported on its own line, not on the line where the scanner gave up."""
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("rules:\n  - id: a\n    kind threshold\n    window: 1h\n", "r.yaml")
    assert caught.value.line == 3
    assert "line 3, column 5: not valid YAML: could not find expected ':'" in str(caught.value)
    assert "noticed at line 4" in str(caught.value)


def test_unclosed_quote_names_the_line_where_it_opens() -> None:
    """An unclosed quote is reported where it opens."""
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml('a: 1\nb: "abc\nc: 2\nd: 3\n', "r.yaml")
    assert caught.value.line == 2


def test_bad_indentation_names_the_offending_line() -> None:
    """A key indented out of its block is reported on its own line."""
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("a:\n  b: 1\n c: 2\n", "r.yaml")
    assert caught.value.line == 3


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing file raises ConfigError naming the path."""
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read: No such file"):
        load_yaml_file(tmp_path / "missing.yaml")


def test_a_file_that_is_not_text_is_one_line() -> None:
    """A control character (a binary file given as rules or routes) is one line naming the position, not the
    YAML library's two-line message."""
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("\x00\x01\x02", "r.yaml")
    assert "\n" not in str(caught.value)
    assert "not valid YAML" in str(caught.value)


@pytest.mark.parametrize(
    "text", ["x: " + "[" * 5000 + "]" * 5000, "x:\n" + "".join(" " * i + "- \n" for i in range(0, 6000, 2))]
)
def test_absurdly_deep_nesting_is_one_line_not_a_recursion_error(text: str) -> None:
    """Thousands of nested brackets or list levels overflow the parser's recursion: one clear error."""
    with pytest.raises(YamlSyntaxError, match="nested too deeply"):
        parse_yaml(text, "deep.yaml")


@pytest.mark.parametrize(
    "line",
    [
        "title: {{ account.name }}",
        "title: {{ account.name }}: onboarding stalled",
        "channel: {{ account.owner.slack }}",
        "summary: {{ evidence.value|number }} errors in {{ evidence.window }}",
    ],
)
def test_an_unquoted_template_says_to_quote_it(line: str) -> None:
    """A template written without quotes (the most common slip in a rule or routing file) is read by YAML
    as a mapping; the error says to quote it instead of only 'found unhashable key'."""
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml(f"id: a\n{line}\nseverity: high\n", "r.yaml")
    message = str(caught.value)
    assert message.startswith("r.yaml: line 2, column ")
    assert message.endswith(
        "; a value that starts with { is read as a YAML mapping: put a template in quotes, e.g. "
        'title: "{{ account.name }}: …"'
    )


def test_a_tab_in_the_indentation_says_to_indent_with_spaces() -> None:
    """YAML forbids tabs for indentation; the error says so in words."""
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("match:\n\tevent: X\n", "r.yaml")
    assert str(caught.value).endswith("; indent with spaces: YAML does not allow tabs there")


def test_a_second_document_says_to_remove_the_separator() -> None:
    """Rules separated by `---` (as in Kubernetes manifests) get what to do, not only the parser's words."""
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("id: a\nkind: any\n---\nid: b\nkind: any\n", "r.yaml")
    message = str(caught.value)
    assert message.startswith("r.yaml: line 3, column 1: not valid YAML: but found another document")
    assert "remove the --- line (a rule file holds several rules as a list under rules:)" in message
    assert "\n" not in message
