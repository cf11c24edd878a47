"""Load rule files: one YAML file or a directory of them, validated into a :class:`RuleSet`.

A file holds one rule (a mapping with ``id`` and ``kind``) or a list under ``rules:``. Every
problem in every file is collected and raised together as one ``RuleConfigError`` whose lines
each name the file, the rule id and the field, e.g.::

    rules/packs/default/errors.yaml: rule 'api-error-spike': field 'window': '10mo' is not a duration …
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from rules.models import KINDS, RULE_ID_PATTERN, CompositeRule, RiskRule, Rule, RuleBase
from rules.risk.model import RiskModelError, load_risk_model
from schemas.alert import SEVERITY_ORDER
from schemas.config_yaml import YamlSyntaxError, load_yaml_file
from schemas.error_text import kind_of, plain_message, unreadable
from schemas.errors import ConfigError, RuleConfigError

_RULE = TypeAdapter[RuleBase](Rule)
RULE_FILE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Validated rules, in load order, with the file each came from."""

    rules: tuple[RuleBase, ...]
    sources: dict[str, Path] = field(default_factory=dict)

    @property
    def enabled(self) -> tuple[RuleBase, ...]:
        """The rules the engine evaluates."""
        return tuple(rule for rule in self.rules if rule.enabled)

    def by_id(self, rule_id: str) -> RuleBase:
        """The rule with this id; ``KeyError`` if there is none."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def stack_ranked(self) -> list[RuleBase]:
        """Rules by priority (1 first), then severity (critical first), then id."""
        return sorted(self.rules, key=lambda r: (r.priority, SEVERITY_ORDER[r.severity], r.id))


def _hidden(path: Path, root: Path) -> bool:
    """A name starting with a dot below ``root``: an editor's backup, ``.git``, or the ``..data`` and
    ``..<timestamp>`` folders of a Kubernetes ConfigMap volume, which hold the same files again."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _rule_files(path: Path) -> list[Path]:
    """The rule files under ``path``; a rule file's name that leads nowhere (a broken link) is listed too,
    so that reading it reports it instead of its rules missing silently."""
    try:
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in RULE_FILE_SUFFIXES and _listed(p) and not _hidden(p, path)
            )
            _check_folders_readable(path)
            return files
        if path.is_file() or path.exists():  # exists: a pipe too (`preempt rules check <(git show HEAD:rules.yaml)`)
            return [path]
    except OSError as exc:  # a folder on the way that this user may not enter
        raise RuleConfigError(f"{path}: cannot read: {unreadable(exc)}") from None
    raise RuleConfigError(f"{path}: no such rule file or directory")


def _check_folders_readable(root: Path) -> None:
    """``rglob`` passes over a folder it may not list (``chmod 700`` by another user), and its rules
    would be missing without a word: the first such folder (not a hidden one) is an error naming it."""
    errors: list[OSError] = []
    for _ in os.walk(root, onerror=errors.append):
        pass
    for error in errors:
        folder = Path(error.filename) if error.filename else root
        if folder == root or not _hidden(folder, root):
            raise RuleConfigError(f"{folder}: cannot read this folder of rules: {unreadable(error)}")


def _listed(path: Path) -> bool:
    """A file, or a name that leads nowhere (a broken link), or one that cannot even be looked at: in a
    folder without the x permission (``chmod -R 644 rules``) ``is_file`` raised PermissionError, a
    traceback; listed, reading it reports "cannot read: Permission denied" with the file's name."""
    try:
        return path.is_file() or _broken_link(path)
    except OSError:
        return True


def _broken_link(path: Path) -> bool:
    """A symbolic link to nothing; False when the name cannot be looked at (reading it says why)."""
    try:
        return path.is_symlink() and not path.exists()
    except OSError:
        return False


