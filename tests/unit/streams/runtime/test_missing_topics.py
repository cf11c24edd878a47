"""The watch that tells a topic deleted under a running process from one not in the metadata yet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from streams.runtime.missing_topics import MissingTopicWatch, changelog_reason, written_reason


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


def test_a_written_topic_the_producer_no_longer_asks_metadata_for_is_not_missing() -> None:
    """aiokafka's producer asks the metadata of every topic until it first sends to one its metadata lacks (a
    dead-letter topic briefly gone); from then on it asks only for the topics it was given that way. The
    alerts topic, listed before, is absent from every later answer although it exists: it is not known to be
    missing (before: /readyz 503 'topic … does not exist (deleted?)' until an alert was sent)."""
    from types import SimpleNamespace

    from aiokafka.cluster import ClusterMetadata

    from streams.runtime.missing_topics import watch_topics

    cluster = ClusterMetadata()
    cluster._partitions.update({"x.alerts": {0: None}, "x.events.dlq": {0: None}})
    client = SimpleNamespace(cluster=cluster, _sync_task=object(), _topics=set())
    timers: list[Callable[[], Any]] = []
    app = SimpleNamespace(
        conf=SimpleNamespace(name="preempt-rules-test"),
        timer=lambda **_options: lambda fn: timers.append(fn) or fn,
        consumer=SimpleNamespace(_thread=None),
        producer=SimpleNamespace(_producer=SimpleNamespace(client=client)),
    )
    now = [0.0]
    reasons = watch_topics(
        app,  # type: ignore[arg-type]
        changelogs=(),
        written=["x.alerts"],
        reason_for=lambda topic: f"{topic} missing",
        stop=lambda _error: None,
        confirm_s=15.0,
        clock=lambda: now[0],
    )
    (check,) = timers
    asyncio.run(check())  # every topic's metadata: the alerts topic is seen
    client._topics = {"x.events.dlq"}  # a send to the dead-letter topic while it was gone: only it is asked for
    del cluster._partitions["x.alerts"]
    for now[0] in (2.0, 10.0, 20.0, 40.0):
        asyncio.run(check())
    assert reasons() == ()
    client._topics = {"x.events.dlq", "x.alerts"}  # asked for, and not in the answer: deleted
    for now[0] in (42.0, 60.0):
        asyncio.run(check())
    assert reasons() == ("x.alerts missing",)
