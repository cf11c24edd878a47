"""Refused records in the worker's log: one WARN at once, then at most one per interval with a summary."""

from __future__ import annotations

from structlog.testing import capture_logs

from streams.worker.rejection_log import RejectionLog


def test_the_first_refusal_is_logged_at_once_and_later_ones_are_summed_up_once_per_interval() -> None:
    """A flood of refusals is one line per interval, carrying how many were held back and their reasons."""
    rejections = RejectionLog(interval=10.0)
    with capture_logs() as logs:
        rejections.rejected("invalid_json", "not valid JSON: x", None, "preempt.events", 0, 5, now=100.0)
        rejections.rejected("missing_field", "event is required", "event", "preempt.events", 1, 6, now=101.0)
        rejections.rejected("missing_field", "event is required", "event", "preempt.events", 1, 7, now=102.0)
        rejections.rejected("too_deep", "nested too deep", "properties", "preempt.events", 2, 8, now=109.0)
        rejections.rejected("empty", "the record value is empty", None, "preempt.events", 0, 9, now=110.5)
    lines = [e for e in logs if e["event"] == "event dead-lettered"]
    assert [(e["reason"], e["partition"], e["offset"]) for e in lines] == [("invalid_json", 0, 5), ("empty", 0, 9)]
    assert lines[0]["more_dead_lettered_since_last_warning"] == 0
    assert lines[1]["more_dead_lettered_since_last_warning"] == 3
    assert lines[1]["reasons_since_last_warning"] == {"missing_field": 2, "too_deep": 1}


def test_a_long_decoder_sentence_is_cut() -> None:
    """The detail is bounded, so one refusal cannot write a huge log line."""
    with capture_logs() as logs:
        RejectionLog().rejected("invalid_json", "x" * 10_000, None, "preempt.events", 0, 1, now=1.0)
    assert len(logs[0]["detail"]) == 300


def test_refusals_held_back_are_logged_once_the_interval_passes_even_when_refusals_stop() -> None:
    """The refusals held back in the last interval reach the log at the first batch after it, though no
    refusal follows; nothing is logged while nothing is held."""
    rejections = RejectionLog(interval=10.0)
    with capture_logs() as logs:
        rejections.flush(now=50.0)
        rejections.rejected("invalid_json", "not valid JSON: x", None, "preempt.events", 0, 5, now=100.0)
        rejections.rejected("missing_field", "event is required", "event", "preempt.events", 1, 6, now=101.0)
        rejections.flush(now=105.0)
        rejections.flush(now=110.0)
        rejections.flush(now=200.0)
    summaries = [e for e in logs if e["event"] == "events dead-lettered since the last warning"]
    assert [(e["more_dead_lettered_since_last_warning"], e["reasons_since_last_warning"]) for e in summaries] == [
        (1, {"missing_field": 1})
    ]
    assert len(logs) == 2


def test_the_key_is_logged_as_the_account_id_bounded_and_without_control_characters() -> None:
    """The record's key is the line's ``account_id``: control characters shown as \\xNN, cut at 256 characters;
    no key, or a key that is not UTF-8, logs none."""
    with capture_logs() as logs:
        for offset, key in enumerate([b"acme\x1b[2J", b"k" * 1000, None, b"\xff\xfe"]):
            RejectionLog(interval=0.0).rejected("invalid_json", "x", None, "preempt.events", 0, offset, 1.0, key)
    assert [e["account_id"] for e in logs] == ["acme\\x1b[2J", "k" * 256, None, None]
