"""The loader: golden good files load; every golden bad file fails naming its file, rule and field."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from rules.loader import load_rules
from schemas.errors import RuleConfigError

GOLDEN = Path(__file__).parent / "golden"
BAD = sorted((GOLDEN / "bad").iterdir())
GOOD = sorted((GOLDEN / "good").iterdir())


def _expectations(entry: Path) -> dict[str, str]:
    files = sorted(entry.rglob("*.yaml")) if entry.is_dir() else [entry]
    found: dict[str, str] = {}
    for file in files:
        for line in file.read_text().splitlines():
            match = re.match(r"# expect-(rule|field|message): (.*)$", line)
            if match:
                found[match.group(1)] = match.group(2).strip()
    return found


@pytest.mark.parametrize("entry", BAD, ids=[p.name for p in BAD])
def test_bad_rule_file_error_names_file_rule_and_field(entry: Path):
    """Each bad golden file is rejected with a message naming the file, the rule id and the field."""
    expected = _expectations(entry)
    assert set(expected) == {"rule", "field", "message"}, f"{entry} lacks expect- comments"
    with pytest.raises(RuleConfigError) as caught:
        load_rules(entry)
    message = str(caught.value)
    rule = expected["rule"]
    rule_needle = f"rule {rule}" if rule.startswith(("(", "#")) else f"rule {rule!r}"
    matching = [
        line
        for line in message.splitlines()
        if str(entry) in line and rule_needle in line and f"field {expected['field']!r}" in line
    ]
    assert matching, message
    assert expected["message"] in message


@pytest.mark.parametrize("entry", GOOD, ids=[p.name for p in GOOD])
def test_good_rule_files_load(entry: Path):
    """Each good golden file (or directory) loads without error."""
    ruleset = load_rules(entry)
    assert ruleset.rules
    assert all(
        ruleset.sources[rule.id].is_relative_to(entry) or ruleset.sources[rule.id] == entry for rule in ruleset.rules
    )


def test_every_kind_file_covers_every_kind():
    """The every-kind golden file really holds one rule of each kind."""
    from rules.models import KINDS

    assert sorted(rule.kind for rule in load_rules(GOLDEN / "good" / "every_kind.yaml").rules) == sorted(KINDS)


def test_directory_loads_recursively_in_path_order():
    """A directory is read recursively, files in sorted order, rules in file order."""
    ruleset = load_rules(GOLDEN / "good" / "pack_dir")
    assert [rule.id for rule in ruleset.rules] == ["payment-not-recovered", "cancel-page", "export-volume"]
    assert [rule.id for rule in ruleset.enabled] == ["payment-not-recovered", "export-volume"]


def test_a_kubernetes_configmap_volume_loads_each_rule_once(tmp_path: Path):
    """A ConfigMap volume's layout (files linked through ..data to a ..<timestamp> folder) loads each rule once;
    hidden files (editor backups) are skipped."""
    source = GOLDEN / "good" / "pack_dir"
    files = sorted(p for p in source.rglob("*") if p.is_file())
    mount = tmp_path / "rules"
    snapshot = mount / "..2026_11_30_10_00_00.000000001"
    snapshot.mkdir(parents=True)
    for file in files:
        (snapshot / file.name).write_bytes(file.read_bytes())
        (mount / file.name).symlink_to(Path("..data") / file.name)
    (mount / "..data").symlink_to(snapshot.name)
    (mount / ".backup.yaml").write_bytes(files[0].read_bytes())
    ruleset = load_rules(mount)
    assert sorted(rule.id for rule in ruleset.rules) == ["cancel-page", "export-volume", "payment-not-recovered"]
    assert {path.parent for path in ruleset.sources.values()} == {mount}


def test_a_directory_reads_rule_files_whatever_the_case_of_their_suffix(tmp_path: Path):
    """``Churn.YAML`` and ``nps.Yml`` in a rules folder are rule files too (a Windows or macOS export),
    not silently skipped beside the lowercase ones; other suffixes still are."""
    rule = "id: {id}\nkind: any\ntitle: t\nseverity: low\npriority: 1\nmatch: {{event: X}}\n"
    (tmp_path / "a.yaml").write_text(rule.format(id="lower"), encoding="utf-8")
    (tmp_path / "Churn.YAML").write_text(rule.format(id="upper"), encoding="utf-8")
    (tmp_path / "nps.Yml").write_text(rule.format(id="mixed"), encoding="utf-8")
    (tmp_path / "notes.txt").write_text(rule.format(id="not-a-rule-file"), encoding="utf-8")
    assert sorted(rule.id for rule in load_rules(tmp_path).rules) == ["lower", "mixed", "upper"]


def test_all_errors_of_all_files_are_reported_together():
    """Loading the whole bad directory reports a problem for every file at once."""
    with pytest.raises(RuleConfigError) as caught:
        load_rules(GOLDEN / "bad")
    message = str(caught.value)
    for entry in BAD:
        if entry.is_file():
            assert str(entry) in message


def test_missing_path_is_a_clear_error(tmp_path: Path):
    """A path that does not exist is named in the error."""
    with pytest.raises(RuleConfigError, match="no such rule file"):
        load_rules(tmp_path / "nope")


def test_stack_ranking_orders_by_priority_then_severity():
    """Rules rank by priority, then severity (critical first), then id."""
    ranked = load_rules(GOLDEN / "good" / "every_kind.yaml").stack_ranked()
    keys = [(rule.priority, rule.severity) for rule in ranked]
    assert keys[0] == (1, "critical")
    assert [r.priority for r in ranked] == sorted(r.priority for r in ranked)


def test_every_error_is_reported_in_one_pass(tmp_path: Path):
    """Field errors and cross-rule errors come out together: fixing the first reveals nothing new."""
    (tmp_path / "rules.yaml").write_text(
        """
