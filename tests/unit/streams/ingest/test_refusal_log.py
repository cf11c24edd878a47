"""The refused-request log line: one per kind of refusal per interval, with how many were held back."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from streams.ingest import refusal_log
from streams.ingest.refusal_log import RefusalLog


def test_a_kind_repeated_within_the_interval_is_held_back_and_counted_on_its_next_line() -> None:
    """The first refusal of a kind is logged at once; its repeats within the interval are not, and the first line
    after the interval says how many were held back. Another key name is another kind."""
    now = [0.0]
    refusals = RefusalLog(interval_s=10.0, clock=lambda: now[0])
    with capture_logs() as logs:
        written = [refusals.refused(401, "unauthorized", None, route=f"/v1/{i}") for i in range(5)]
        assert refusals.refused(401, "unauthorized", "web", route="/v1/batch")
        now[0] = 10.0
        assert refusals.refused(401, "unauthorized", None, route="/v1/later")
        assert not refusals.refused(401, "unauthorized", None, route="/v1/again")
    assert written == [True, False, False, False, False]
    shown = [(line["route"], line["source"], line.get("repeated")) for line in logs]
    assert shown == [("/v1/0", None, None), ("/v1/batch", "web", None), ("/v1/later", None, 4)]
    assert {line["log_level"] for line in logs} == {"warning"}


def test_the_kinds_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the most kinds remembered, they are forgotten all at once (memory stays bounded): a kind seen
    before is then logged again."""
    monkeypatch.setattr(refusal_log, "MAX_KINDS", 3)
    refusals = RefusalLog(interval_s=10.0, clock=lambda: 0.0)
    with capture_logs():
        assert [refusals.refused(400, f"code-{i}", None) for i in range(3)] == [True, True, True]
        assert not refusals.refused(400, "code-0", None)
        assert refusals.refused(400, "code-3", None)  # the fourth kind: the others are forgotten
        assert refusals.refused(400, "code-0", None)
