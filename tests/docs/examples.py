"""Executable documentation: the ```console examples of README.md and docs/*.md, run and compared.

The convention (also described in docs/rules.md, "Examples in these docs are tested"):

* A fenced block whose info string is ``console`` is an example. Each line starting with ``$ ``
  is a command (a trailing ``\\`` continues it on the next line); the lines after it, up to the
  next command or the end of the block, are its expected output: stdout and stderr together, as a
  terminal shows them.
* A command ending in ``# exit N`` must exit with N; any other command must exit 0.
* In expected output, ``…`` inside a line matches any text (ids, timings, paths); a line that is
  only ``...`` or ``…`` matches any number of lines (an elided part of a long output).
* The blocks of one file run in order, in one scratch folder that sees the repository's top-level
  folders (``rules/``, ``deploy/``, ``docs/``…), so an example may use files an earlier one wrote.
  Commands run with bash, ``preempt`` from this virtualenv, and no ``PREEMPT_*`` variables.
* A block that needs a Kafka broker and nothing else is preceded by ``<!-- docs-test: broker -->``:
  the offline run leaves it out, and ``tests/integration/test_docs_broker_examples.py`` runs it
  against the test broker (``PREEMPT_BROKER`` set, topics under a prefix of the test's own, shown
  in the output as the default ``preempt.``); ``python -m tests.docs.examples --broker HOST:PORT``
  runs (and with ``--write`` refreshes) these blocks too.
* A block that cannot run even so (it needs a running server, or prints something new each time)
  is preceded by ``<!-- docs-test: skip: <reason> -->``; the reason is required.
* A command with a ``$ `` prompt in a block of any other language is an error: it shows output
  that nothing checks.

``tests/docs/test_examples.py`` runs every example (``make test``); ``make docs`` runs them and
rewrites the expected output of every example that no longer matches (``python -m tests.docs.examples
--write``), for a person to review in ``git diff``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
SKIP = re.compile(r"^<!--\s*docs-test:\s*skip:\s*(?P<reason>\S.*?)\s*-->$")
NEEDS_BROKER = re.compile(r"^<!--\s*docs-test:\s*broker\s*-->$")
DEFAULT_PREFIX = "preempt"  # the topic prefix the docs show (PREEMPT_TOPIC_PREFIX's default)
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+)\s*(?P<info>[\w+-]*)")
EXIT = re.compile(r"#\s*exit\s+(?P<code>\d+)\s*$")
ELLIPSIS_LINES = {"...", "…"}
COMMAND_TIMEOUT_S = 300.0


@dataclass
class Command:
    """One ``$`` command of an example and the output the doc says it prints."""

    line: int  # 1-based line of the ``$`` in the doc
    text: str
    expected: list[str]
    output_start: int  # 0-based index of the first expected-output line in the file
    output_end: int  # 0-based index one past the last
    indent: str = ""  # the block's indentation (a block inside a list item), added back on rewrite

    @property
    def exit_code(self) -> int:
        """The exit code the doc promises: ``# exit N`` on the command, else 0."""
        found = EXIT.search(self.text)
        return int(found["code"]) if found else 0


@dataclass
class Block:
    """A fenced example: its commands, or why it is skipped."""

    path: Path
    line: int
    info: str
    skip: str | None
    needs_broker: bool = False
    commands: list[Command] = field(default_factory=list)


@dataclass(frozen=True)
class Broker:
    """Where ``<!-- docs-test: broker -->`` blocks run: a broker address and a topic prefix of their own."""

    address: str
    topic_prefix: str


@dataclass
class Outcome:
    """What running one command gave, and whether it matched the doc."""

    command: Command
    output: list[str]
    exit_code: int

    @property
    def ok(self) -> bool:
        """True when the exit code and the output match the doc."""
        return self.exit_code == self.command.exit_code and output_matches(self.command.expected, self.output)


def parse(path: Path) -> list[Block]:
    """Every fenced block of ``path`` that holds ``$`` commands, or is a console block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        indent, fence, info = opened["indent"], opened["fence"], opened["info"]
        marker = lines[index - 1].strip() if index > 0 else ""
        skip_match = SKIP.match(marker)
        block = Block(
            path, index + 1, info, skip_match["reason"] if skip_match else None, NEEDS_BROKER.match(marker) is not None
        )
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = [line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines[:end]]
        _commands(body, index + 1, end, block, indent)
        if info == "console" or block.commands:
            blocks.append(block)
        index = end + 1
    return blocks


def _commands(lines: list[str], start: int, end: int, block: Block, indent: str) -> None:
    at = start
    while at < end:
        if not lines[at].startswith("$ "):
            at += 1
            continue
        first = at
        text = lines[at][2:]
        while text.endswith("\\") and at + 1 < end:
            at += 1
            text += "\n" + lines[at]
        out_start = at + 1
        out_end = out_start
        while out_end < end and not lines[out_end].startswith("$ "):
            out_end += 1
        block.commands.append(Command(first + 1, text, lines[out_start:out_end], out_start, out_end, indent))
        at = out_end


def _line_pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in expected.split("…")), re.DOTALL)


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line match with ``…`` wildcards; trailing blank lines and spaces do not count."""
    want = _trim([line.rstrip() for line in expected])
    got = _trim([line.rstrip() for line in actual])
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(want):
            result = j == len(got)
        elif want[i].strip() in ELLIPSIS_LINES:
            result = any(match(i + 1, k) for k in range(j, len(got) + 1))
        else:
            result = j < len(got) and _line_pattern(want[i]).fullmatch(got[j]) is not None and match(i + 1, j + 1)
        memo[(i, j)] = result
        return result

    return match(0, 0)


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines.pop()
    return lines


