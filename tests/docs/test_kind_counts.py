"""The docs' counts of rule kinds are the registry's (a kind added without the docs' count following)."""

from __future__ import annotations

import re

from rules.kinds import REGISTRY
from rules.loader import load_rules
from tests.docs.examples import REPO

NUMBERS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13}


def _count(text: str, pattern: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, pattern
    return NUMBERS[found["n"]]


def test_the_rule_reference_counts_every_registered_kind() -> None:
    """README.md and docs/rules.md say how many kinds there are: as many as rules/kinds registers."""
    assert _count((REPO / "README.md").read_text(), r"all (?P<n>\w+) kinds") == len(REGISTRY)
    assert _count((REPO / "docs" / "rules.md").read_text(), r"one of the (?P<n>\w+) \[kinds\]") == len(REGISTRY)


def test_the_rule_pack_page_counts_the_kinds_the_pack_uses() -> None:
    """docs/rule-pack.md says how many of how many kinds the default pack covers."""
    text = (REPO / "docs" / "rule-pack.md").read_text()
    used = {rule.kind for rule in load_rules(REPO / "rules" / "packs" / "default").rules}
    assert _count(text, r"covering (?P<n>\w+) of the") == len(used)
    assert _count(text, r"covering \w+ of the (?P<n>\w+) kinds") == len(REGISTRY)
