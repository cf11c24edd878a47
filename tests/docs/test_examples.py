"""The documentation's command examples are run and must print what the docs say (see tests/docs/examples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.examples import (
    DOCS,
    REPO,
    Broker,
    describe,
    output_matches,
    parse,
    problems_without_running,
    rewrite,
    run_file,
)


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_every_console_example_prints_what_the_doc_shows(path: Path) -> None:
    """Each ```console example of the file runs (in order, offline) with the documented output and exit code."""
    outcomes = run_file(path)
    failures = [describe(o) for o in outcomes if not o.ok]
    assert not failures, f"{path.relative_to(REPO)} has drifted (refresh with `make docs`):\n" + "\n".join(failures)


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_no_command_output_is_shown_outside_a_checked_block(path: Path) -> None:
    """A `$ ` prompt only appears in ```console blocks, which are run (or skipped with a stated reason)."""
    assert problems_without_running(path) == []


def test_the_docs_hold_executed_examples() -> None:
    """The convention is in use: the docs have console examples that run (a guard against matching nothing)."""
    executed = [b for p in DOCS for b in parse(p) if b.info == "console" and b.skip is None and b.commands]
    assert len(executed) >= 4


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (["a", "b"], ["a", "b", ""], True),
        (["published … to preempt.events"], ["published 5b0f12 to preempt.events"], True),
        (["first", "...", "last"], ["first", "x", "y", "last"], True),
        (["first", "…", "last"], ["first", "last"], True),
        (["a", "b"], ["a", "c"], False),
        (["a"], ["a", "b"], False),
        (["1 alerts"], ["12 alerts"], False),
    ],
)
def test_output_matching_wildcards(expected: list[str], actual: list[str], ok: bool) -> None:
    """`…` in a line matches any text; a line of `...` matches any number of lines; nothing else is loose."""
    assert output_matches(expected, actual) is ok


def test_a_skip_marker_needs_a_reason(tmp_path: Path) -> None:
    """`<!-- docs-test: skip: why -->` skips the next block; without a reason the block is still run."""
    doc = tmp_path / "x.md"
    doc.write_text(
        "<!-- docs-test: skip: needs a broker -->\n```console\n$ true\n```\n"
        "<!-- docs-test: skip: -->\n```console\n$ true\n```\n"
    )
    first, second = parse(doc)
    assert first.skip == "needs a broker"
    assert second.skip is None


def test_rewrite_refreshes_only_the_outputs_that_drifted(tmp_path: Path) -> None:
    """`make docs` replaces a drifted output with what the command prints and leaves matching ones alone."""
    doc = tmp_path / "x.md"
    doc.write_text(
        "Intro.\n\n```console\n$ echo fresh\nstale\n$ echo kept\nk…\n```\n\n"
        "* item\n\n  ```console\n  $ printf 'a\\n\\nb\\n'   # exit 0\n  old\n  ```\n"
    )
    outcomes = run_file(doc)
    assert [o.ok for o in outcomes] == [False, True, False]
    assert rewrite(doc, outcomes) == 2
    assert doc.read_text() == (
        "Intro.\n\n```console\n$ echo fresh\nfresh\n$ echo kept\nk…\n```\n\n"
        "* item\n\n  ```console\n  $ printf 'a\\n\\nb\\n'   # exit 0\n  a\n\n  b\n  ```\n"
    )
    assert all(o.ok for o in run_file(doc))


def test_a_wrong_exit_code_is_drift(tmp_path: Path) -> None:
    """A command that exits differently from its `# exit N` (or from 0) fails even with the right output."""
    doc = tmp_path / "x.md"
    doc.write_text("```console\n$ echo out; false\nout\n$ echo out; exit 3   # exit 3\nout\n```\n")
    assert [o.ok for o in run_file(doc)] == [False, True]


def test_a_broker_block_runs_only_with_a_broker_and_shows_the_default_prefix(tmp_path: Path) -> None:
    """`<!-- docs-test: broker -->` blocks are left out offline; with a broker they alone run, with
    PREEMPT_BROKER and a topic prefix of their own that the output shows as `preempt.`."""
    doc = tmp_path / "x.md"
    doc.write_text(
        "```console\n$ echo offline\noffline\n```\n"
        "<!-- docs-test: broker -->\n```console\n"
        '$ echo "$PREEMPT_BROKER to $PREEMPT_TOPIC_PREFIX.events"\n127.0.0.1:1 to preempt.events\n```\n'
    )
    offline, online = parse(doc)
    assert (offline.needs_broker, online.needs_broker, online.skip) == (False, True, None)
    assert [o.command.text for o in run_file(doc)] == ["echo offline"]
    ran = run_file(doc, Broker("127.0.0.1:1", "t0123"))
    assert [o.command.text for o in ran] == ['echo "$PREEMPT_BROKER to $PREEMPT_TOPIC_PREFIX.events"']
    assert ran[0].output == ["127.0.0.1:1 to preempt.events"]
    assert ran[0].ok
