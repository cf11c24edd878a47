"""Counts people read are written in the right number ("1 alert", "3 alerts"), never "alert(s)"."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from schemas.formatting import plural

REPO = Path(__file__).resolve().parents[3]
PLURAL_MARKER = re.compile(r"[A-Za-z]\(s\)")  # "alert(s)"; "http(s)" is a scheme, not a count
NOT_A_COUNT = ("http(s)",)


def test_plural_says_one_and_many() -> None:
    """One is singular, zero and many are plural; an irregular plural is given."""
    assert [plural(n, "dead letter") for n in (0, 1, 2)] == ["0 dead letters", "1 dead letter", "2 dead letters"]
    assert plural(3, "criterion", "criteria") == "3 criteria"


def _user_facing_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of ``path`` that are not docstrings (f-string parts included)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_output_writes_a_count_with_a_plural_marker() -> None:
    """No string of streams/, alerts/, rules/ or schemas/ (messages, help, errors, log lines) says "(s)": before,
    "1 dead letter(s) shown", "replayed 2 alert(s)", "the cluster has 1 broker(s)"."""
    found = []
    for package in ("streams", "alerts", "rules", "schemas"):
        for path in sorted((REPO / package).rglob("*.py")):
            for line, text in _user_facing_strings(path):
                for word in NOT_A_COUNT:
                    text = text.replace(word, "")
                if PLURAL_MARKER.search(text):
                    found.append(f"{path.relative_to(REPO)}:{line}: {text.strip()[:80]}")
    assert found == []
