"""Topic names: every topic of a deployment, and the notifier's share of them."""

from __future__ import annotations

from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames


def test_every_topic_is_listed_once_with_the_prefix() -> None:
    """``every()`` names the seven topics of a deployment, each with the configured prefix."""
    names = TopicNames.from_settings(Settings(topic_prefix="acme"))
    assert names.every() == (
        "acme.events",
        "acme.events.dlq",
        "acme.accounts",
        "acme.accounts.updates",
        "acme.alerts",
        "acme.alerts.dlq",
        "acme.feedback",
    )


def test_the_notifier_topics_are_alerts_its_dead_letters_and_feedback() -> None:
    """``notifier()`` is the subset the notifier creates: none of the rules worker's own topics."""
    names = TopicNames.from_settings(Settings(topic_prefix="acme"))
    assert names.notifier() == ("acme.alerts", "acme.alerts.dlq", "acme.feedback")
    assert set(names.notifier()) <= set(names.every())
