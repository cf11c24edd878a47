"""docs/architecture.md's generated parts match the code (see tests/docs/architecture.py)."""

from __future__ import annotations

from tests.docs import architecture


def test_the_module_map_and_import_rules_match_the_code() -> None:
    """The module map (package docstrings and modules) and the import rules (pyproject) are current."""
    text = architecture.DOC.read_text(encoding="utf-8")
    blocks = architecture.blocks_in(text)
    assert set(blocks) == set(architecture.BLOCKS), "a generated block's markers are missing"
    assert blocks["module-map"] == architecture.module_map(), "module map drifted: run make docs"
    assert blocks["import-rules"] == architecture.import_rules(), "import rules drifted: run make docs"


def test_every_package_says_what_it_holds() -> None:
    """Every package under schemas/ rules/ streams/ alerts/ has a docstring (its row in the map)."""
    rows = architecture.module_map().splitlines()[2:]
    empty = [row.split("|")[1].strip() for row in rows if row.split("|")[2].strip() == ""]
    assert empty == []


def test_the_map_names_every_module_of_the_tree() -> None:
    """A module added on disk shows up in the regenerated map (the check can fail)."""
    probe = architecture.REPO / "streams" / "worker" / "zz_probe_module.py"
    probe.write_text('"""probe"""\n', encoding="utf-8")
    try:
        assert "zz_probe_module" in architecture.module_map()
    finally:
        probe.unlink()


def test_every_module_and_name_the_doc_cites_exists() -> None:
    """Each ``pkg/…/module.py`` and ``pkg/…/module.Name`` in docs/architecture.md names real code
    (all but the last section, which records the modules as they were before the re-layout)."""
    import importlib
    import re

    text = architecture.DOC.read_text(encoding="utf-8").split("## Module map before and after")[0]
    missing = []
    for path, name in re.findall(r"\b((?:schemas|rules|streams|alerts)/[\w/]+?)(?:\.py|\.(\w+))\b", text):
        if not (architecture.REPO / f"{path}.py").exists() and not (architecture.REPO / path).is_dir():
            missing.append(path)
        elif name and (architecture.REPO / f"{path}.py").exists():
            module = importlib.import_module(path.replace("/", "."))
            if not hasattr(module, name):
                missing.append(f"{path}.{name}")
    assert missing == []


def test_every_path_a_docstring_names_exists() -> None:
    """A path our docstrings quote (```streams/cli```, ```rules/clock.py```) is a real folder or file: the
    docstrings are the newcomer's map (the ``preempt`` command's named ``streams/commands`` after the re-layout)."""
    import ast
    import re

    quoted = re.compile(r"`+((?:schemas|rules|streams|alerts|tests|bench|deploy|docs)/[\w/.-]*?)`+")
    checked, missing = 0, []
    for top in architecture.PACKAGES:
        for module in sorted((architecture.REPO / top).rglob("*.py")):
            tree = ast.parse(module.read_text(encoding="utf-8"))
            nodes = (
                n
                for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            )
            for doc in filter(None, (ast.get_docstring(n) for n in nodes)):
                for ref in quoted.findall(doc):
                    checked += 1
                    path = architecture.REPO / ref.rstrip("/")
                    if not path.exists() and not path.with_name(path.name + ".py").exists():
                        missing.append(f"{module.relative_to(architecture.REPO)}: {ref}")
    assert checked > 10
    assert missing == []
