"""The generated parts of docs/architecture.md: the module map and the import rules.

Both are regenerated from the code (the packages' docstrings and modules, and the import-linter
contracts in pyproject.toml) and compared with the doc by ``tests/docs/test_architecture.py``, so
the map cannot drift. ``python -m tests.docs.architecture --write`` (part of ``make docs``)
rewrites them.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
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


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- generated:{name} (python -m tests.docs.architecture --write) -->", f"<!-- end:{name} -->"


def blocks_in(text: str) -> dict[str, str]:
    """The generated blocks as the doc holds them."""
    found = {}
    for name in BLOCKS:
        begin, end = _markers(name)
        if begin in text and end in text:
            found[name] = text.split(begin, 1)[1].split(end, 1)[0].strip("\n")
    return found


def rewrite(text: str) -> str:
    """``text`` with every generated block regenerated."""
    for name, make in BLOCKS.items():
        begin, end = _markers(name)
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = f"{head}{begin}\n{make()}\n{end}{tail}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the generated blocks of docs/architecture.md")
    args = parser.parse_args()
    text = DOC.read_text(encoding="utf-8")
    fresh = rewrite(text)
    if args.write:
        DOC.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != text:
        print("docs/architecture.md has drifted: run python -m tests.docs.architecture --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
