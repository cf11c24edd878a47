"""The documentation's ``<!-- docs-test: broker -->`` examples run against the real broker and print what the
docs show (the offline docs test leaves them out; see tests/docs/examples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.examples import DOCS, REPO, Broker, describe, parse, run_file

BROKER_DOCS = [p for p in DOCS if any(b.needs_broker and b.skip is None for b in parse(p))]


def test_some_docs_hold_broker_examples() -> None:
    """The marker is in use (a guard against the parametrised test below matching no file)."""
    assert REPO / "docs" / "events.md" in BROKER_DOCS


@pytest.mark.parametrize("path", BROKER_DOCS, ids=[str(p.relative_to(REPO)) for p in BROKER_DOCS])
def test_every_broker_example_prints_what_the_doc_shows(path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    """Each broker example of the file runs against the test broker, under a topic prefix of its own, with the
    documented output (the prefix shown as the default ``preempt.``) and exit code."""
    outcomes = run_file(path, Broker(kafka_bootstrap, topic_prefix))
    assert outcomes
    failures = [describe(o) for o in outcomes if not o.ok]
    assert not failures, f"{path.relative_to(REPO)} has drifted:\n" + "\n".join(failures)
