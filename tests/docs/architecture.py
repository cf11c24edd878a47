"""The generated parts of docs/architecture.md: the module map and the import rules.

Both are regenerated from the code (the packages' docstrings and modules, and the import-linter
contracts in pyproject.toml) and compared with the doc by ``tests/docs/test_architecture.py``, so
the map cannot drift. ``python -m tests.docs.architecture --write`` (part of ``make docs``)
rewrites them.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from tests.docs import generated

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
MODULE = "tests.docs.architecture"
PACKAGES = ("schemas", "rules", "streams", "alerts")
BLOCKS = {
    "module-map": lambda: module_map(),
    "import-rules": lambda: import_rules(),
}


def _summary(init: Path) -> str:
    """The first sentence-paragraph of a package's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split()).replace("|", "\\|")


def module_map() -> str:
    """One row per package: what its docstring says it holds, and its modules."""
    rows = ["| package | what it holds | modules |", "|---|---|---|"]
    for top in PACKAGES:
        for init in sorted((REPO / top).rglob("__init__.py")):
            pkg = init.parent
            modules = sorted(p.stem for p in pkg.glob("*.py") if p.name != "__init__.py")
            name = pkg.relative_to(REPO).as_posix() + "/"
            rows.append(f"| `{name}` | {_summary(init)} | {', '.join(modules) or '—'} |")
    return "\n".join(rows)


def import_rules() -> str:
    """The import-linter contracts of pyproject.toml, as a table (``make lint`` enforces them)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    rows = ["| rule | modules | may not import |", "|---|---|---|"]
    for contract in config["contracts"]:
        if contract["type"] == "forbidden":
            source = ", ".join(f"`{m}`" for m in contract["source_modules"])
            forbidden = ", ".join(f"`{m}`" for m in contract["forbidden_modules"])
        else:  # independence
            source = ", ".join(f"`{m}`" for m in contract["modules"])
            forbidden = "each other"
        rows.append(f"| {contract['name']} | {source} | {forbidden} |")
    return "\n".join(rows)


def blocks_in(text: str) -> dict[str, str]:
    """The generated blocks as the doc holds them."""
    return generated.blocks_in(text, BLOCKS, MODULE)


def rewrite(text: str) -> str:
    """``text`` with every generated block regenerated."""
    return generated.rewrite(text, BLOCKS, MODULE)


def main() -> int:
    return generated.main(DOC, BLOCKS, MODULE, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