rules:
  - {id: quiet, kind: inactivity, title: t, severity: loud, priority: 1, after: 1d, enabled: false}
  - {id: spike, kind: threshold, title: t, severity: high, priority: 0, window: 1h, min: 3, match: {event: E}}
  - {id: both, kind: composite, title: t, severity: high, priority: 1, all_of: [quiet, spike, nope], within: 1d}
"""
    )
    with pytest.raises(RuleConfigError) as caught:
        load_rules(tmp_path)
    lines = str(caught.value).splitlines()
    assert any("rule 'quiet': field 'severity'" in line for line in lines)
    assert any("rule 'spike': field 'priority'" in line for line in lines)
    assert any("rule 'both': field 'all_of[0]': 'quiet' is disabled" in line for line in lines)
    assert any("rule 'both': field 'all_of[2]': no rule has id 'nope'" in line for line in lines)
    assert not any("no rule has id 'spike'" in line for line in lines)  # it exists, with its own error


def test_duplicate_keys_in_a_rule_are_an_error(tmp_path: Path):
    """A key given twice in a rule is refused on its line instead of the last one silently winning."""
    path = tmp_path / "r.yaml"
    path.write_text("id: a\nkind: any\ntitle: t\nseverity: high\nseverity: low\npriority: 1\nmatch: {}\n")
    with pytest.raises(RuleConfigError, match=r"r.yaml: rule \(unknown\): field '\(file\)': line 5, column 1: .*"):
        load_rules(path)


def test_yes_no_on_off_are_strings_in_rules(tmp_path: Path):
    """`on`/`no` in a where value are matched as the strings a person wrote, not as booleans."""
    path = tmp_path / "r.yaml"
    path.write_text(
        "id: a\nkind: any\ntitle: t\nseverity: high\npriority: 1\n"
        "match: {event: Toggle, where: {properties.state: on, properties.answer: no}}\n"
    )
    [rule] = load_rules(path).rules
    where = rule.match.where
    assert (where["properties.state"].eq, where["properties.answer"].eq) == ("on", "no")


def test_label_values_written_as_numbers_or_booleans_are_their_text(tmp_path: Path):
    """DESIGN.md's "free key/values for routing": `tier: 1`, `page: true`, `sla: 2.5` load as the text
    routes match ("1", "true", "2.5"), as Prometheus reads label maps; a null value is still refused."""
    path = tmp_path / "r.yaml"
    head = "id: a\nkind: any\ntitle: t\nseverity: high\npriority: 1\nmatch: {event: X}\n"
    path.write_text(head + "labels: {team: support, tier: 1, page: true, sla: 2.5}\n")
    [rule] = load_rules(path).rules
    assert rule.labels == {"team": "support", "tier": "1", "page": "true", "sla": "2.5"}
    path.write_text(head + "labels: {owner: null}\n")
    with pytest.raises(RuleConfigError, match=r"field 'labels.owner': expected text, not null"):
        load_rules(path)


def test_a_rules_own_cross_field_error_comes_with_its_field_errors(tmp_path: Path):
    """A misspelt severity and a score window that is not a multiple of `every` are reported together."""
    path = tmp_path / "score.yaml"
    path.write_text(
        "id: s\nkind: score\ntitle: t\nseverity: loud\npriority: 0\nwindow: 10d\nevery: 3d\nbelow: 50\n"
        "components: [{name: a, weight: 1, match: {event: X}, measure: count, target: 5}]\n"
    )
    with pytest.raises(RuleConfigError) as caught:
        load_rules(path)
    lines = str(caught.value).splitlines()
    assert lines == [
        f"{path}: rule 's': field 'severity': expected one of critical, high, medium, low, info, not 'loud'",
        f"{path}: rule 's': field 'priority': must be at least 1, not 0",
        f"{path}: rule 's': field '(rule)': window must be a whole multiple of every, at most 400 of them",
    ]


@pytest.mark.parametrize("kind_line", ["", "kind: thresold\n"], ids=["missing", "misspelt"])
def test_a_missing_or_unknown_kind_comes_with_the_common_fields_errors(tmp_path: Path, kind_line: str):
    """Without a known kind the kind's own fields cannot be checked, but the fields every rule has
    (id, severity, priority, title…) can: they are reported in the same pass as the kind, so fixing
    the kind does not reveal a second list of errors."""
    path = tmp_path / "r.yaml"
    path.write_text(f"id: Bad Id\n{kind_line}severity: loud\npriority: 0\nwindow: 1h\n")
    with pytest.raises(RuleConfigError) as caught:
        load_rules(path)
    fields = re.findall(r"field '([^']+)'", str(caught.value))
    assert fields == ["kind", "id", "title", "severity", "priority"]


def test_no_cross_field_error_is_guessed_when_a_kind_field_is_invalid(tmp_path: Path):
    """When a kind's own field is invalid, its cross-field checks are not run on stand-ins (no false errors)."""
    path = tmp_path / "score.yaml"
    path.write_text(
        "id: s\nkind: score\ntitle: t\nseverity: loud\npriority: 1\nwindow: 10d\nevery: 5d\nbelow: 200\n"
        "components: [{name: a, weight: 1, match: {event: X}, measure: count, target: 5}]\n"
    )
    with pytest.raises(RuleConfigError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert "field 'below'" in message
    assert "give below, drop_points, or both" not in message


@pytest.mark.parametrize(
    ("match", "field", "message"),
    [
        ({"event": 404}, "match.event", "expected a string or a list of strings, not a number"),
        ({"event": ["Login", 7]}, "match.event[1]", "expected text, not 7"),
        ({"event": "X", "where": {"properties.a": {"eq": [1]}}}, "match.where.properties.a.eq", "not a list"),
        ({"event": "X", "where": {"properties.a": {"ne": {"b": 1}}}}, "match.where.properties.a.ne", "not a mapping"),
    ],
)
def test_a_value_of_no_accepted_type_is_one_line_naming_its_field(tmp_path, match, field, message):
    """A value that fits none of the forms a field accepts is one error line naming that field and the
    forms, not one line per form with pydantic's type names (``match.event.str``, ``…list[str]``)."""
    rule = {"id": "r", "kind": "any", "title": "t", "severity": "low", "priority": 1, "match": match}
    (tmp_path / "r.yaml").write_text(orjson.dumps(rule).decode())
    with pytest.raises(RuleConfigError) as caught:
        load_rules(tmp_path)
    (line,) = str(caught.value).splitlines()
    assert line.startswith(f"{tmp_path / 'r.yaml'}: rule 'r': field {field!r}: ")
    assert message in line


def test_a_rule_file_given_as_a_pipe_is_read(tmp_path: Path) -> None:
    """`preempt rules check <(git show HEAD:rules.yaml)` (a /dev/fd pipe: neither file nor folder) loads the rule
    instead of 'no such rule file or directory'."""
    import os
    import threading

    text = b"id: piped\nkind: any\ntitle: t\nseverity: low\npriority: 1\nmatch: {event: Login}\n"
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as out:
            out.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        ruleset = load_rules(Path(f"/dev/fd/{read_end}"))
    finally:
        writer.join(timeout=10)
        os.close(read_end)
    assert [rule.id for rule in ruleset.rules] == ["piped"]


def test_a_broken_link_in_a_rules_folder_is_an_error_not_a_silent_gap(tmp_path: Path):
    """A rule file that is a link to nothing (a half-updated mount) is reported, naming the file and its
    target, instead of its rules silently missing while the others load."""
    (tmp_path / "ok.yaml").write_text(
        "id: ok\nkind: any\ntitle: t\nseverity: low\npriority: 1\nmatch: {event: X}\n", encoding="utf-8"
    )
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing" / "rules.yaml")
    with pytest.raises(RuleConfigError) as caught:
        load_rules(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'gone.yaml'}: rule (unknown): field '(file)': a broken link "
        f"(to {tmp_path / 'missing' / 'rules.yaml'}): fix or remove it"
    )


