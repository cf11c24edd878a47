"""The watch that tells a topic deleted under a running process from one not in the metadata yet."""

from __future__ import annotations

from collections.abc import Callable

from streams.runtime.missing_topics import MissingTopicWatch, changelog_reason, dead_letter_reason, written_reason
from streams.runtime.settings import Settings


def _listed(*topics: str) -> Callable[[str], bool]:
    return lambda topic: topic in topics


def test_a_topic_seen_then_absent_is_missing_once_and_back_once() -> None:
    """Gone is reported at the first look without it, once; back at the first look with it, once."""
    watch = MissingTopicWatch(["a", "b"])
    assert watch.observe(_listed("a", "b")) == ([], [])
    assert watch.observe(_listed("b")) == (["a"], [])
    assert watch.observe(_listed("b")) == ([], [])
    assert watch.missing == {"a"}
    assert watch.observe(_listed("a", "b")) == ([], ["a"])
    assert watch.missing == set()


def test_a_topic_never_seen_is_not_missing() -> None:
    """At start the metadata may not list a topic yet: absent before it was ever seen is not 'deleted'."""
    watch = MissingTopicWatch(["a"])
    assert watch.observe(_listed()) == ([], [])
    assert watch.missing == set()


def test_a_topic_known_to_exist_is_missing_without_being_seen_first() -> None:
    """A topic the process created at start (a dead-letter topic it writes) deleted before any metadata listed
    it is missing at the first look without it; before, it was never seen, so never missing."""
    watch = MissingTopicWatch(["dlq"], existed=["dlq"])
    assert watch.observe(_listed()) == (["dlq"], [])
    assert watch.observe(_listed("dlq")) == ([], ["dlq"])


def test_no_metadata_changes_nothing() -> None:
    """A client without metadata (not started, or restarting) says nothing about the topics."""
    watch = MissingTopicWatch(["a"])
    watch.observe(_listed("a"))
    assert watch.observe(lambda topic: None) == ([], [])
    assert watch.missing == set()


def test_the_reasons_name_the_topic_and_what_to_do() -> None:
    """The changelog's reason says the process stops and the restart asks; the written topic's how to recreate it."""
    assert changelog_reason("x-rules-account-state-changelog").startswith(
        "changelog topic x-rules-account-state-changelog does not exist (deleted?)"
    )
    assert "stopping" in changelog_reason("c")
    assert written_reason("x.alerts", 12, "preempt worker") == (
        "topic x.alerts does not exist (deleted?): its records wait in the producer; recreate it with 12 partitions "
        "(preempt worker creates it at start), they go out then"
    )


def test_a_topic_absent_for_less_than_the_confirmation_time_is_not_missing() -> None:
    """aiokafka leaves a topic out of its metadata for any error of it (a leader election): absent once and
    listed at the next refresh, it is not missing (the process would have stopped on it); absent for the
    confirmation time, it is."""
    watch = MissingTopicWatch(["t-changelog"], confirm_s=15.0)
    assert watch.observe(lambda _t: True, 0.0) == ([], [])
    assert watch.observe(lambda _t: False, 2.0) == ([], [])
    assert watch.observe(lambda _t: False, 14.0) == ([], [])
    assert watch.observe(lambda _t: True, 16.0) == ([], [])  # listed again: the absence was an error
    assert watch.observe(lambda _t: False, 18.0) == ([], [])
    assert watch.observe(lambda _t: False, 33.0) == (["t-changelog"], [])
    assert watch.missing == {"t-changelog"}


def test_a_written_topic_asked_for_and_absent_is_missing_without_being_seen_first() -> None:
    """A producer asks for a topic's metadata as it first sends to it: the dead-letter topic deleted before
    the first dead letter (or never created) was never seen, and absent for the confirmation time it is
    missing all the same (before: never reported, the worker waited on it in silence)."""
    watch = MissingTopicWatch(["x.events.dlq"], confirm_s=15.0, existed=["x.events.dlq"])
    assert watch.observe(lambda _t: None, 0.0) == ([], [])  # not asked for yet: nothing known
    assert watch.observe(lambda _t: False, 1.0) == ([], [])
    assert watch.observe(lambda _t: False, 16.0) == (["x.events.dlq"], [])
    assert watch.observe(lambda _t: True, 20.0) == ([], ["x.events.dlq"])


def test_the_dead_letter_reason_names_the_topic_and_the_command_that_creates_it() -> None:
    """The dead-letter topic's reason says the worker waits, loses nothing, and how to create the topic."""
    settings = Settings(broker="kafka://kafka:9092", topic_partitions=12, topic_replication=3)
    reason = dead_letter_reason("preempt.events.dlq", settings)
    assert reason.startswith("dead-letter topic preempt.events.dlq does not exist (deleted, or never created)")
    assert (
        "kafka-topics.sh --bootstrap-server kafka:9092 --create --topic preempt.events.dlq --partitions 12 "
        "--replication-factor 3"
    ) in reason