def _field_name(loc: tuple[int | str, ...], kind: object) -> str:
    parts = list(loc)
    if parts and isinstance(kind, str) and parts[0] == kind:
        parts = parts[1:]  # the discriminated union puts the kind tag first
    text = ""
    for part in parts:
        if part == "[key]":  # pydantic's marker for a bad dict key; the key itself is already named
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(rule)"


def _describe(index: int | None, raw: object) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return f"rule {raw['id']!r}"
    return "rule #1 (no id)" if index is None else f"rule #{index + 1} (no id)"


_UNION_BRANCHES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true/false",
    "list[str]": "a list of strings",
}
"""pydantic's names for the members of the unions in rule models (``event: str | list[str]``, ``gte:
float | str``, ``eq: str | int | float | bool | None``), which it puts in an error's location."""


def _union_branch(loc: tuple[int | str, ...]) -> int | None:
    """The position of a union member's name in ``loc`` (the last one), None when there is none."""
    for position in range(len(loc) - 1, 0, -1):
        if loc[position] in _UNION_BRANCHES:
            return position
    return None


def _merge_union_branches(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """One error per value that matched no member of its union, instead of one per member.

    pydantic reports ``event: 5`` as "field 'match.event.str': Input should be a valid string" and
    "field 'match.event.list[str]': Input should be a valid list". When a member got further (an
    element of a list), its errors are the ones meant; otherwise the value's field gets one error
    naming every accepted form ("expected a string or a list of strings"). Order is kept.
    """
    groups: dict[tuple[int | str, ...], list[tuple[int, ErrorDetails]]] = {}
    order: list[ErrorDetails | tuple[int | str, ...]] = []
    for error in errors:
        loc = tuple(error["loc"])
        branch = _union_branch(loc)
        if branch is None:
            order.append(error)
            continue
        if loc[:branch] not in groups:
            order.append(loc[:branch])
        groups.setdefault(loc[:branch], []).append((branch, error))
    merged: list[ErrorDetails] = []
    for item in order:
        if not isinstance(item, tuple):
            merged.append(item)
            continue
        members = groups[item]
        deeper = [
            ErrorDetails(type=e["type"], loc=(*item, *e["loc"][b + 1 :]), msg=e["msg"], input=e["input"])
            for b, e in members
            if len(e["loc"]) > b + 1
        ]
        if deeper:
            merged.extend(deeper)
            continue
        tags = {str(e["loc"][b]) for b, e in members}
        if "float" in tags:
            tags.discard("int")  # "a number" covers both
        forms = [text for tag, text in _UNION_BRANCHES.items() if tag in tags]
        expected = forms[0] if len(forms) == 1 else f"{', '.join(forms[:-1])} or {forms[-1]}"
        value = members[0][1]["input"]
        hint = ' (write dates and times in quotes: "2026-11-01")' if isinstance(value, date) else ""
        message = f"expected {expected}, not {kind_of(value)}{hint}"
        merged.append(ErrorDetails(type="union_mismatch", loc=item, msg=message, input=value))
    return merged


def _validation_lines(file: Path, who: str, raw: object, errors: list[ErrorDetails]) -> Iterator[str]:
    kind = raw.get("kind") if isinstance(raw, dict) else None
    for error in _merge_union_branches(errors):
        message = plain_message(error)
        where = _field_name(tuple(error["loc"]), kind)
        if error["type"] == "union_tag_not_found":
            where, message = "kind", "missing: every rule needs a kind"
        elif error["type"] == "union_tag_invalid":
            where, message = "kind", f"unknown kind {kind!r}; use one of {', '.join(KINDS)}"
        elif error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see docs/rules.md)"
        elif error["type"] == "missing":
            message = "missing: this field is required"
        elif error["type"] == "bool_type":
            message = f"expected true or false, not {error['input']!r}"
            if isinstance(error["input"], str):
                message += " (YAML 1.2 reads yes, no, on and off as strings)"
        elif error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == RULE_ID_PATTERN:
            message = f"{error['input']!r} is not a rule id: use lowercase letters, digits and '-' (e.g. 'churn-risk')"
        yield f"{file}: {who}: field {where!r}: {message}"