def test_rule_files_that_cannot_be_looked_at_are_read_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """In a rules folder without the x permission (``chmod -R 644 rules``) every stat of a file fails; the
    listing raised PermissionError (a traceback). The file is listed and read, so reading it reports why; a
    rules path that cannot be looked at at all is one error naming it. (stat is faked: root may look anywhere.)"""
    folder = tmp_path / "rules"
    folder.mkdir()
    rule_file = folder / "a.yaml"
    rule_file.write_text(
        "id: a\nkind: any\ntitle: t\nseverity: low\npriority: 1\nmatch: {event: X}\n", encoding="utf-8"
    )
    real_stat, real_lstat = Path.stat, Path.lstat
    blocked: set[Path] = set()

    def refused(real: Callable[..., os.stat_result]) -> Callable[..., os.stat_result]:
        def stat(self: Path, **kwargs: bool) -> os.stat_result:
            if self in blocked:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, **kwargs)

        return stat

    monkeypatch.setattr(Path, "stat", refused(real_stat))
    monkeypatch.setattr(Path, "lstat", refused(real_lstat))
    blocked.add(rule_file)
    assert [rule.id for rule in load_rules(folder).rules] == ["a"]
    blocked.clear()
    blocked.add(folder)
    with pytest.raises(RuleConfigError) as caught:
        load_rules(folder)
    assert str(caught.value) == f"{folder}: cannot read: Permission denied"


