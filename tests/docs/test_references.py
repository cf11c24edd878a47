"""What README.md and docs/*.md point a reader at exists: links and their anchors, repository paths,
``make`` targets and the options of ``preempt`` commands (a renamed file, heading or flag is caught here)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from streams.cli.main import main as preempt
from tests.docs.examples import DOCS, REPO

TOP = ("streams", "rules", "alerts", "schemas", "deploy", "tests", "bench", "docs")
# A backticked repository path: the whole code span, or a file name with its extension in running text.
SPAN_PATH = re.compile(rf"`((?:{'|'.join(TOP)})/[\w./-]*)`")
TEXT_PATH = re.compile(rf"(?<![\w`/.-])((?:{'|'.join(TOP)})/[\w/-]+\.(?:py|md|yml|yaml|json|sh|j2|html))\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAKE = re.compile(r"`make ([a-z][\w-]*)")
# `preempt …` in a code span, or after a console prompt.
COMMAND = re.compile(r"(?:^\$ |`)(preempt (?:[^`\\]|\\.)*)")
# Files the docs tell the reader to create (never in the repository).
CREATED_BY_THE_READER = {"deploy/preempt.env"}
# docs/architecture.md's last section records the module map before the re-layout, on purpose.
HISTORY = "## Module map before and after"


def _docs() -> Iterator[tuple[Path, int, str]]:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        if doc.name == "architecture.md":
            text = text.split(HISTORY)[0]
        for number, line in enumerate(text.splitlines(), 1):
            yield doc, number, line


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text (lower case, punctuation dropped, spaces → -)."""
    anchors = set()
    for heading in re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def missing_path(path: str) -> bool:
    """Whether ``path`` (a file, a folder, ``pkg/module`` without ``.py`` or ``pkg/module.Name``) is not in the repo."""
    path = path.rstrip(".")
    if path in CREATED_BY_THE_READER or (REPO / path).exists() or (REPO / f"{path}.py").exists():
        return False
    module, _, name = path.rpartition(".")
    return not ((REPO / f"{module}.py").exists() and name.isidentifier())


def broken_link(doc: Path, target: str) -> str | None:
    """Why a relative link of ``doc`` leads nowhere, or None (web links are not followed)."""
    if re.match(r"^[a-z]+:", target):
        return None
    file, _, anchor = target.partition("#")
    linked = (doc.parent / file).resolve() if file else doc
    if not linked.exists():
        return f"no file {file}"
    if anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text(encoding="utf-8")):
        return f"no heading #{anchor} in {linked.relative_to(REPO)}"
    return None


def unknown_options(command_line: str) -> list[str]:
    """The ``--options`` of ``preempt SUB … --opt`` that the subcommand does not take (empty when it names
    no subcommand)."""
    words = command_line.split()[1:]
    command: click.Command = preempt
    ctx = click.Context(preempt)
    named = False
    for word in words:
        if not isinstance(command, click.Group) or not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        sub = command.get_command(ctx, word)
        if sub is None:
            break
        command, named = sub, True
    if not named or isinstance(command, click.Group):
        return []
    known = {"-h", "--help"}.union(*(set(p.opts) | set(p.secondary_opts) for p in command.params))
    return [opt for opt in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", command_line) if opt not in known]


def test_every_link_and_anchor_leads_somewhere() -> None:
    """Each relative link's file exists, and its #anchor is a heading of that file."""
    broken = [
        f"{doc.name}:{n}: {target}: {why}"
        for doc, n, line in _docs()
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line))  # links, not code spans that look like one
        if (why := broken_link(doc, target)) is not None
    ]
    assert broken == []


def test_every_repository_path_named_exists() -> None:
    """Each `streams/…`, `deploy/…`, `docs/…` path (or `pkg/module.Name`) the docs name is in the repository."""
    named = [(doc, n, m) for doc, n, line in _docs() for m in (*SPAN_PATH.findall(line), *TEXT_PATH.findall(line))]
    assert len(named) > 300  # the check reads the docs (they name ~400 paths)
    assert [f"{doc.name}:{n}: {path}" for doc, n, path in named if missing_path(path)] == []


def test_every_make_target_named_exists() -> None:
    """Each `make TARGET` of the docs is a target of the Makefile."""
    targets = set(re.findall(r"^([a-zA-Z_-]+):", (REPO / "Makefile").read_text(encoding="utf-8"), re.MULTILINE))
    unknown = [f"{doc.name}:{n}: make {t}" for doc, n, line in _docs() for t in MAKE.findall(line) if t not in targets]
    assert unknown == []


def test_every_option_of_a_preempt_command_named_exists() -> None:
    """Each `preempt SUB … --option` in the docs is an option of that subcommand."""
    unknown = [
        f"{doc.name}:{n}: {opt} in `{cmd}`"
        for doc, n, line in _docs()
        for cmd in COMMAND.findall(line)
        for opt in unknown_options(cmd)
    ]
    assert unknown == []


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (lambda: missing_path("streams/worker/no_such_module.py"), True),
        (lambda: missing_path("rules/engine.RuleEngine"), False),
        (
            lambda: broken_link(REPO / "README.md", "docs/events.md#no-such-heading"),
            "no heading #no-such-heading in docs/events.md",
        ),
        (lambda: unknown_options("preempt backtest --events e.jsonl --until-time x"), ["--until-time"]),
        (lambda: unknown_options("preempt events validate --help"), []),
    ],
    ids=["missing-file", "module-name", "missing-anchor", "unknown-option", "known-option"],
)
def test_the_checks_catch_drift(check: object, value: object) -> None:
    """A renamed file, a heading that is gone and a flag that is not an option are reported (the checks can fail)."""
    assert callable(check)
    assert check() == value