def scratch_folder() -> Path:
    """A temporary folder whose top-level entries link to the repository's (outputs land in it)."""
    folder = Path(tempfile.mkdtemp(prefix="preempt-docs-"))
    for entry in REPO.iterdir():
        if not entry.name.startswith(".") and entry.name not in {"build", "preempt.egg-info"}:
            (folder / entry.name).symlink_to(entry)
    return folder


def environment() -> dict[str, str]:
    """The process environment without PREEMPT_* settings, with this virtualenv's ``preempt`` first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREEMPT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleave as on a terminal
    env["TZ"] = "UTC"
    env.pop("COLUMNS", None)
    return env


def run_file(path: Path, broker: Broker | None = None) -> list[Outcome]:
    """Run every offline example of ``path`` in order in one scratch folder; with ``broker``, its
    ``<!-- docs-test: broker -->`` examples instead, against that broker."""
    folder = scratch_folder()
    env = environment()
    if broker is not None:
        env |= {"PREEMPT_BROKER": broker.address, "PREEMPT_TOPIC_PREFIX": broker.topic_prefix}
    outcomes: list[Outcome] = []
    try:
        for block in parse(path):
            if block.skip is not None or block.info != "console" or block.needs_broker != (broker is not None):
                continue
            for command in block.commands:
                done = subprocess.run(
                    ["/bin/bash", "-c", command.text],
                    cwd=folder,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=COMMAND_TIMEOUT_S,
                    check=False,
                )
                output = done.stdout.decode("utf-8", "replace").splitlines()
                if broker is not None:  # the docs show the default prefix's topic names
                    output = [line.replace(f"{broker.topic_prefix}.", f"{DEFAULT_PREFIX}.") for line in output]
                outcomes.append(Outcome(command, output, done.returncode))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return outcomes


def problems_without_running(path: Path) -> list[str]:
    """Commands shown with output that no test checks: ``$`` lines outside console blocks."""
    return [
        f"{path.relative_to(REPO)}:{block.line}: a ```{block.info or '(plain)'} block shows `$ ` commands; "
        "make it a ```console block (executed by the docs test) or drop the prompts"
        for block in parse(path)
        if block.info != "console"
    ]


def describe(outcome: Outcome) -> str:
    """A readable mismatch: the command, the exit codes, the expected and the actual output."""
    command = outcome.command
    expected = "".join(f"    {line}\n" for line in command.expected)
    actual = "".join(f"    {line}\n" for line in outcome.output)
    return (
        f"line {command.line}: $ {command.text}\n"
        f"  exit: expected {command.exit_code}, got {outcome.exit_code}\n"
        f"  expected:\n{expected}  actual:\n{actual}"
    )


def rewrite(path: Path, outcomes: list[Outcome]) -> int:
    """Replace the expected output of every failing example with what it printed; returns how many."""
    lines = path.read_text(encoding="utf-8").splitlines()
    failing = sorted((o for o in outcomes if not o.ok), key=lambda o: o.command.output_start, reverse=True)
    for outcome in failing:
        command = outcome.command
        output = [f"{command.indent}{line}" if line else line for line in _trim(list(outcome.output))]
        lines[command.output_start : command.output_end] = output
    if failing:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(failing)


def main() -> int:
    """``make docs``: run every example; with --write, refresh the outputs that changed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite expected outputs that no longer match")
    parser.add_argument(
        "--broker", metavar="HOST:PORT", help="also run the <!-- docs-test: broker --> examples against this broker"
    )
    args = parser.parse_args()
    broker = Broker(args.broker, f"docs{os.getpid()}") if args.broker else None
    status = 0
    for path in DOCS:
        for problem in problems_without_running(path):
            print(problem)
            status = 1
        outcomes = run_file(path)
        if broker is not None:
            outcomes += run_file(path, broker)
        bad = [o for o in outcomes if not o.ok]
        if args.write:
            changed = rewrite(path, outcomes)
            if changed:
                print(f"{path.relative_to(REPO)}: rewrote {changed} example outputs")
        else:
            for outcome in bad:
                print(f"{path.relative_to(REPO)}: {describe(outcome)}")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