def test_a_rules_folder_that_cannot_be_listed_is_an_error_not_missing_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A sub-folder this user may not list (``chmod 700`` by another user) was passed over by the listing,
    and its rules were missing without a word; it is one error naming the folder. A hidden folder (a
    ConfigMap's ``..data``) is not read anyway. (scandir is faked: root may list anything.)"""
    rule = "id: {id}\nkind: any\ntitle: t\nseverity: low\npriority: 1\nmatch: {{event: X}}\n"
    (tmp_path / "team").mkdir()
    (tmp_path / "a.yaml").write_text(rule.format(id="a"), encoding="utf-8")
    (tmp_path / "team" / "b.yaml").write_text(rule.format(id="b"), encoding="utf-8")
    (tmp_path / ".cache").mkdir()
    real_scandir = os.scandir
    blocked: set[Path] = {tmp_path / ".cache"}

    def scandir(path: Any = ".") -> Any:
        if Path(path) in blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert sorted(rule.id for rule in load_rules(tmp_path).rules) == ["a", "b"]
    blocked.add(tmp_path / "team")
    with pytest.raises(RuleConfigError) as caught:
        load_rules(tmp_path)
    assert str(caught.value) == f"{tmp_path / 'team'}: cannot read this folder of rules: Permission denied"


def test_an_empty_rule_file_is_named_as_empty_not_as_a_folder_without_yaml_files(tmp_path: Path):
    """An empty ``rules.yaml`` said "no rules found in *.yaml or *.yml files", as if it were a folder."""
    empty = tmp_path / "rules.yaml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(RuleConfigError) as caught:
        load_rules(empty)
    assert "*.yaml" not in str(caught.value)
    assert "the file holds no rule (it is empty, only comments" in str(caught.value)


def test_a_rule_file_that_is_not_a_mapping_says_what_it_holds(tmp_path: Path):
    """A file holding a list or a bare word says so, as routing files do ("got a list")."""
    listed = tmp_path / "rules.yaml"
    listed.write_text("- id: a\n", encoding="utf-8")
    with pytest.raises(RuleConfigError, match=r"expected one rule \(a mapping\) or rules: \[\.\.\.\], got a list"):
        load_rules(listed)