# Valid stand-ins for the fields every kind shares. The kinds' own cross-field checks (score's
# window/every, composite's all_of…) never read these, so substituting them is exact.
_COMMON_PLACEHOLDERS: dict[str, object] = {
    "id": "placeholder",
    "title": "placeholder",
    "description": "",
    "severity": "info",
    "priority": 1,
    "cooldown": None,
    "playbook": "",
    "labels": {},
    "enabled": True,
}


def _top_field(loc: tuple[int | str, ...], kind: object) -> int | str | None:
    parts = loc[1:] if loc and isinstance(kind, str) and loc[0] == kind else loc
    return parts[0] if parts else None


def _cross_field_lines(file: Path, who: str, raw: dict[Any, Any], exc: ValidationError) -> list[str]:
    """The rule's own cross-field errors, which pydantic skips while any field is invalid.

    When only common fields (severity, priority, title…) failed, validate again with valid
    stand-ins for them and keep the rule-level errors of that second run, so one pass reports
    e.g. a misspelt severity and a score window that is not a multiple of ``every`` together.
    """
    kind = raw.get("kind")
    failed = {_top_field(tuple(error["loc"]), kind) for error in exc.errors()}
    if None in failed or not failed <= set(_COMMON_PLACEHOLDERS):
        return []
    patched = {**raw, **{str(name): _COMMON_PLACEHOLDERS[str(name)] for name in failed}}
    try:
        _RULE.validate_python(patched)
    except ValidationError as second:
        rule_level = [e for e in second.errors() if _top_field(tuple(e["loc"]), kind) is None]
        return list(_validation_lines(file, who, raw, rule_level))
    return []


def _common_field_lines(file: Path, who: str, raw: dict[Any, Any], exc: ValidationError) -> list[str]:
    """The errors of the fields every rule has, when the kind is missing or unknown.

    pydantic stops at the kind tag then, so a rule with no kind and a misspelt severity reported only
    the kind, and the severity only once the kind was fixed. The common fields are checked on their
    own here (the kind's own fields cannot be: which ones it has depends on the kind).
    """
    if not any(error["type"] in ("union_tag_not_found", "union_tag_invalid") for error in exc.errors()):
        return []
    common = {key: value for key, value in raw.items() if key in RuleBase.model_fields}
    try:
        RuleBase.model_validate({**common, "kind": "placeholder"})
    except ValidationError as second:
        return list(_validation_lines(file, who, raw, second.errors()))
    return []


def _raw_rules(file: Path, errors: list[str]) -> list[tuple[int | None, object]]:
    if _broken_link(file):
        errors.append(f"{file}: rule (unknown): field '(file)': a broken link (to {file.readlink()}): fix or remove it")
        return []
    try:
        data = load_yaml_file(file)
    except YamlSyntaxError as exc:
        # "FILE: line N, column C: not valid YAML: …" → keep the loader's "file: rule: field:" shape.
        detail = str(exc).removeprefix(f"{file}: ")
        errors.append(f"{file}: rule (unknown): field '(file)': {detail}")
        return []
    except ConfigError as exc:
        errors.append(f"{file}: rule (unknown): field '(file)': {str(exc).removeprefix(f'{file}: ')}")
        return []
    if data is None:
        return []
    if isinstance(data, dict) and set(data) == {"rules"}:
        if not isinstance(data["rules"], list):
            errors.append(f"{file}: rule (unknown): field 'rules': must be a list of rules")
            return []
        return list(enumerate(data["rules"]))
    if isinstance(data, dict) and "rules" in data:
        extra = ", ".join(sorted(str(k) for k in data if k != "rules"))
        errors.append(f"{file}: rule (unknown): field {extra!r}: a file with rules: holds nothing else")
        return []
    if isinstance(data, dict):
        return [(None, data)]
    errors.append(
        f"{file}: rule (unknown): field '(file)': expected one rule (a mapping) or rules: [...], got {kind_of(data)}"
    )
    return []


