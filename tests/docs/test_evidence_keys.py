"""docs/rules.md names every evidence key a kind gives its templates (a key a rule author cannot find)."""

from __future__ import annotations

import re

import pytest

from rules.kinds import REGISTRY
from rules.templates import _SAMPLE_EVIDENCE
from tests.docs.examples import REPO

# Shared by every kind and listed once, in the Templates table of docs/rules.md.
COMMON = {"measure", "value", "threshold", "baseline", "sample_event_ids"}


def _section(text: str, kind: str) -> str:
    found = re.search(rf"^### {kind}\n(.*?)(?=^##)", text, re.MULTILINE | re.DOTALL)
    assert found is not None, f"docs/rules.md has no '### {kind}' section"
    return found[1]


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_each_kind_section_names_the_evidence_keys_its_templates_can_read(kind: str) -> None:
    """A kind's own evidence keys (threshold's `properties`, sequence's `elapsed_seconds`, composite's `rules`
    were missing) appear in its section of the rule reference, as the templates `preempt rules check`
    accepts can read them."""
    section = _section((REPO / "docs" / "rules.md").read_text(), kind)
    own = set(_SAMPLE_EVIDENCE[kind]) - COMMON
    assert {key for key in own if f"`{key}`" not in section} == set()