@dataclass(frozen=True, slots=True)
class _Target:
    """What a composite needs to know of a rule it names: parsed, or only raw (it failed to load)."""

    composite: bool
    enabled: bool


def _target_of(rule: RuleBase) -> _Target:
    return _Target(isinstance(rule, CompositeRule), rule.enabled)


def _raw_target(raw: dict[Any, Any]) -> _Target:
    return _Target(raw.get("kind") == "composite", raw.get("enabled", True) is not False)


def _check_references(
    rules: list[RuleBase], sources: dict[str, Path], failed: dict[str, _Target], errors: list[str]
) -> None:
    """Cross-rule checks, run in the same pass as the field checks: on the rules that parsed, and
    against what the raw data of the ones that did not still says (their id, kind and enabled)."""
    by_id = {rule.id: _target_of(rule) for rule in rules}
    for rule in rules:
        if not isinstance(rule, CompositeRule):
            continue
        for index, ref in enumerate(rule.all_of):
            where = f"{sources[rule.id]}: rule {rule.id!r}: field 'all_of[{index}]'"
            target = by_id.get(ref) or failed.get(ref)
            if target is None:
                errors.append(f"{where}: no rule has id {ref!r}")
            elif target.composite:
                errors.append(f"{where}: {ref!r} is a composite; a composite combines non-composite rules")
            elif rule.enabled and not target.enabled:
                errors.append(f"{where}: {ref!r} is disabled, so this composite could never fire")


def load_rules(path: Path) -> RuleSet:
    """Load and validate every rule under ``path`` (a file or a directory, ``*.yaml``/``*.yml``).

    Raises ``RuleConfigError`` listing every problem, one per line, each naming file, rule and field.
    """
    path = Path(path)
    errors: list[str] = []
    rules: list[RuleBase] = []
    sources: dict[str, Path] = {}
    failed: dict[str, _Target] = {}
    for file in _rule_files(path):
        for index, raw in _raw_rules(file, errors):
            who = _describe(index, raw)
            if not isinstance(raw, dict):
                errors.append(f"{file}: {who}: field '(rule)': a rule is a mapping, not {kind_of(raw)}")
                continue
            try:
                rule = _RULE.validate_python(raw)
            except ValidationError as exc:
                errors.extend(_validation_lines(file, who, raw, exc.errors()))
                errors.extend(_cross_field_lines(file, who, raw, exc))
                errors.extend(_common_field_lines(file, who, raw, exc))
                if isinstance(raw.get("id"), str):
                    failed.setdefault(raw["id"], _raw_target(raw))
                continue
            if isinstance(rule, RiskRule):
                try:
                    rule.attach_model(load_risk_model(file.parent / rule.model))
                except RiskModelError as exc:
                    errors.append(f"{file}: {who}: field 'model': {exc}")
                    continue
            if rule.id in sources:
                errors.append(f"{file}: {who}: field 'id': duplicate id; already defined in {sources[rule.id]}")
                continue
            sources[rule.id] = file
            rules.append(rule)
    _check_references(rules, sources, failed, errors)
    if not rules and not errors:
        errors.append(
            f"{path}: rule (none): field '(path)': "
            + (
                "no rules found in *.yaml or *.yml files"
                if path.is_dir()
                else "the file holds no rule (it is empty, only comments, or an empty rules: list); "
                "write one rule, or a list under rules:"
            )
        )
    if errors:
        raise RuleConfigError("\n".join(errors), loaded=RuleSet(tuple(rules), sources))
    return RuleSet(tuple(rules), sources)


def parse_rule(data: dict[str, Any]) -> RuleBase:
    """Validate one rule from a mapping (tests, programmatic use); raises ``ValidationError``."""
    return _RULE.validate_python(data)
